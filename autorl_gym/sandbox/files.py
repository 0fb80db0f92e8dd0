"""File tools and the path policy shared by every backend.

Paths are relative to the workspace, or absolute. Every path is resolved on the host with
symlinks followed (:func:`os.path.realpath`); it is allowed only if the real path lies inside the
workspace or inside one of ``spec.mounts`` (which appear in the sandbox at their own absolute
paths, so the same absolute path works in tool calls and in commands). A symlink that points
out of those roots is refused, wherever it sits.

Writes go to the workspace (or a read-write mount), never into a read-only mount.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path
from typing import BinaryIO

from autorl_gym.core.sandbox import SandboxError, SandboxSpec

__all__ = [
    "LIST_MAX_DEPTH",
    "LIST_MAX_ENTRIES",
    "SandboxFiles",
    "list_files",
    "read_file",
    "resolve",
    "write_file",
]

LIST_MAX_DEPTH = 3
LIST_MAX_ENTRIES = 400  # lines in one listing
LIST_MAX_PER_DIR = 100  # entries shown in one directory
LIST_HUGE_DIR = 1000  # directories with more entries than this are not expanded
LIST_SKIP_DIRS = frozenset({".git", "__pycache__", "node_modules", ".venv", ".mypy_cache"})
_BINARY_SNIFF = 8192


def _roots(spec: SandboxSpec) -> list[tuple[Path, bool, bool]]:
    """(real root, read_only, is_workspace), most specific (longest) first."""
    roots = [(Path(os.path.realpath(spec.workspace)), False, True)]
    roots += [(Path(os.path.realpath(m.source)), m.read_only, False) for m in spec.mounts]
    return sorted(roots, key=lambda r: len(r[0].parts), reverse=True)


def _root_of(spec: SandboxSpec, real: Path) -> tuple[Path, bool, bool] | None:
    for root in _roots(spec):
        if real == root[0] or real.is_relative_to(root[0]):
            return root
    return None


def resolve(spec: SandboxSpec, path: str | os.PathLike[str]) -> Path:
    """The real host path of ``path``; SandboxError if it leaves the workspace and the mounts."""
    raw = os.fspath(path)
    if not raw or "\0" in raw:
        raise SandboxError(f"invalid path: {raw!r}")
    p = Path(raw)
    if not p.is_absolute():
        p = Path(spec.workspace) / p
    real = Path(os.path.realpath(p))
    if _root_of(spec, real) is None:
        raise SandboxError(
            f"path escapes the workspace: {raw} (resolves to {real}); allowed are the workspace "
            f"{spec.workspace} and the mounted folders"
        )
    return real


def _display(spec: SandboxSpec, real: Path) -> str:
    ws = Path(os.path.realpath(spec.workspace))
    if real.is_relative_to(ws):
        rel = real.relative_to(ws).as_posix()
        return rel if rel != "." else "."
    return str(real)


def write_file(spec: SandboxSpec, path: str, content: str) -> int:
    """Write ``content`` (UTF-8); creates parent folders; returns the bytes written."""
    data = content.encode("utf-8", errors="surrogatepass")
    limit = spec.limits.max_file_bytes
    if len(data) > limit:
        raise SandboxError(f"refused to write {path}: {len(data)} bytes > limit {limit} bytes")
    real = resolve(spec, path)
    root = _root_of(spec, real)
    assert root is not None
    if root[1]:
        raise SandboxError(f"refused to write {path}: {root[0]} is mounted read-only")
    if real.is_dir():
        raise SandboxError(f"cannot write {path}: it is a directory")
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        with open(real, "wb") as f:
            f.write(data)
    except OSError as e:
        raise SandboxError(f"cannot write {path}: {e.strerror or e}") from e
    return len(data)


def _is_binary(head: bytes) -> bool:
    """NUL bytes, or mostly not UTF-8 (a few bad bytes are shown as U+FFFD instead)."""
    if b"\0" in head:
        return True
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
    return text.count("\ufffd") > max(8, len(text) // 10)


def read_file(spec: SandboxSpec, path: str, offset: int = 0, limit: int | None = None) -> str:
    """Characters ``offset .. offset+limit`` of a UTF-8 text file (all of it when limit is None).

    Files over ``max_file_bytes`` are refused unless a ``limit`` is given (then only that window
    is read, streaming). Binary files are refused with a message saying so.
    """
    if offset < 0:
        raise SandboxError(f"offset must be >= 0, got {offset}")
    if limit is not None and limit < 0:
        raise SandboxError(f"limit must be >= 0, got {limit}")
    real = resolve(spec, path)
    try:
        st = real.stat()
    except FileNotFoundError:
        raise SandboxError(f"no such file: {path}") from None
    except OSError as e:
        raise SandboxError(f"cannot read {path}: {e.strerror or e}") from e
    if stat.S_ISDIR(st.st_mode):
        raise SandboxError(f"{path} is a directory; use list_files")
    if not stat.S_ISREG(st.st_mode):
        raise SandboxError(f"{path} is not a regular file")
    max_bytes = spec.limits.max_file_bytes
    if st.st_size > max_bytes and limit is None:
        raise SandboxError(
            f"{path} is {st.st_size} bytes, over the {max_bytes}-byte read limit; "
            "pass offset and limit to read a part of it"
        )
    try:
        with open(real, "rb") as f:
            head = f.read(_BINARY_SNIFF)
            if _is_binary(head):
                raise SandboxError(
                    f"{path} is a binary file ({st.st_size} bytes); not shown as text"
                )
            if limit is None:
                text = (head + f.read()).decode("utf-8", errors="replace")
                return text[offset:]
            return _read_window(f, head, offset, min(limit, max_bytes))
    except OSError as e:
        raise SandboxError(f"cannot read {path}: {e.strerror or e}") from e


def _read_window(f: BinaryIO, first: bytes, offset: int, limit: int) -> str:
    """Stream-decode ``f`` (already read ``first``) and keep characters offset..offset+limit."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out: list[str] = []
    kept = 0
    skip = offset
    chunk = first
    while True:
        text = decoder.decode(chunk, final=not chunk)
        if skip:
            dropped = min(skip, len(text))
            text = text[dropped:]
            skip -= dropped
        if text:
            take = text[: limit - kept]
            out.append(take)
            kept += len(take)
        if kept >= limit or not chunk:
            break
        chunk = f.read(1 << 20)
    return "".join(out)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def list_files(spec: SandboxSpec, path: str = ".") -> str:
    """A tree of ``path`` (about three levels deep, capped in entries), sizes shown."""
    real = resolve(spec, path)
    if not real.exists():
        raise SandboxError(f"no such file or directory: {path}")
    if not real.is_dir():
        return f"{_display(spec, real)} ({_size(real.stat().st_size)})"
    lines = [f"{_display(spec, real)}/"]
    budget = [LIST_MAX_ENTRIES]

    def walk(d: Path, prefix: str, depth: int) -> None:
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            lines.append(f"{prefix}[cannot list: {e.strerror or e}]")
            return
        shown = entries[:LIST_MAX_PER_DIR]
        for i, entry in enumerate(shown):
            if budget[0] <= 0:
                lines.append(f"{prefix}... (listing cut at {LIST_MAX_ENTRIES} entries)")
                return
            budget[0] -= 1
            last = i == len(shown) - 1 and len(entries) == len(shown)
            branch, cont = ("└── ", "    ") if last else ("├── ", "│   ")
            lines.append(prefix + branch + _entry_line(entry))
            if entry.is_dir(follow_symlinks=False):
                sub = Path(entry.path)
                if entry.name in LIST_SKIP_DIRS or depth + 1 >= LIST_MAX_DEPTH:
                    continue
                try:
                    n = sum(1 for _ in os.scandir(sub))
                except OSError:
                    continue
                if n > LIST_HUGE_DIR:
                    lines[-1] += f"  [{n} entries, not expanded]"
                    continue
                walk(sub, prefix + cont, depth + 1)
        if len(entries) > len(shown):
            lines.append(f"{prefix}└── ... ({len(entries) - len(shown)} more entries)")

    walk(real, "", 0)
    return "\n".join(lines)


