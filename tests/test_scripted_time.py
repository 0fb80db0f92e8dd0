"""The scripted agent under a budget too small for its recipe: it sizes each stage to the time
left, its scripts stop training in time to save, and it submits what it has (issue 31, item 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scripted_doubles import EMPTY_LISTING, GRADED, MODEL_LISTING, RUN_KILLED, drive, succeeding

from autorl_gym.agents.spec import import_agent_module

agent_mod = import_agent_module("scripted", "agent")
deadline_mod = import_agent_module("scripted", "deadline")


def _runs(calls):  # noqa: ANN001, ANN202
    return [c for c in calls if c["tool"] == "run"]


def test_each_stage_gets_a_share_of_the_time_left() -> None:
    a = agent_mod.ScriptedAgent(recipe="sft+grpo", reserve_s=20)
    a.reset("", {"scenario": {"task_kind": "static"}, "budget": {"seconds_left": 220.0}})
    first = _runs(drive(a))[0]
    # (220 - 20) / 2 stages = 100 s for the first run; the script 5 s less
    assert 99 <= first["timeout_s"] <= 100
    assert first["command"].startswith("export TRAIN_SECONDS=9")
    # the default reserve: 10 % of the time left, between 20 and 300 s; the cap: train_timeout_s
    b = agent_mod.ScriptedAgent(train_timeout_s=600)
    b.reset("", {"scenario": {"task_kind": "static"}, "budget": {"seconds_left": 3600.0}})
    assert b.reserve_s == 300 and _runs(drive(b))[0]["timeout_s"] == 600
    assert agent_mod.stage_seconds(10, 1, 20, 900) == 0
    assert agent_mod.script_seconds(900) == 855 and agent_mod.script_seconds(40) == 35


def test_a_later_stage_with_too_little_time_is_not_started() -> None:
    a = agent_mod.ScriptedAgent(recipe="sft+grpo", reserve_s=0, min_stage_s=30)
    a.reset("", {"scenario": {"task_kind": "static"}, "budget": {"seconds_left": 40.0}})

    def slow_first_stage(call):  # noqa: ANN001, ANN202
        if call["tool"] == "run":
            a.deadline -= 25  # the first stage spent 25 of its 20 s share (a clock we can move)
        return succeeding(call)

    calls = drive(a, slow_first_stage)
    assert len(_runs(calls)) == 1
    assert calls[-1] == {"tool": "finish", "model_path": "output/v1"}
    assert any("stage 2 not started" in line for line in a.log), a.log


def test_a_killed_stage_is_submitted_only_if_it_saved_a_model() -> None:
    def killed(listing: str):  # noqa: ANN202
        def answer(call):  # noqa: ANN001, ANN202
            return {"run": RUN_KILLED, "list_files": listing, "submit": GRADED}.get(call["tool"], "ok")
        return answer

    a = agent_mod.ScriptedAgent(recipe="sft+grpo")
    a.reset("", {"scenario": {"task_kind": "static"}})
    calls = drive(a, killed(EMPTY_LISTING))
    assert [c["tool"] for c in calls][-3:] == ["run", "list_files", "finish"]
    assert calls[-1] == {"tool": "finish"}  # nothing saved: the baseline, no refused submission
    a.reset("", {"scenario": {"task_kind": "static"}})
    calls = drive(a, killed(MODEL_LISTING))
    assert [c["model_path"] for c in calls if c["tool"] == "submit"] == ["output/v1", "output/v2"]
    assert calls[-1] == {"tool": "finish", "model_path": "output/v2"}


def test_deadline_reads_its_limit_and_keeps_time_to_save(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TRAIN_SECONDS", "100")
    monkeypatch.delenv("TRAIN_SAVE_S", raising=False)
    d = deadline_mod.Deadline.from_env(t0=time.monotonic())
    assert d.limited and d.save_s == 10 and 89 < d.left() <= 90
    assert d.fits(80) and not d.fits(95)
    assert not d.share_spent(0.4) and d.share_spent(0.4, next_s=41)
    monkeypatch.setenv("TRAIN_SECONDS", "")
    assert not deadline_mod.Deadline.from_env().limited
    assert deadline_mod.Deadline.from_env().fits(10**9)
    monkeypatch.setenv("TRAIN_SECONDS", "soon")
    with pytest.raises(SystemExit, match="TRAIN_SECONDS='soon' is not a number"):
        deadline_mod.Deadline.from_env()
    # counted from the process's start: this interpreter has been running a while
    assert 0 < deadline_mod.process_age() < 24 * 3600


@pytest.mark.slow
def test_a_budget_too_small_for_the_recipe_still_ends_with_a_graded_submission(tmp_path: Path,
                                                                             micro_assets) -> None:  # noqa: ANN001
    """200 epochs of SFT (about 100 times what fits) in a 100 s budget: the training script stops
    at its time limit, saves, and the model is submitted, graded and finished with."""
    cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", "AutoRL-Micro-Arith-v0",
           "--agent", "scripted", "--budget-seconds", "100",
           "--agent-option", "train_env={SFT_EPOCHS: 200, SFT_THREADS: 1}",
           "--results-dir", str(tmp_path / "results"), "--workspace-root", str(tmp_path / "ws")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "COLUMNS": "160"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = next((tmp_path / "results").iterdir())
    fb = json.loads((run / "feedback.json").read_text())
    subs = [json.loads(x) for x in (run / "submissions.jsonl").read_text().splitlines()]
    assert len(subs) == 1 and subs[0]["error"] is None and subs[0]["score"] is not None, subs
    # finished by the agent, or (a grading slower than the 20 s reserve on a loaded machine) ended
    # by the budget during the submission's grading: either way submission 1 is the one graded
    assert fb["submission_id"] == 1 and fb["score"] is not None, fb
    assert fb["status"] == "finished" or fb["reason"] == "wall-clock budget spent", fb
    steps = [json.loads(x) for x in (run / "trajectory.jsonl").read_text().splitlines()]
    (train,) = [s for s in steps if s.get("call", {}).get("tool") == "run"]
    out = train["observation"]
    assert out.startswith("exit code: 0 "), out[:2000]      # not killed: it kept to its limit
    assert "time limit: stopping after step" in out and "saved model and tokenizer" in out, out[-2000:]
    print(f"\nmicro arith in a 100 s budget: {fb['baseline']:.2f} -> {fb['score']:.2f} "
          f"({fb['improvement']:+.2f}), episode {fb['elapsed_s']:.0f} s")


def test_the_trainer_callback_sizes_the_schedule_and_stops_in_time() -> None:
    import torch
    from transformers import TrainerControl, TrainerState, get_cosine_schedule_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=10_000)
    deadline = deadline_mod.Deadline(seconds=2.0, save_s=1.0)
    cb = deadline_mod.stop_at_deadline(deadline, window=5)
    state, control = TrainerState(), TrainerControl()
    state.max_steps = 10_000
    while not control.should_training_stop and state.global_step < 10_000:
        cb.on_step_begin(None, state, control)
        time.sleep(0.01)  # a step
        opt.step()
        sched.step()
        state.global_step += 1
        cb.on_step_end(None, state, control, lr_scheduler=sched)
    # sized after 5 steps to what fits in the second left; the schedule ends there; it stopped there
    assert cb.planned is not None and 5 < cb.planned < 10_000
    assert sched.lr_lambdas[0].keywords["num_training_steps"] == cb.planned
    assert control.should_training_stop and state.global_step <= cb.planned
    if state.global_step == cb.planned:  # the plan's end (the usual case): annealed, not cut off
        assert sched.get_last_lr()[0] < 0.05
    else:  # steps slowed after the plan (a load spike): the deadline's own stop came first
        assert deadline.left() < 1.5 * max(cb.recent)
    # a schedule it does not know is left alone (the stop still applies)
    assert not deadline_mod.rescale_schedule(torch.optim.lr_scheduler.StepLR(opt, 10), 5)
