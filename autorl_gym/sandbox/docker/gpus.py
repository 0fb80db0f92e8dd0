"""GPUs for the agent's container, and the ones left to the grader.

``SandboxLimits.gpus`` (the scenario's ``sandbox: gpus:``, or ``autorl-gym run --gpus``) takes
what ``docker run --gpus`` takes: ``all``, a count (``2``), or device ids (``device=0,1`` or
``0,1``). The ``docker`` backend turns it into an engine device request (the NVIDIA container
toolkit then exposes exactly those devices in the container).

Keeping the grader apart: the agent's commands get the GPUs named in ``gpus``; the grader runs
on the host, and :func:`grader_cuda_visible_devices` gives the ``CUDA_VISIBLE_DEVICES`` that
leaves it the rest. With ``gpus: device=0`` on a 2-GPU host the agent trains on GPU 0 and the
grader scores on GPU 1. When the agent has every GPU (``all``, or a count as large as the host
has) nothing is left: the grader then shares the agent's devices, and the function says so.
"""

from __future__ import annotations

import glob
from typing import Any

from autorl_gym.core.sandbox import GpuRequest, parse_gpus

__all__ = [
    "GpuRequest",
    "device_requests",
    "grader_cuda_visible_devices",
    "host_gpu_ids",
    "parse_gpus",
]

def device_requests(spec: str | None) -> list[Any]:
    """The engine's device requests for ``spec`` (empty when no GPU is asked for)."""
    req = parse_gpus(spec)
    if req is None:
        return []
    from docker.types import DeviceRequest

    if req.device_ids is not None:
        return [DeviceRequest(device_ids=req.device_ids, capabilities=[["gpu"]])]
    return [DeviceRequest(count=req.count, capabilities=[["gpu"]])]


def host_gpu_ids() -> list[str]:
    """Indices of this host's NVIDIA GPUs (from ``/dev/nvidiaN``), in order."""
    ids = [p.removeprefix("/dev/nvidia") for p in glob.glob("/dev/nvidia[0-9]*")]
    return sorted((i for i in ids if i.isdigit()), key=int)


def grader_cuda_visible_devices(spec: str | None, host_ids: list[str]) -> tuple[str | None, str]:
    """(``CUDA_VISIBLE_DEVICES`` for the grader, or None to leave it as it is; why).

    The agent's devices are the first ``count`` (the toolkit hands them out in index order) or
    the named ids; the grader gets the others."""
    req = parse_gpus(spec)
    if req is None:
        return None, "the agent has no GPU: the grader keeps every device"
    if req.device_ids is not None:
        agent = [d for d in req.device_ids if d in host_ids] if host_ids else req.device_ids
    elif req.count == -1:
        agent = list(host_ids)
    else:
        agent = host_ids[: req.count]
    rest = [d for d in host_ids if d not in agent]
    if not rest:
        return None, (f"the agent has every GPU ({','.join(agent) or 'none found'}): the grader "
                      "shares them")
    return ",".join(rest), f"agent GPUs {','.join(agent)}; grader GPUs {','.join(rest)}"


def keep_grader_apart(spec: str | None) -> str:
    """Point this process's (the grader's) ``CUDA_VISIBLE_DEVICES`` at the GPUs the agent does
    not get, unless it is already set; returns what was decided. Call it before anything
    initialises CUDA (``autorl-gym run --gpus`` does, first thing)."""
    import os

    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return (f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']} already set for the "
                "grader: left as it is")
    visible, why = grader_cuda_visible_devices(spec, host_gpu_ids())
    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    return why
