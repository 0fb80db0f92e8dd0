"""A submission is pinned: checked before its weights are read, copied out of the workspace and
hashed as copied (streamed); the copy is what every grading reads."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import textwrap

import pytest

from autorl_gym.core.records import SubmissionError
from autorl_gym.grading.submission import (
    REFUSED,
    SubmissionLimits,
    check_model,
    model_dir_hash,
    pin_submission,
    pinned,
)


@pytest.fixture
def ws(tmp_path, micro_assets):
    root = tmp_path / "ws"
    out = root / "output" / "m"
    out.mkdir(parents=True)
    for f in micro_assets.model_dir.iterdir():
        shutil.copyfile(f, out / f.name)
    return root


def test_pin_copies_and_hashes_what_it_copied(ws, tmp_path, micro_assets):
    store = tmp_path / "results" / "submissions" / "1" / "m"
    checked = pin_submission("output/m", ws, store)
    assert checked.path == store and checked.source == "output/m"
    assert checked.weights_hash == model_dir_hash(micro_assets.model_dir)  # a base copy, by content
    assert sorted(p.name for p in store.iterdir()) == sorted(p.name for p in micro_assets.model_dir.iterdir())
    assert all(p.stat().st_mode & 0o222 == 0 for p in store.iterdir())
    # the agent overwrites the weights afterwards: the snapshot is untouched
    (ws / "output" / "m" / "model.safetensors").write_bytes(b"\0" * 100)
    assert pinned(store, checked.weights_hash).weights_hash == checked.weights_hash
    base = micro_assets.model_dir / "model.safetensors"
    assert (store / "model.safetensors").read_bytes() == base.read_bytes()


def test_only_model_files_are_taken(ws, tmp_path):
    (ws / "output" / "m" / "optimizer.pt").write_bytes(b"x" * 1000)
    (ws / "output" / "m" / "checkpoint-1").mkdir()
    checked = pin_submission("output/m", ws, tmp_path / "snap")
    names = {p.name for p in checked.path.iterdir()}
    assert "optimizer.pt" not in names and "checkpoint-1" not in names and "config.json" in names


def test_a_changed_snapshot_is_refused(ws, tmp_path):
    checked = pin_submission("output/m", ws, tmp_path / "snap")
    with pytest.raises(SubmissionError, match="no longer holds"):
        pinned(checked.path, "0" * 64)


def _header(tensors: dict, pad: int = 0) -> bytes:
    raw = json.dumps(tensors).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


@pytest.mark.parametrize("header,data,why", [
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 32, "declare 16 bytes"),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "declare 16 bytes"),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8, "declares 16 bytes"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}, b"\0" * 24, "a gap"),
    ({"w": {"dtype": "XX", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "known dtype"),
])
def test_headers_that_do_not_tile_the_file_are_refused(ws, header, data, why):
    (ws / "output" / "m" / "model.safetensors").write_bytes(_header(header) + data)
    with pytest.raises(SubmissionError, match=why) as e:
        check_model("output/m", ws)
    assert e.value.integrity == REFUSED


def test_sparse_file_and_size_cap_refused_before_reading(ws, tmp_path, micro_assets):
    f = ws / "output" / "m" / "model.safetensors"
    n = 1 << 28
    with open(f, "wb") as fh:
        fh.write(_header({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}))
        fh.truncate(fh.tell() + n)
    with pytest.raises(SubmissionError, match="sparse") as e:
        pin_submission("output/m", ws, tmp_path / "snap")
    assert e.value.integrity == REFUSED and not (tmp_path / "snap").exists()
    shutil.copyfile(micro_assets.model_dir / "model.safetensors", f)
    with pytest.raises(SubmissionError, match="max_submission_bytes"):
        pin_submission("output/m", ws, tmp_path / "snap", SubmissionLimits(max_bytes=10))


def test_pickle_weights_refused_unread(ws, tmp_path):
    (ws / "output" / "m" / "model.safetensors").unlink()
    marker = tmp_path / "ran"
    (ws / "output" / "m" / "pytorch_model.bin").write_bytes(
        b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(SubmissionError, match="pickle") as e:
        pin_submission("output/m", ws, tmp_path / "snap")
    assert e.value.integrity == REFUSED and not marker.exists()


def test_links_refused(ws, tmp_path):
    (ws / "output" / "l").symlink_to("m")
    with pytest.raises(SubmissionError, match="is a link") as e:
        check_model("output/l", ws)
    assert e.value.integrity == "workspace.link_refused"
    (ws / "output" / "m" / "tokenizer.json").unlink()
    (ws / "output" / "m" / "tokenizer.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(SubmissionError, match="tokenizer.json is a link"):
        check_model("output/m", ws)


def test_hashing_streams(tmp_path):
    """A 256 MiB weight file is hashed in a few MiB of memory (a fresh process, its peak RSS)."""
    d = tmp_path / "big"
    d.mkdir()
    (d / "config.json").write_text("{}")
    n = 256 << 20
    with open(d / "model.safetensors", "wb") as fh:
        fh.write(_header({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}))
        for _ in range(n >> 24):
            fh.write(b"\1" * (1 << 24))
    code = textwrap.dedent(f"""
        import resource
        from pathlib import Path
        from autorl_gym.grading.submission import check_model
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        check_model("big", Path({str(tmp_path)!r}))
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    grew_mib = int(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                  text=True).stdout.split()[-1])
    assert grew_mib < 32, f"hashing 256 MiB grew the process by {grew_mib} MiB"
