"""Run a sweep on Ray: each cell one task with the scenario's resources, local Ray by default
(``address`` for a cluster, whose nodes must share the results folder), cells already complete
skipped, a cell whose worker dies tried again up to ``max_attempts`` times with the reason
recorded in ``events.jsonl``. Ray is imported here only (the ``sweep`` extra)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import BaseModel, Field
from rich.console import Console

from autorl_gym.core.durable import atomic_write_text
from autorl_gym.sweep.cells import Cell, CellRecord, SweepLayout, expand
from autorl_gym.sweep.execute import AttemptOutcome, CellJob, run_attempt, set_aside, write_record
from autorl_gym.sweep.spec import SweepError, SweepSpec
from autorl_gym.sweep.view import SweepView

AttemptFn = Callable[[CellJob], AttemptOutcome]
#: what runs beside a sweep while its cells run (given the sweep's folder)
Beside = Callable[[Path], contextlib.AbstractContextManager[Any]]


class FailedCell(BaseModel):
    cell_id: str
    attempts: int
    reason: str


class RayOptions(BaseModel):
    """Where the cells run: a local Ray started here (the default) or a cluster's address."""

    address: str | None = Field(None, description="a running cluster (ray://host:10001, auto)")
    num_cpus: float | None = Field(None, gt=0, description="local Ray only (default: all)")
    object_store_mb: int = Field(256, ge=80, description="local Ray only: cells return little")
    dashboard: bool = Field(False, description="local Ray only: start Ray's own dashboard")


class SweepSummary(BaseModel):
    name: str
    root: Path
    cells: int
    skipped: int = Field(description="complete before this run")
    done: int = 0
    failed: list[FailedCell] = Field(default_factory=list)
    retried: int = Field(0, description="attempts tried again after their worker died")
    seconds: float = 0.0


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SweepError("sweeps run on Ray, which is not installed: pip install 'autorl-gym[sweep]'"
                         ) from None
    return ray


def _next_attempt(layout: SweepLayout, cell_id: str) -> int:
    """1 + the highest attempt number any folder of this cell has used (attempts are numbered
    across runs of the sweep, so no two ever share a folder)."""
    prefix, n = f"{cell_id}.a", 0
    for d in (layout.partial, layout.failed):
        for p in d.glob(f"{cell_id}.a*") if d.is_dir() else ():
            digits = p.name[len(prefix):].split(".")[0]
            if digits.isdigit():
                n = max(n, int(digits))
    return n + 1


def _clear_leftovers(layout: SweepLayout) -> None:
    """Attempt folders a stopped sweep left behind (no driver holds the lock now)."""
    for folder in sorted(layout.partial.iterdir()):
        set_aside(layout, folder, folder.name + ".abandoned")
        layout.log_event(event="abandoned", cell_id=folder.name.rsplit(".a", 1)[0],
                         reason="left by a sweep that stopped before the attempt ended")


def _worker_env(spec: SweepSpec) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k.startswith("AUTORL_GYM_")}, **spec.env}


def _check_feasible(ray: Any, cells: list[Cell], local: bool, console: Console) -> None:
    total = ray.cluster_resources()
    have = {"cpus": total.get("CPU", 0.0), "gpus": total.get("GPU", 0.0),
            "memory_mb": total.get("memory", 0.0) / 2**20}
    for c in cells:
        for key, need in c.resources.model_dump().items():
            if need > have[key] + 1e-9:
                msg = (f"cell {c.id} asks for {need:g} {key} and the Ray cluster has {have[key]:.0f}: "
                       f"set resources.{key} in the sweep file, or run on a bigger cluster (--address)")
                if local:
                    raise SweepError(msg)
                console.print(f"[yellow]warning:[/] {msg}; waiting for the autoscaler")
                return


def _died_reason(e: Exception) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{e.__class__.__name__}: {first}"[:500]


