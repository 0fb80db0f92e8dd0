"""The grading work: one queue and one worker per device, off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from autorl_gym.core.scenario import Scenario

T = TypeVar("T")


class DeviceQueues:
    """Runs jobs one at a time per device, in the order they came, off the event loop."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[tuple[Callable[[], Any], asyncio.Future]]] = {}
        self._workers: list[asyncio.Task] = []
        self.running: dict[str, str] = {}

    def depth(self) -> int:
        return sum(q.qsize() for q in self._queues.values()) + len(self.running)

    def submit(self, device: str, what: str, fn: Callable[[], T]) -> asyncio.Future[T]:
        if device not in self._queues:
            self._queues[device] = asyncio.Queue()
            self._workers.append(asyncio.create_task(self._work(device), name=f"grader-{device}"))
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queues[device].put_nowait((fn, fut))
        fut.what = what  # type: ignore[attr-defined]
        return fut

    async def _work(self, device: str) -> None:
        q = self._queues[device]
        while True:
            fn, fut = await q.get()
            self.running[device] = getattr(fut, "what", "job")
            try:
                result = await asyncio.to_thread(fn)
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits
                if not fut.done():
                    fut.set_exception(e)
            else:
                if not fut.done():
                    fut.set_result(result)
            finally:
                self.running.pop(device, None)
                q.task_done()

    async def close(self) -> None:
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


def device_for(scenario: Scenario) -> str:
    """The device a scenario grades on (its grader's, or the first GPU, or the CPU)."""
    dev = scenario.grader.device
    if dev != "auto":
        return dev
    try:
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"


