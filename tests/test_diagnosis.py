"""The failure types the real micro episodes in test_report.py do not reach, on runs written
with the real recorder: training_diverged, invalid_submission, no_improvement, and the
training-method reading."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from autorl_gym.core.records import EvalResult, Feedback, ItemResult, SubmissionRecord
from autorl_gym.episode.recorder import EpisodeRecorder
from autorl_gym.report import analyse, load_run


def _result(correct: list[bool]) -> EvalResult:
    items = [ItemResult(index=i, gold="1", answer="1" if c else "2", correct=c,
                        completion="") for i, c in enumerate(correct)]
    n = sum(correct)
    return EvalResult(split="test", n=len(items), score=100 * n / len(items), correct=n,
                      model_hash="h", kind="full", backend="hf",
                      protocol={}, seconds=0.1, items=items)


def record(tmp_path: Path, steps: list[tuple[dict, str, int | None]], subs: list[dict],
           chosen: list[bool] | None, base: list[bool]) -> Path:
    """Write a run with the recorder: steps are (call, observation, exit_code)."""
    code = tmp_path / "code"
    code.mkdir()
    rec = EpisodeRecorder(tmp_path / "run")
    rec.run_info({"scenario": "S", "agent": "a", "base_model": "b", "budget": {"seconds": 100}})
    rec.track_code(code)
    n_sub = 0
    for i, (call, obs, exit_code) in enumerate(steps, 1):
        if call["tool"] == "write_file":
            (code / Path(call["path"]).name).write_text(call["content"])
        if call["tool"] == "submit":
            s = subs[n_sub]
            n_sub += 1
            rec.submission(SubmissionRecord(id=n_sub, time=datetime.now(UTC), elapsed_s=10.0 * i - 1,
                                            model_path=call["model_path"], split="dev", baseline=20.0,
                                            **s))
        commit = rec.snapshot_code(i, call["tool"]) if call["tool"] != "finish" else None
        rec.step(i, 10.0 * i, call, obs, 1.0, 0.0, exit_code, {"seconds_left": 100 - 10 * i},
                 code_commit=commit)
    base_r = _result(base)
    chosen_r = _result(chosen) if chosen is not None else None
    score = chosen_r.score if chosen_r else base_r.score
    valid = [s for s in subs if s.get("error") is None]
    rec.final(Feedback(scenario="S", status="finished", reason="the agent called finish",
                       baseline=base_r.score, score=score, improvement=score - base_r.score,
                       metric="accuracy", submission_id=1 if chosen_r else None,
                       model_path="output/v1" if chosen_r else None, feedback_split="dev",
                       feedback_baseline=20.0, best_feedback_score=None, submissions=len(subs),
                       valid_submissions=len(valid), steps=len(steps), elapsed_s=10.0 * len(steps) + 1,
                       protocol={}), chosen_r, base_r)
    return tmp_path / "run"


GRPO = "from trl import GRPOConfig, GRPOTrainer\ntrainer = GRPOTrainer(model=m, reward_funcs=[r])\n"


def test_nan_loss_is_training_diverged(tmp_path):
    out = "exit code: 0 (12.00 s)\n--- output ---\n" + "\n".join(
        ["step 10/50  loss 1.2000", "step 20/50  loss 0.9000", "step 30/50  loss nan",
         "step 40/50  loss nan"])
    run = record(tmp_path, [
        ({"tool": "write_file", "path": "code/grpo.py", "content": GRPO}, "wrote", None),
        ({"tool": "run", "command": "python code/grpo.py"}, out, 0),
        ({"tool": "submit", "model_path": "output/v1"}, "graded", None),
        ({"tool": "finish"}, "over", None),
    ], [{"score": 12.0, "improvement": -8.0, "weights_hash": "w", "kind": "full"}],
        chosen=[True] * 10 + [False] * 90, base=[True] * 20 + [False] * 80)
    rep = analyse(load_run(run))
    assert rep.diagnosis.failure_type == "training_diverged"
    ev = rep.diagnosis.evidence[0]
    assert ev.step == 2 and "non-finite" in ev.what and "step 30/50  loss nan" in ev.lines
    assert rep.method.method == "GRPO"
    assert rep.method.evidence[0].file == "code/grpo.py"
    assert rep.noise.interval is not None and rep.noise.interval.significant_loss


def test_exploding_loss_is_training_diverged(tmp_path):
    out = "exit code: 0 (12.00 s)\n--- output ---\n" + "\n".join(
        f"{{'loss': {v}, 'epoch': 1}}" for v in (2.1, 1.4, 1.1, 3.5, 9.8))
    run = record(tmp_path, [({"tool": "run", "command": "python train.py"}, out, 0),
                            ({"tool": "submit", "model_path": "output/v1"}, "graded", None)],
                 [{"score": 19.0, "improvement": -1.0, "weights_hash": "w", "kind": "full"}],
                 chosen=[True] * 19 + [False] * 81, base=[True] * 20 + [False] * 80)
    rep = analyse(load_run(run))
    assert rep.diagnosis.failure_type == "training_diverged"
    assert "rose from 1.1 to 9.8" in rep.diagnosis.evidence[0].what


def test_refused_submissions_without_a_crash_are_invalid(tmp_path):
    run = record(tmp_path, [
        ({"tool": "run", "command": "mkdir -p output/v1 && echo '{}' > output/v1/config.json"},
         "exit code: 0 (0.01 s)\n--- output ---\n(no output)", 0),
        ({"tool": "submit", "model_path": "output/v1"}, "refused", None),
        ({"tool": "finish"}, "over", None),
    ], [{"error": "output/v1 has no weights (model.safetensors, pytorch_model.bin or an adapter)"}],
        chosen=None, base=[True] * 20 + [False] * 80)
    rep = analyse(load_run(run))
    assert rep.diagnosis.failure_type == "invalid_submission"
    assert rep.diagnosis.evidence[0].step == 2 and "has no weights" in rep.diagnosis.evidence[0].lines[0]
    assert rep.noise.interval is None and "exactly 0" in rep.noise.note


def test_valid_but_no_better_is_no_improvement(tmp_path):
    sft = "from trl import SFTTrainer\n"
    run = record(tmp_path, [
        ({"tool": "write_file", "path": "code/t.py", "content": sft}, "wrote", None),
        ({"tool": "run", "command": "python code/t.py"},
         "exit code: 0 (1.00 s)\n--- output ---\nstep 1 loss 0.5", 0),
        ({"tool": "submit", "model_path": "output/v1"}, "graded", None),
        ({"tool": "submit", "model_path": "output/v2"}, "graded", None),
    ], [{"score": 19.5, "improvement": -0.5, "weights_hash": "w1", "kind": "full"},
        {"score": 18.0, "improvement": -2.0, "weights_hash": "w2", "kind": "full"}],
        chosen=[True] * 19 + [False] * 81, base=[True] * 20 + [False] * 80)
    rep = analyse(load_run(run))
    assert rep.diagnosis.failure_type == "no_improvement"
    assert rep.process.monotonic_ratio == 0.0 and rep.process.time_to_first_improvement_s is None
    assert rep.process.time_to_best_s == 29.0 and rep.method.method == "SFT"
    assert any("bootstrap" in e.what for e in rep.diagnosis.evidence)
    assert [c.message for c in rep.code_history] == ["step 0: episode start", "step 1: write_file"]


def test_training_killed_at_its_timeout_then_refused_submissions_is_a_timeout(tmp_path):
    out = ("exit code: killed (900.02 s)\ntimed out: the command and all its processes were killed\n"
           "--- output ---\nstep 240/250  loss 0.0158  lr 1.03e-05  886s")
    run = record(tmp_path, [
        ({"tool": "run", "command": "python code/train.py"}, out, None),
        ({"tool": "submit", "model_path": "output/v1"}, "refused", None),
    ], [{"error": "model_path 'output/v1' does not exist in the workspace"}],
        chosen=None, base=[True] * 20 + [False] * 80)
    rep = analyse(load_run(run))
    assert rep.diagnosis.failure_type == "timeout_no_submission"
    ev = rep.diagnosis.evidence
    assert ev[0].step == 1 and "timed out" in ev[0].what and "step 240/250" in ev[0].lines[-1]
    assert ev[1].step == 2 and "does not exist" in ev[1].lines[0]
