"""The one no-follow walker every host-side reader of a workspace uses."""

from __future__ import annotations

import os

import pytest

from autorl_gym.runtime import safe_walk
from autorl_gym.runtime.safe_walk import LINK_REFUSED, NAME_REFUSED, SPECIAL_REFUSED, UnsafePath


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "ws"
    (root / "code" / "sub").mkdir(parents=True)
    (root / "code" / "a.py").write_text("a")
    (root / "code" / "sub" / "b.py").write_text("b")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("KEY")
    (root / "code" / "file-link").symlink_to(secret / "key.txt")
    (root / "code" / "dir-link").symlink_to(secret)
    (root / "code" / "bad\nname.py").write_text("n")
    os.mkfifo(root / "code" / "fifo")
    return root


def test_walk_reads_regular_files_only_and_reports_the_rest(ws):
    refused = []
    entries = {e.rel: e.read(100) for e in safe_walk.walk(ws, "code", on_refused=refused.append)}
    assert entries == {"a.py": b"a", "sub/b.py": b"b"}
    kinds = {(r.kind, r.path) for r in refused}
    assert kinds == {(LINK_REFUSED, "dir-link"), (LINK_REFUSED, "file-link"),
                     (NAME_REFUSED, "bad\\nname.py"), (SPECIAL_REFUSED, "fifo")}
    assert all("\n" not in r.detail for r in refused)


def test_a_folder_that_is_a_link_is_refused_not_followed(ws, tmp_path):
    (ws / "code2").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafePath) as e:
        list(safe_walk.walk(ws, "code2"))
    assert e.value.refusal.kind == LINK_REFUSED
    with pytest.raises(UnsafePath):
        safe_walk.read_file(ws, "code/dir-link/key.txt", 100)
    with pytest.raises(UnsafePath):
        safe_walk.read_file(ws, "code/file-link", 100)
    with pytest.raises(UnsafePath):
        safe_walk.read_file(ws, "../secret/key.txt", 100)
    assert safe_walk.read_file(ws, "code/sub/b.py", 100) == b"b"


def test_a_file_swapped_after_listing_is_not_read(ws, tmp_path):
    for entry in safe_walk.walk(ws, "code"):
        if entry.rel == "a.py":
            (ws / "code" / "a.py").unlink()
            (ws / "code" / "a.py").symlink_to(tmp_path / "secret" / "key.txt")
            with pytest.raises(UnsafePath):
                entry.read(100)


def test_caps(ws):
    (ws / "code" / "big").write_bytes(b"x" * 1000)
    with pytest.raises(OSError, match="more than"):
        safe_walk.read_file(ws, "code/big", 999)
    refused = []
    list(safe_walk.walk(ws, "code", on_refused=refused.append, max_entries=2))
    assert any(r.kind == safe_walk.LIMIT_REFUSED for r in refused)
