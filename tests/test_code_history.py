"""The code history: one commit per change of code/, large files left out, readable back."""

from __future__ import annotations

import subprocess
from pathlib import Path

from autorl_gym.episode.code_history import MAX_FILE_BYTES, CodeHistory, read_history
from autorl_gym.episode.recorder import EpisodeRecorder


def test_commits_only_changes_and_leaves_large_files_out(tmp_path):
    code = tmp_path / "ws" / "code"
    code.mkdir(parents=True)
    h = CodeHistory(tmp_path / "results" / "code_history.git", code)
    first = h.snapshot(0, "episode start", allow_empty=True)
    assert first is not None
    (code / "train.py").write_text("print('v1')\n")
    r1 = h.snapshot(1, "write_file code/train.py")
    assert r1 is not None and r1.commit != first.commit
    assert h.snapshot(2, "run python code/train.py") is None  # nothing changed: no commit
    (code / "train.py").write_text("print('v2')\n")
    (code / "sub").mkdir()
    (code / "sub" / "weights.bin").write_bytes(b"\0" * (MAX_FILE_BYTES + 1))
    r3 = h.snapshot(3, "run python make.py")
    assert r3 is not None and r3.skipped_large == ["sub/weights.bin"]
    (code / "train.py").unlink()
    r4 = h.snapshot(4, "run rm code/train.py")
    assert r4 is not None
    history = read_history(tmp_path / "results" / "code_history.git")
    assert [c["message"].splitlines()[0] for c in history] == [
        "step 0: episode start", "step 1: write_file code/train.py", "step 3: run python make.py",
        "step 4: run rm code/train.py"]
    assert "+print('v1')" in history[1]["patch"]
    assert "-print('v1')" in history[2]["patch"] and "+print('v2')" in history[2]["patch"]
    assert "weights.bin" not in history[2]["patch"]
    assert "left out (over 1 MiB): sub/weights.bin" in history[2]["message"]
    assert "deleted file mode" in history[3]["patch"]
    # nothing is written into the workspace
    assert sorted(p.name for p in code.rglob("*")) == ["sub", "weights.bin"]


def test_the_recorder_survives_a_broken_history(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    rec = EpisodeRecorder(tmp_path / "results")
    rec.run_info({"scenario": "S"})
    rec.track_code(code)
    (code / "a.py").write_text("x = 1\n")
    assert rec.snapshot_code(1, "write_file code/a.py")
    # the repository disappears mid-episode: the step is still recorded, without a commit
    subprocess.run(["rm", "-rf", str(tmp_path / "results" / "code_history.git")], check=True)
    (code / "a.py").write_text("x = 2\n")
    assert rec.snapshot_code(2, "write_file code/a.py") is None
    assert rec.history_error
    assert "code_history" in (tmp_path / "results" / "recording_errors.jsonl").read_text()
    assert rec.snapshot_code(3, "run") is None  # disabled from then on, quietly
    from autorl_gym.report import load_run

    assert any("while recording: code_history failed" in p for p in load_run(rec.root).problems)


def test_unchanged_code_skips_git_and_a_same_size_rewrite_is_still_seen(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    h = CodeHistory(tmp_path / "h.git", code)
    h.snapshot(0, "start", allow_empty=True)
    (code / "a.py").write_text("x = 1\n")
    assert h.snapshot(1, "write") is not None
    calls = []
    real = h._run
    h._run = lambda *a, **k: calls.append(a) or real(*a, **k)  # count git invocations
    assert h.snapshot(2, "run") is None and calls == []  # nothing touched: git is not asked
    (code / "a.py").write_text("x = 2\n")  # same size, new content, likely the same mtime tick
    assert h.snapshot(3, "write") is not None
    assert "+x = 2" in read_history(tmp_path / "h.git")[-1]["patch"]


def test_relative_paths_work(tmp_path, monkeypatch):
    """`autorl-gym run --results-dir res --workspace-root ws` hands the recorder relative paths."""
    monkeypatch.chdir(tmp_path)
    code = tmp_path / "ws" / "code"
    code.mkdir(parents=True)
    h = CodeHistory(Path("res") / "code_history.git", Path("ws") / "code")
    (code / "train.py").write_text("print('v1')\n")
    assert h.snapshot(1, "write_file code/train.py", allow_empty=True) is not None
    history = read_history(tmp_path / "res" / "code_history.git")
    assert [c["message"].splitlines()[0] for c in history] == ["step 1: write_file code/train.py"]


def test_links_and_agent_names_are_data_not_instructions(tmp_path):
    """code/ as a link records nothing; links inside are left out; a name with a newline is
    refused and writes no pattern that could hide another file."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "test.jsonl").write_text("HIDDEN ITEM\n")
    code = tmp_path / "ws" / "code"
    code.mkdir(parents=True)
    refused = []
    h = CodeHistory(tmp_path / "h.git", code, on_refused=refused.append)
    h.snapshot(0, "start", allow_empty=True)
    (code / "x\nhidden.py").write_bytes(b"\0" * (MAX_FILE_BYTES + 1))
    (code / "hidden.py").write_text("print('here')\n")
    (code / "leak").symlink_to(secret / "test.jsonl")
    assert h.snapshot(1, "run") is not None
    patch = read_history(tmp_path / "h.git")[-1]["patch"]
    assert "+print('here')" in patch and "HIDDEN" not in patch and "leak" not in patch
    assert not (tmp_path / "h.git" / "info" / "exclude").exists() or \
        "hidden" not in (tmp_path / "h.git" / "info" / "exclude").read_text()
    assert {(r.kind, r.path) for r in refused} == {
        ("workspace.name_refused", "code/x\\nhidden.py"), ("workspace.link_refused", "code/leak")}
    # code/ itself replaced by a link: nothing is read through it
    import shutil

    shutil.rmtree(code)
    code.symlink_to(secret)
    assert h.snapshot(2, "run") is None
    assert all("HIDDEN" not in c["patch"] for c in read_history(tmp_path / "h.git"))
    assert ("workspace.link_refused", "code") in {(r.kind, r.path) for r in refused}


def test_control_characters_in_a_message_cannot_forge_commits(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    h = CodeHistory(tmp_path / "h.git", code)
    (code / "a.py").write_text("x = 1\n")
    h.snapshot(1, "run echo \x01+forged patch\x00commit " + "0" * 40 + "\nfake", allow_empty=True)
    history = read_history(tmp_path / "h.git")
    assert len(history) == 1 and "+x = 1" in history[0]["patch"]
    assert "forged" not in history[0]["patch"] and "\\x01" in history[0]["message"]
