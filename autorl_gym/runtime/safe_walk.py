"""Reading a folder an agent made, from the host, without following anything the agent made.

The one helper every host-side reader of a workspace uses (the code history, the submission
snapshot, the export): every path component is opened relative to its parent's descriptor with
``O_NOFOLLOW``, so a link is never followed (a link where a folder or file is expected is
refused, not resolved), only regular files are read, and nothing swapped in between a check and
a read is read instead (a file is read through the descriptor that was checked). Names the agent
chose are data: a name that is not UTF-8 or holds a control character (a newline, a tab, an
escape) is refused, never written into a pattern, a message or a path list.

Refusals are reported as :class:`Refusal` (kinds :data:`LINK_REFUSED`, :data:`NAME_REFUSED`,
:data:`SPECIAL_REFUSED`, :data:`LIMIT_REFUSED`); the caller records them as integrity events.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

LINK_REFUSED = "workspace.link_refused"
NAME_REFUSED = "workspace.name_refused"
SPECIAL_REFUSED = "workspace.special_refused"  # a fifo, socket or device where a file was read
LIMIT_REFUSED = "workspace.limit_refused"      # more entries or depth than a walk reads

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a fifo the agent left must not hang the host
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Refusal:
    kind: str
    path: str    # relative to the folder walked, as printable text
    detail: str


class UnsafePath(OSError):
    """A path the host will not read: a link, a bad name, not a regular file or folder."""

    def __init__(self, refusal: Refusal):
        super().__init__(refusal.detail)
        self.refusal = refusal


def printable(name: str) -> str:
    """An agent-made name as text safe to show (control characters and bad bytes escaped)."""
    return name if name_ok(name) else repr(name)[1:-1]


def name_ok(name: str) -> bool:
    """A name the host takes as it is: UTF-8 (no lone surrogates) without control characters."""
    if not name or name in (".", ".."):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.listdir's surrogateescape for bytes that are not UTF-8
        return False
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)


def _parts(rel: str | Path) -> list[str]:
    text = str(rel)
    if text.startswith("/"):
        raise UnsafePath(Refusal(NAME_REFUSED, text, f"{text!r} is absolute; a path relative to "
                                                     "the folder is expected"))
    return [p for p in text.split("/") if p not in ("", ".")]


def open_dir(root: Path, rel: str | Path = "") -> int:
    """A descriptor of the folder ``root/rel``. ``root`` is the host's own (the workspace
    folder) and is opened as given; every component of ``rel`` is opened without following a
    link. Raises :class:`UnsafePath` (a link, a bad name, not a folder) or OSError (missing)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    done: list[str] = []
    try:
        for part in _parts(rel):
            done.append(part)
            shown = "/".join(printable(p) for p in done)
            if part == ".." or not name_ok(part):
                raise UnsafePath(Refusal(NAME_REFUSED, shown, f"{shown}: not a name the host reads"))
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                st = _refuse_link(part, fd, shown, e)
                if st is not None and not stat.S_ISDIR(st.st_mode):
                    raise UnsafePath(Refusal(SPECIAL_REFUSED, shown, f"{shown} is not a folder")) from e
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None


def _refuse_link(name: str, dir_fd: int, shown: str, cause: OSError) -> os.stat_result | None:
    """After a no-follow open of ``name`` failed: refuse it if it is a link; else its lstat."""
    st = _lstat(name, dir_fd)
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise UnsafePath(Refusal(LINK_REFUSED, shown, f"{shown} is a link "
                                 f"(-> {_readlink(name, dir_fd)}); links are not followed")) from cause
    return st


def _readlink(name: str, dir_fd: int) -> str:
    try:
        return printable(os.readlink(name, dir_fd=dir_fd))
    except OSError:
        return "?"


def open_file(dir_fd: int, name: str, shown: str | None = None) -> int:
    """A read-only descriptor of the regular file ``name`` in the folder ``dir_fd`` (never a
    link, fifo, socket or device)."""
    shown = shown or printable(name)
    if not name_ok(name):
        raise UnsafePath(Refusal(NAME_REFUSED, shown, f"{shown}: not a name the host reads"))
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        _refuse_link(name, dir_fd, shown, e)
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafePath(Refusal(SPECIAL_REFUSED, shown, f"{shown} is not a regular file"))
    os.set_blocking(fd, True)
    return fd


