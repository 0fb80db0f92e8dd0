"""conftest.shared_data, the one way a test reaches real data: the folder when it is there; a skip
naming it and AUTORL_GYM_DATA_DIR when it is not (a user's clone); a failure under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, shared_data, shared_data_root

TESTS = Path(__file__).resolve().parent


def test_the_folder_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "thing" / "sub").mkdir(parents=True)
    (tmp_path / "thing" / "a.txt").write_text("x")
    monkeypatch.setenv("AUTORL_GYM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CI", "1")
    assert shared_data("thing", "a.txt", "sub") == tmp_path.resolve() / "thing"
    monkeypatch.delenv("AUTORL_GYM_DATA_DIR")
    assert shared_data_root() == SHARED_DATA == TESTS.parent.parent / "shared" / "data"


def test_skip_names_the_folder_and_the_variable(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("AUTORL_GYM_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(pytest.skip.Exception, match="AUTORL_GYM_DATA_DIR") as info:
        shared_data("gsm8k", "train.jsonl")
    assert f"no folder {tmp_path / 'nowhere' / 'gsm8k'}" in str(info.value)
    (tmp_path / "nowhere" / "gsm8k").mkdir(parents=True)
    with pytest.raises(pytest.skip.Exception, match="lacks train.jsonl, test.jsonl"):
        shared_data("gsm8k", "train.jsonl", "test.jsonl")


def test_ci_fails_instead_of_skipping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("AUTORL_GYM_DATA_DIR", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"AUTORL_GYM_DATA_DIR.*CI must have it"):
        shared_data("alfworld", "json_2.1.1")


def _pytest(test_file: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "AUTORL_GYM_DATA_DIR")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(TESTS / test_file)], capture_output=True, text=True,
                          env={**base, **env}, cwd=TESTS.parent, timeout=300)


def test_a_real_data_test_file_without_its_data(tmp_path: Path) -> None:
    """The ALFWorld tests where the data is not: all skipped, saying where to point; under CI,
    all errors."""
    hidden = str(tmp_path / "no-data")
    res = _pytest("test_interactive_alfworld.py", AUTORL_GYM_DATA_DIR=hidden)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 skipped" in res.stdout and "passed" not in res.stdout, res.stdout
    assert f"no folder {hidden}/alfworld" in res.stdout and "AUTORL_GYM_DATA_DIR" in res.stdout
    res = _pytest("test_interactive_alfworld.py", AUTORL_GYM_DATA_DIR=hidden, CI="1")
    assert res.returncode == 1 and "3 errors" in res.stdout, res.stdout
    assert "CI must have it" in res.stdout
