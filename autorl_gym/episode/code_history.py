"""The agent's code history: a git repository kept in the results folder (outside the sandbox,
so the agent cannot alter it) that records the workspace's ``code/``. One commit per step that
changed ``code/`` (write_file, run, submit); ``git --git-dir RESULTS/code_history.git log -p``
shows what the agent wrote, step by step.

``code/`` is read with :mod:`autorl_gym.runtime.safe_walk`, never by git: no link is followed (a ``code/``
that is itself a link records nothing; a link inside it is left out), only regular files are
read, and a name is never turned into a pattern: the blobs, trees and commits are written here
from the files read, so no exclude file exists for a name to write into. Links, names with
control characters and other refusals are passed to ``on_refused`` (the recorder makes integrity
events of them). Files over :data:`MAX_FILE_BYTES` (checkpoints, data dumps) are left out and
named in the commit message. A git failure is logged and recorded, never raised into the episode.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from autorl_gym.core.run_folder import RunFolder
from autorl_gym.runtime import safe_walk
from autorl_gym.runtime.safe_walk import Refusal, UnsafePath

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1 << 20
#: a file modified this close to the last snapshot may change again without its stat changing
#: (file timestamps are coarser than the clock): its content is read again ("racy git")
_RACY_NS = 100_000_000
GIT_DIR_NAME = RunFolder.CODE_HISTORY
_IDENTITY = {
    "GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "agent@autorl-gym",
    "GIT_COMMITTER_NAME": "autorl-gym", "GIT_COMMITTER_EMAIL": "recorder@autorl-gym",
}
_StatKey = tuple[int, int, int, int, int]  # size, mtime, ctime, inode, mode


class CodeHistoryError(RuntimeError):
    pass


class Revision(BaseModel):
    commit: str
    step: int
    message: str
    skipped_large: list[str] = []


class CodeHistory:
    """``git_dir`` holds the history; ``code_dir`` is the tree it records (read, never followed)."""

    def __init__(self, git_dir: Path, code_dir: Path,
                 on_refused: Callable[[Refusal], None] | None = None):
        # absolute: relative --results-dir paths work from any working directory
        self.git_dir, self.code_dir = Path(git_dir).absolute(), Path(code_dir).absolute()
        self.on_refused = on_refused
        # rel path -> (its stat, when it was read, its blob id): unchanged files are not read again
        self._blobs: dict[str, tuple[_StatKey, int, str]] = {}
        self._head: str | None = None
        self._tree: str | None = None
        if shutil.which("git") is None:
            raise CodeHistoryError("git is not installed: the code history is not recorded")
        if not git_dir.exists():
            self._git("init", "--quiet", "--bare", str(git_dir))
            self._git("config", "gc.auto", "0")
        else:
            head = self._run("rev-parse", "--verify", "-q", "HEAD")
            if head.returncode == 0:
                self._head = head.stdout.strip()
                self._tree = self._git("rev-parse", f"{self._head}^{{tree}}").strip()

    def _git(self, *args: str, input: str | None = None) -> str:
        proc = self._run(*args, input=input)
        if proc.returncode != 0:
            raise CodeHistoryError(f"git {args[0]} failed: {proc.stderr.strip()[:500]}")
        return proc.stdout

    def _run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(_IDENTITY, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
                   GIT_TERMINAL_PROMPT="0")
        cmd = ["git"] + ([] if args[0] == "init" else ["--git-dir", str(self.git_dir)])
        return subprocess.run(cmd + list(args), capture_output=True, text=True, env=env,
                              timeout=120, errors="replace", input=input)

    # -- objects, written here -----------------------------------------------------------------
    def _write_object(self, kind: str, data: bytes) -> str:
        raw = f"{kind} {len(data)}\0".encode() + data
        oid = hashlib.sha1(raw).hexdigest()
        path = self.git_dir / "objects" / oid[:2] / oid[2:]
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(zlib.compress(raw, 1))
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        return oid

    def _write_tree(self, files: dict[str, tuple[str, str]]) -> str:
        """The tree of ``rel path -> (mode, blob id)``, subtrees included; returns its id."""
        children: dict[str, dict[str, tuple[str, str]]] = {}
        entries: list[tuple[bytes, bytes]] = []  # (sort key, entry)
        for rel, (mode, oid) in files.items():
            head, sep, rest = rel.partition("/")
            if sep:
                children.setdefault(head, {})[rest] = (mode, oid)
            else:
                entries.append((head.encode(), f"{mode} {head}".encode() + b"\0" + bytes.fromhex(oid)))
        for name, sub in children.items():
            oid = self._write_tree(sub)
            entries.append(((name + "/").encode(), f"40000 {name}".encode() + b"\0" + bytes.fromhex(oid)))
        return self._write_object("tree", b"".join(e for _, e in sorted(entries)))

    def _read(self, racy_after_ns: int) -> tuple[dict[str, tuple[str, str]], list[str]] | None:
        """``code/`` as ``rel -> (mode, blob id)`` and the files over the size limit; None when
        ``code/`` cannot be read (a link, gone)."""
        files: dict[str, tuple[str, str]] = {}
        large: list[str] = []
        blobs: dict[str, tuple[_StatKey, int, str]] = {}
        try:
            walker = safe_walk.walk(self.code_dir.parent, self.code_dir.name,
                                    on_refused=self._refused, skip=lambda n: n.lower() == ".git")
            for entry in walker:
                if entry.name.lower() == ".git":
                    continue
                st = entry.stat
                if st.st_size > MAX_FILE_BYTES:
                    large.append(entry.rel)
                    continue
                key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)
                known = self._blobs.get(entry.rel)
                if known is not None and known[0] == key and \
                        max(st.st_mtime_ns, st.st_ctime_ns) < known[1] - _RACY_NS:
                    oid = known[2]
                else:
                    try:
                        oid = self._write_object("blob", entry.read(MAX_FILE_BYTES))
                    except OSError:
                        continue  # changed or vanished while read: seen at the next step
                blobs[entry.rel] = (key, racy_after_ns + _RACY_NS, oid)
                files[entry.rel] = ("100755" if st.st_mode & 0o111 else "100644", oid)
        except UnsafePath as e:  # code/ itself (its path is relative to the workspace already)
            if self.on_refused is not None:
                self.on_refused(e.refusal)
            return None
        except FileNotFoundError:
            return None
        self._blobs = blobs
        return files, large

    def _refused(self, r: Refusal) -> None:
        if self.on_refused is not None:
            self.on_refused(Refusal(r.kind, f"code/{r.path}".rstrip("/"), r.detail))

    def snapshot(self, step: int, message: str, allow_empty: bool = False) -> Revision | None:
        """Commit ``code/`` as it is now; None when nothing changed since the last commit."""
        if not (self.git_dir / "HEAD").is_file():
            raise CodeHistoryError(f"the code history repository {self.git_dir} is gone")
        read = self._read(time.time_ns() - _RACY_NS)
        if read is None:  # code/ is a link or gone: nothing of it is recorded
            if not allow_empty:
                return None
            read = ({}, [])
        files, large = read
        tree = self._write_tree(files)
        if tree == self._tree and not allow_empty:
            return None
        # the message quotes the agent's command: no control character of it reaches git's log
        # output, whose records read_history splits on \x00 and \x01
        full = f"step {step}: {_printable_line(message)}"
        if large:
            full += "\n\nleft out (over 1 MiB): " + ", ".join(large)
        parents = ["-p", self._head] if self._head else []
        commit = self._git("commit-tree", tree, *parents, "-F", "-", input=full).strip()
        self._git("update-ref", "HEAD", commit)
        self._head, self._tree = commit, tree
        return Revision(commit=commit, step=step, message=message, skipped_large=large)


def _printable_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def read_history(git_dir: Path) -> list[dict]:
    """Commits, oldest first: ``commit``, ``message``, and the patch of each (``git log -p``)."""
    if not (git_dir / "HEAD").is_file():
        raise CodeHistoryError(f"{git_dir} is not a git repository")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    proc = subprocess.run(
        ["git", "--git-dir", str(git_dir), "log", "--reverse", "-p", "--no-color", "--no-ext-diff",
         "--format=%x00commit %H%n%B%x01"],
        capture_output=True, text=True, env=env, timeout=120, errors="replace")
    if proc.returncode != 0:
        if "does not have any commits" in proc.stderr:
            return []
        raise CodeHistoryError(f"git log failed in {git_dir}: {proc.stderr.strip()[:300]}")
    commits = []
    for chunk in proc.stdout.split("\x00"):
        if not chunk.startswith("commit "):
            continue
        head, _, patch = chunk.partition("\x01")
        first, _, message = head.partition("\n")
        commits.append({"commit": first.split()[1], "message": message.strip(),
                        "patch": patch.strip("\n")})
    return commits