def read_fd(fd: int, max_bytes: int) -> bytes:
    """At most ``max_bytes`` from ``fd``; OSError if the file holds more."""
    chunks, total = [], 0
    while True:
        chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise OSError(f"more than {max_bytes} bytes")


def read_file(root: Path, rel: str | Path, max_bytes: int) -> bytes:
    """The bytes of the regular file ``root/rel``, no link followed on the way."""
    parts = _parts(rel)
    if not parts:
        raise UnsafePath(Refusal(NAME_REFUSED, str(rel), "no file named"))
    dfd = open_dir(root, "/".join(parts[:-1]))
    try:
        fd = open_file(dfd, parts[-1], "/".join(printable(p) for p in parts))
    finally:
        os.close(dfd)
    try:
        return read_fd(fd, max_bytes)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class FileEntry:
    """A regular file found by :func:`walk`; :meth:`open` is valid while the walk is in its folder."""

    rel: str
    stat: os.stat_result
    dir_fd: int
    name: str

    def open(self) -> int:
        """A descriptor of this very file (refused if it was swapped since it was listed)."""
        fd = open_file(self.dir_fd, self.name, self.rel)
        st = os.fstat(fd)
        if (st.st_ino, st.st_dev) != (self.stat.st_ino, self.stat.st_dev):
            os.close(fd)
            raise UnsafePath(Refusal(SPECIAL_REFUSED, self.rel, f"{self.rel} changed while read"))
        return fd

    def read(self, max_bytes: int) -> bytes:
        fd = self.open()
        try:
            return read_fd(fd, max_bytes)
        finally:
            os.close(fd)


def walk(root: Path, rel: str | Path = "", *, on_refused: Callable[[Refusal], None] | None = None,
         skip: Callable[[str], bool] | None = None, max_entries: int = 200_000,
         max_depth: int = 64) -> Iterator[FileEntry]:
    """The regular files under ``root/rel`` (paths relative to it, sorted per folder), opening
    nothing through a link. Links, bad names, fifos, sockets and devices are left out and passed
    to ``on_refused``; folders whose name ``skip`` accepts are not entered. ``root/rel`` itself
    being a link raises :class:`UnsafePath`."""
    top = open_dir(root, rel)
    seen = 0

    def refuse(r: Refusal) -> None:
        if on_refused is not None:
            on_refused(r)

    def inner(fd: int, prefix: str, depth: int) -> Iterator[FileEntry]:
        nonlocal seen
        for name in sorted(os.listdir(fd)):
            seen += 1
            shown = prefix + printable(name)
            if seen > max_entries:
                refuse(Refusal(LIMIT_REFUSED, shown, f"more than {max_entries} entries; the rest "
                                                     "is not read"))
                return
            if not name_ok(name):
                refuse(Refusal(NAME_REFUSED, shown, f"{shown}: a name with control characters or "
                                                    "bytes that are not UTF-8 is not read"))
                continue
            st = _lstat(name, fd)
            if st is None:
                continue
            if stat.S_ISLNK(st.st_mode):
                refuse(Refusal(LINK_REFUSED, shown, f"{shown} is a link (-> {_readlink(name, fd)}); "
                                                    "links are not followed"))
            elif stat.S_ISDIR(st.st_mode):
                if skip is not None and skip(name):
                    continue
                if depth >= max_depth:
                    refuse(Refusal(LIMIT_REFUSED, shown, f"deeper than {max_depth} folders"))
                    continue
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # swapped for a link or removed since the lstat: not entered
                try:
                    yield from inner(sub, shown + "/", depth + 1)
                finally:
                    os.close(sub)
            elif stat.S_ISREG(st.st_mode):
                yield FileEntry(rel=shown, stat=st, dir_fd=fd, name=name)
            else:
                refuse(Refusal(SPECIAL_REFUSED, shown, f"{shown} is not a regular file or folder"))

    try:
        yield from inner(top, "", 0)
    finally:
        with contextlib.suppress(OSError):
            os.close(top)


__all__ = ["LIMIT_REFUSED", "LINK_REFUSED", "NAME_REFUSED", "SPECIAL_REFUSED", "FileEntry",
           "Refusal", "UnsafePath", "name_ok", "open_dir", "open_file", "printable", "read_fd",
           "read_file", "walk"]
