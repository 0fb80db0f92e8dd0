"""The agent's code history: a git repository kept in the results folder (outside the sandbox,
so the agent cannot alter it) whose work tree is the workspace's ``code/``. One commit per step
that changed ``code/`` (write_file, run, submit); ``git --git-dir RESULTS/code_history.git log -p``
shows what the agent wrote, step by step.

Files over :data:`MAX_FILE_BYTES` (checkpoints, data dumps) are left out of the history and
named in the commit message. A git failure is logged and recorded, never raised into the episode.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from pydantic import BaseModel

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1 << 20
#: a file modified this close to the last snapshot may change again without its stat changing
#: (file timestamps are coarser than the clock): its content is hashed too ("racy git")
_RACY_NS = 100_000_000
GIT_DIR_NAME = "code_history.git"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "agent@autorl-gym",
    "GIT_COMMITTER_NAME": "autorl-gym", "GIT_COMMITTER_EMAIL": "recorder@autorl-gym",
}


class CodeHistoryError(RuntimeError):
    pass


class Revision(BaseModel):
    commit: str
    step: int
    message: str
    skipped_large: list[str] = []


class CodeHistory:
    """``git_dir`` holds the history; ``code_dir`` is the tree it records."""

    def __init__(self, git_dir: Path, code_dir: Path):
        # absolute: git runs with code/ as its working directory (relative --results-dir paths)
        self.git_dir, self.code_dir = Path(git_dir).absolute(), Path(code_dir).absolute()
        self._seen: tuple[tuple, int] | None = None  # (fingerprint, its racy threshold) at the last snapshot
        if shutil.which("git") is None:
            raise CodeHistoryError("git is not installed: the code history is not recorded")
        if not git_dir.exists():
            self._git("init", "--quiet", "--bare", str(git_dir), work_tree=False)
            self._git("config", "core.bare", "false")
            self._git("config", "core.autocrlf", "false")
            self._git("config", "core.symlinks", "true")
            self._git("config", "gc.auto", "0")

    def _git(self, *args: str, work_tree: bool = True, check: bool = True) -> str:
        proc = self._run(*args, work_tree=work_tree)
        if check and proc.returncode != 0:
            raise CodeHistoryError(f"git {args[0]} failed: {proc.stderr.strip()[:500]}")
        return proc.stdout

    def _run(self, *args: str, work_tree: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(_IDENTITY, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
                   GIT_TERMINAL_PROMPT="0")
        cmd = ["git"]
        if args[0] != "init":
            cmd += ["--git-dir", str(self.git_dir)]
            if work_tree:
                cmd += ["--work-tree", str(self.code_dir)]
        cwd = self.code_dir if work_tree and self.code_dir.is_dir() else None
        return subprocess.run(cmd + list(args), capture_output=True, text=True, env=env,
                              timeout=120, cwd=cwd, errors="replace")

    def _scan(self, racy_after_ns: int) -> tuple[tuple, list[str]]:
        """A fingerprint of code/ (stat of every file, and the content digest of files changed
        after ``racy_after_ns``), and the files over the size limit."""
        entries: list[tuple] = []
        large: list[str] = []
        if not self.code_dir.is_dir():
            return (), large
        for root, dirs, files in os.walk(self.code_dir):
            dirs[:] = sorted(d for d in dirs if d != ".git")
            for name in sorted(files):
                p = Path(root) / name
                try:
                    st = p.lstat()
                except OSError:
                    continue
                rel = p.relative_to(self.code_dir).as_posix()
                digest = ""
                if max(st.st_mtime_ns, st.st_ctime_ns) >= racy_after_ns and p.is_file() \
                        and not p.is_symlink():
                    try:
                        digest = hashlib.sha1(p.read_bytes()).hexdigest()
                    except OSError:
                        digest = "unreadable"
                entries.append((rel, st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode, digest))
                if not p.is_symlink() and st.st_size > MAX_FILE_BYTES:
                    large.append(rel)
        return tuple(entries), large

    def snapshot(self, step: int, message: str, allow_empty: bool = False) -> Revision | None:
        """Commit ``code/`` as it is now; None when nothing changed since the last commit."""
        if not (self.git_dir / "HEAD").is_file():
            raise CodeHistoryError(f"the code history repository {self.git_dir} is gone")
        if not allow_empty and self._seen is not None:
            before, racy_after = self._seen
            if self._scan(racy_after)[0] == before:
                return None  # code/ is as it was at the last snapshot: no need to ask git
        # code/ is quiet during a snapshot (no agent process outlives its step); a change made
        # after this scan shows in the next one, by its stat or by its content digest
        racy_after = time.time_ns() - _RACY_NS
        fingerprint, large = self._scan(racy_after)
        self._seen = (fingerprint, racy_after)
        exclude = self.git_dir / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        # Large files and nested repositories stay out; written afresh each time.
        exclude.write_text("".join(f"/{_escape(p)}\n" for p in large) + ".git\n")
        if self.code_dir.is_dir():
            self._git("add", "--all", "--ignore-errors", check=False)
        full = f"step {step}: {message}"
        if large:
            full += "\n\nleft out (over 1 MiB): " + ", ".join(large)
        proc = self._run("commit", "--no-verify", "-m", full, *(["--allow-empty"] if allow_empty else []))
        if proc.returncode != 0:
            if "nothing to commit" in proc.stdout + proc.stderr or "nothing added" in proc.stdout:
                return None
            raise CodeHistoryError(f"git commit failed: {(proc.stderr or proc.stdout).strip()[:500]}")
        commit = self._git("rev-parse", "HEAD").strip()
        return Revision(commit=commit, step=step, message=message, skipped_large=large)


def _escape(path: str) -> str:
    out = path
    for ch in "\\*?[!#":
        out = out.replace(ch, "\\" + ch)
    return out


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