def _entry_line(entry: os.DirEntry[str]) -> str:
    try:
        if entry.is_symlink():
            return f"{entry.name} -> {os.readlink(entry.path)}"
        if entry.is_dir(follow_symlinks=False):
            return f"{entry.name}/"
        return f"{entry.name} ({_size(entry.stat(follow_symlinks=False).st_size)})"
    except OSError:
        return f"{entry.name} [unreadable]"


def prepare_workspace(spec: SandboxSpec, mounts: bool = True) -> Path:
    """The spec's workspace, made if missing; SandboxError unless it is an absolute path and
    (``mounts``: for a backend that mounts them) every mount source is an existing absolute path."""
    ws = Path(spec.workspace)
    if not ws.is_absolute():
        raise SandboxError(f"the workspace must be an absolute path, got {ws}")
    ws.mkdir(parents=True, exist_ok=True)
    for m in spec.mounts if mounts else ():
        if not Path(m.source).is_absolute():
            raise SandboxError(f"mount source must be an absolute path, got {m.source}")
        if not Path(m.source).exists():
            raise SandboxError(f"mount source does not exist: {m.source}")
    return ws

class SandboxFiles:
    """Mixin giving a backend the shared file tools; needs ``self.spec``."""

    spec: SandboxSpec

    def resolve(self, path: str) -> Path:
        return resolve(self.spec, path)

    def write_file(self, path: str, content: str) -> int:
        return write_file(self.spec, path, content)

    def read_file(self, path: str, offset: int = 0, limit: int | None = None) -> str:
        return read_file(self.spec, path, offset, limit)

    def list_files(self, path: str = ".") -> str:
        return list_files(self.spec, path)
