"""What the audit reads: everything the agent could have trained on or sent out.

* the workspace (every regular file the agent could write, walked by :mod:`autorl_gym.runtime.safe_walk`:
  no link followed, names checked, files read through the descriptor that was checked, in pieces,
  up to :data:`MAX_FILE_BYTES` per file and :data:`MAX_TOTAL_BYTES` per run; what is left unread
  is listed, never silently skipped). ``model/`` and ``data/`` at its top are the read-only mounts
  of the base model and the train split and are not read.
* every ``llm_calls.jsonl`` in the results folder (the gateway's, an agent's own log): every
  string of every call, prompt and answer alike, each call named by its file and line.
* ``trajectory.jsonl``: every tool call the agent made (a file written then deleted, a command
  that echoes data), named by its step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autorl_gym.core.run_folder import RunFolder
from autorl_gym.runtime import safe_walk

MAX_FILE_BYTES = 256 << 20
MAX_TOTAL_BYTES = 1 << 30
MAX_JSONL_BYTES = 256 << 20
_CHUNK = 1 << 22
MOUNTS = ("model/", "data/")


@dataclass
class Source:
    """One thing read: its name in the report and its content in pieces (bytes or text)."""

    name: str
    kind: str  # workspace, llm_call, trajectory
    pieces: Callable[[], Iterator[bytes | str]]


@dataclass
class Unscanned:
    """Content the audit could not read. ``escalates``: it could hold what the agent trained on
    (a link out of the workspace, a name or file the host does not read, a file over the cap that
    is not a valid safetensors file), so the run cannot be called clean."""

    name: str
    why: str
    escalates: bool = True


class Budget:
    def __init__(self, total: int = MAX_TOTAL_BYTES):
        self.left = total
        self.read = 0


def _file_pieces(entry: safe_walk.FileEntry, cap: int, budget: Budget,
                 skipped: list[Unscanned]) -> Iterator[bytes]:
    fd = entry.open()
    try:
        got = 0
        while True:
            want = min(_CHUNK, cap - got, budget.left)
            if want <= 0:
                size = os.fstat(fd).st_size
                if size > got:
                    why = ("the run's read budget is spent" if budget.left <= 0
                           else f"file larger than {cap} bytes")
                    tensors = _safetensors_tensor_bytes(fd, size)
                    if tensors:
                        why += "; tensor data of a valid safetensors file"
                    skipped.append(Unscanned(f"workspace:{entry.rel}",
                                             f"{size - got} of {size} bytes not read ({why})",
                                             escalates=not tensors))
                return
            chunk = os.read(fd, want)
            if not chunk:
                return
            got += len(chunk)
            budget.left -= len(chunk)
            budget.read += len(chunk)
            yield chunk
    finally:
        os.close(fd)


def _safetensors_tensor_bytes(fd: int, size: int) -> bool:
    """Whether the file is a safetensors file whose header accounts for every byte (its tail is
    then tensor data, not text a training script would read as data)."""
    try:
        head = os.pread(fd, 8, 0)
        n = int.from_bytes(head, "little") if len(head) == 8 else 0
        if not 2 <= n <= 100 << 20:
            return False
        header = json.loads(os.pread(fd, n, 8))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        return bool(ends) and 8 + n + max(ends) == size
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


def _link_escalates(workspace: Path, r: safe_walk.Refusal) -> bool:
    """A refused entry the audit should not shrug off: anything but a link whose target is in the
    workspace (read there anyway) or one of the workspace's own mounts (``model``, ``data``)."""
    if r.kind == safe_walk.SPECIAL_REFUSED:
        return False  # a fifo or socket holds no data
    if r.kind != safe_walk.LINK_REFUSED:
        return True
    try:
        target = os.readlink(workspace / r.path)
    except OSError:
        return True
    if os.path.isabs(target):
        return not os.path.normpath(target).startswith(str(workspace) + os.sep)
    inside = os.path.normpath(os.path.join(os.path.dirname(r.path), target))
    return inside == ".." or inside.startswith(".." + os.sep)


def workspace_sources(workspace: Path, budget: Budget, skipped: list[Unscanned],
                      max_file: int = MAX_FILE_BYTES) -> Iterator[Source]:
    """The workspace's regular files, as the agent left them."""
    def refused(r: safe_walk.Refusal) -> None:
        if r.kind == safe_walk.LINK_REFUSED and r.path in ("model", "data"):
            return  # the episode's own links to the read-only mounts
        skipped.append(Unscanned(f"workspace:{r.path}", r.detail, _link_escalates(workspace, r)))

    try:
        entries = safe_walk.walk(workspace, on_refused=refused)
        for entry in entries:
            if entry.rel.startswith(MOUNTS):
                continue
            yield Source(f"workspace:{entry.rel}", "workspace",
                         lambda e=entry: _file_pieces(e, max_file, budget, skipped))
    except (OSError, safe_walk.UnsafePath) as e:
        skipped.append(Unscanned(f"workspace:{workspace}", f"not read: {e}"))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _jsonl(results: Path, rel: str, skipped: list[Unscanned]) -> Iterator[tuple[int, Any]]:
    try:
        data = safe_walk.read_file(results, rel, MAX_JSONL_BYTES)
    except (OSError, safe_walk.UnsafePath) as e:
        skipped.append(Unscanned(rel, f"not read: {e}"))
        return
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        try:
            yield n, json.loads(line)
        except ValueError:
            yield n, line  # a damaged line is still text


def llm_call_sources(results: Path, skipped: list[Unscanned]) -> Iterator[Source]:
    """Every call of every ``llm_calls.jsonl`` in the results folder (submission snapshots and
    the code history are not entered): its every string, the prompt the gateway recorded
    (``request_text``) and the answer's text (``response_text``) among them."""
    skip = {RunFolder.SUBMISSION_SNAPSHOTS, RunFolder.CODE_HISTORY}
    for entry in safe_walk.walk(results, skip=lambda name: name in skip,
                                on_refused=lambda r: skipped.append(Unscanned(r.path, r.detail))):
        if entry.name != RunFolder.LLM_CALLS:
            continue
        for n, call in _jsonl(results, entry.rel, skipped):
            what = ""
            if isinstance(call, dict):
                what = " ".join(str(call.get(k)) for k in ("time", "route", "model") if call.get(k))
                if call.get("text_truncated"):
                    skipped.append(Unscanned(f"llm_call:{entry.rel}:{n}", "its prompt or answer was "
                                             "longer than the gateway records; the rest is unread"))
            yield Source(f"llm_call:{entry.rel}:{n}" + (f" ({what})" if what else ""), "llm_call",
                         lambda c=call: iter(["\n".join(_strings(c))]))


def trajectory_sources(results: Path, skipped: list[Unscanned]) -> Iterator[Source]:
    """The agent's tool calls, one source per step."""
    if not (results / RunFolder.TRAJECTORY).is_file():
        return
    for n, line in _jsonl(results, RunFolder.TRAJECTORY, skipped):
        call = line.get("call") if isinstance(line, dict) else line
        step = line.get("step", n) if isinstance(line, dict) else n
        yield Source(f"trajectory:step {step}", "trajectory",
                     lambda c=call: iter(["\n".join(_strings(c))]))
