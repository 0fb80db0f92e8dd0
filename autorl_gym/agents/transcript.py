"""A CLI agent's transcript (``cli.transcript``, a workspace path the agent can write), read by the
host without following any link on the way: the agent could turn ``.cli`` (or the file) into a
link to a host file, e.g. another run's transcript. A refusal is an integrity event of the run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from autorl_gym.core.integrity import IntegrityEvent, record_event
from autorl_gym.runtime import safe_walk


def _open(workspace: Path, rel: str, results: Path) -> int | None:
    """A read-only descriptor of the transcript, or None (missing; or refused, recorded)."""
    parent, _, name = rel.rpartition("/")
    try:
        dfd = safe_walk.open_dir(workspace, parent)
        try:
            return safe_walk.open_file(dfd, name, rel)
        finally:
            os.close(dfd)
    except safe_walk.UnsafePath as e:
        record_event(results, IntegrityEvent(kind=e.refusal.kind, source="cli_transcript",
                                             detail=e.refusal.detail, data={"path": e.refusal.path}))
        return None
    except OSError:  # missing: the CLI wrote nothing (yet)
        return None


def transcript_size(workspace: Path, rel: str, results: Path) -> int:
    """Bytes of the transcript (0 when missing or refused)."""
    fd = _open(workspace, rel, results)
    if fd is None:
        return 0
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def copy_transcript(workspace: Path, rel: str, results: Path) -> Path | None:
    """The transcript copied into ``results`` (under its own name); None when missing or refused."""
    fd = _open(workspace, rel, results)
    if fd is None:
        return None
    dest = results / Path(rel).name
    with os.fdopen(fd, "rb") as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out)
    return dest