class _Scheduler:
    """Submits attempts, collects their outcomes, tries again the ones whose worker died."""

    def __init__(self, ray: Any, spec: SweepSpec, layout: SweepLayout, fn: AttemptFn,
                 view: SweepView):
        self.ray, self.spec, self.layout, self.view = ray, spec, layout, view
        # a fresh worker process per attempt: nothing an episode leaves in its process (imported
        # agent modules, CUDA state, threads) reaches the next cell
        self.remote = ray.remote(max_calls=1)(fn)
        self.workspace = Path(spec.workspace_root or layout.root / ".workspace")
        self.inflight: dict[Any, tuple[Cell, int, int]] = {}  # ref -> cell, attempt, tries
        self.summary_failed: list[FailedCell] = []
        self.done = self.retried = 0

    def submit(self, cell: Cell, tries: int = 1) -> None:
        attempt = _next_attempt(self.layout, cell.id)
        job = CellJob(cell=cell, root=self.layout.root, attempt=attempt, llm=self.spec.llm,
                      workspace_root=self.workspace / cell.id / f"a{attempt}")
        r = cell.resources
        ref = self.remote.options(num_cpus=r.cpus, num_gpus=r.gpus, memory=r.memory_mb * 2**20,
                                  max_retries=0, name=f"cell:{cell.id}").remote(job)
        self.inflight[ref] = (cell, attempt, tries)
        self.layout.log_event(event="submitted", cell_id=cell.id, attempt=attempt)

    def running(self) -> int:
        return sum((self.layout.attempt_dir(c.id, a) / "cell.json").exists()
                   for c, a, _ in self.inflight.values())

    def loop(self, poll_s: float) -> None:
        while self.inflight:
            ready, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=poll_s)
            for ref in ready:
                self._collect(ref)
            self.view.update(running=self.running(), queued=len(self.inflight) - self.running())

    def _collect(self, ref: Any) -> None:
        ray = self.ray
        cell, attempt, tries = self.inflight.pop(ref)
        try:
            out: AttemptOutcome = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # the attempt's own code raised: not retried
            self._failed(cell, attempt, tries, _died_reason(getattr(e, "cause", None) or e), "error")
            return
        except ray.exceptions.RayError as e:  # the worker or its node died, or was killed
            reason = _died_reason(e)
            self._set_aside_died(cell, attempt, reason)
            if tries < self.spec.max_attempts:
                self.retried += 1
                self.layout.log_event(event="retry", cell_id=cell.id, attempt=attempt, reason=reason)
                self.view.retry(f"[yellow]retry[/] {cell.id} (attempt {attempt} died: {reason})")
                self.submit(cell, tries + 1)
            else:
                self._failed(cell, attempt, tries, reason, "died")
            return
        self.layout.log_event(event=out.status, cell_id=cell.id, attempt=attempt, reason=out.reason,
                              seconds=out.seconds)
        if out.status == "error":
            self._failed(cell, attempt, tries, out.reason or "unknown error", "error", logged=True)
        else:
            self.done += 1
            self.view.advance(f"[green]done[/] {cell.id} ({out.seconds:.0f} s)")

    def _set_aside_died(self, cell: Cell, attempt: int, reason: str) -> None:
        folder = self.layout.attempt_dir(cell.id, attempt)
        if not folder.exists():
            return
        rec = self.layout.record(folder)
        if rec is not None:
            write_record(folder, rec.model_copy(update={"status": "died", "reason": reason}))
        set_aside(self.layout, folder, folder.name)

    def _failed(self, cell: Cell, attempt: int, tries: int, reason: str, kind: str,
                logged: bool = False) -> None:
        if not logged:
            self.layout.log_event(event=kind, cell_id=cell.id, attempt=attempt, reason=reason)
        self.summary_failed.append(FailedCell(cell_id=cell.id, attempts=tries, reason=reason))
        self.view.advance(f"[red]failed[/] {cell.id}: {reason}", failed=True)


def run_sweep(spec: SweepSpec, *, address: str | None = None, num_cpus: float | None = None,
              dashboard: bool = False, console: Console | None = None, live: bool = True,
              attempt_fn: AttemptFn = run_attempt, poll_s: float = 1.0,
              beside: Beside | None = None) -> SweepSummary:
    """Run every cell of ``spec`` that is not complete yet; returns what happened. An already
    initialised Ray (``ray.init`` by the caller) is used as it is. ``beside``: a context manager
    factory given the sweep's folder, entered while the cells run (``autorl-gym sweep`` serves
    the results dashboard with it)."""
    console = console or Console()
    opts = RayOptions(address=address, num_cpus=num_cpus, dashboard=dashboard)
    if spec.results_dir is None:
        raise SweepError("results_dir: unset (load the spec with load_sweep, or set it)")
    cells = expand(spec)
    layout = SweepLayout(spec.results_dir)
    layout.make()
    lock = FileLock(str(layout.lock))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise SweepError(f"another sweep is running in {layout.root} (lock {layout.lock})") from None
    t0 = time.monotonic()
    try:
        atomic_write_text(layout.root / "sweep.json", spec.model_dump_json(indent=2))
        _clear_leftovers(layout)
        todo = [c for c in cells if not layout.is_complete(c.id)]
        summary = SweepSummary(name=spec.name, root=layout.root, cells=len(cells),
                               skipped=len(cells) - len(todo))
        try:
            if todo:
                with beside(layout.root) if beside else contextlib.nullcontext(), \
                        SweepView(console, total=len(todo), skipped=summary.skipped, live=live) as view:
                    _run_cells(spec, layout, todo, summary, opts, view, attempt_fn, poll_s)
        finally:  # an interrupted sweep says how far it got
            summary.seconds = time.monotonic() - t0
            atomic_write_text(layout.root / "summary.json", summary.model_dump_json(indent=2))
    finally:
        lock.release()
    return summary


def _init_ray(ray: Any, spec: SweepSpec, opts: RayOptions) -> None:
    env = _worker_env(spec)
    kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": opts.dashboard,
                              "runtime_env": {"env_vars": env} if env else None}
    if opts.address is None:  # "local": a new Ray here, never one that `ray start` left running
        kwargs |= {"num_cpus": opts.num_cpus, "object_store_memory": opts.object_store_mb * 2**20}
    ray.init(address=opts.address or "local", **kwargs)


def _run_cells(spec: SweepSpec, layout: SweepLayout, todo: list[Cell], summary: SweepSummary,
               opts: RayOptions, view: SweepView, attempt_fn: AttemptFn, poll_s: float) -> None:
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(ray, spec, opts)
    try:
        _check_feasible(ray, todo, opts.address is None, view.console)
        sched = _Scheduler(ray, spec, layout, attempt_fn, view)
        try:
            for cell in todo:
                sched.submit(cell)
            view.update(running=sched.running(), queued=len(sched.inflight))
            sched.loop(poll_s)
        finally:
            summary.done, summary.failed = sched.done, sched.summary_failed
            summary.retried = sched.retried
    finally:
        if started_here:
            ray.shutdown()


def cell_records(root: Path) -> list[CellRecord]:
    """The cell.json of every complete cell of the sweep in ``root``."""
    layout = SweepLayout(root)
    if not layout.cells.is_dir():
        return []
    out = [layout.record(d) for d in sorted(layout.cells.iterdir()) if not d.name.startswith(".")]
    return [r for r in out if r is not None]
