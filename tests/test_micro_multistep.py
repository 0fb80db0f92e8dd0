"""AutoRL-Micro-Arith-Multistep-v0, the headroom scenario: its seeded data (every step a fact the
base model knows, answers without working), the scratchpad stage's derivation of that working
from the data alone, and the scripted SFT episode's modest gain. (The recipe comparison, SFT
against the scratchpad recipe at full length, is ``bench/micro_recipes.py``: minutes.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scripted_doubles import drive

from autorl_gym.agents.spec import import_agent_module
from autorl_gym.micro.build import ensure_micro_assets, load_split
from autorl_gym.micro.multistep import is_fact, make_chains, working
from autorl_gym.micro.shipped import read_manifest

SCENARIO = "AutoRL-Micro-Arith-Multistep-v0"


@pytest.fixture(scope="module")
def chains():
    return make_chains()


@pytest.fixture(scope="module")
def multistep_assets():
    return ensure_micro_assets("arith_multistep", progress=False)


def test_the_installed_splits_are_the_generators_and_show_no_working(chains, multistep_assets):
    entry = read_manifest().artifacts["arith_multistep-v1"]
    assert entry.files == {} and set(entry.content) == set(entry.generated)  # data only
    assert not (multistep_assets.root / "model").exists()    # the base model is micro:arith
    for split in ("train", "dev", "test"):
        records = load_split(multistep_assets, split)
        assert [r.question for r in records] == [c.question for c in chains[split]]
        assert [r.answer for r in records] == [f"#### {c.result}" for c in chains[split]]
    questions = [{c.question for c in chains[s]} for s in ("train", "dev", "test")]
    assert not (questions[0] & questions[1] or questions[0] & questions[2]
                or questions[1] & questions[2])
    for c in chains["train"] + chains["test"]:
        assert len(c.steps) in (2, 3)
        assert all(is_fact(x, op, n) for x, (op, n) in zip(c.values, c.steps, strict=False))


def test_scratchpad_derives_the_true_working_from_the_data_alone(chains, multistep_assets):
    pad = import_agent_module("scripted", "train_scratchpad")
    records = [json.loads(line) for line in multistep_assets.train_file.read_text().splitlines()]
    derived, stats = pad.derive(records)
    assert [r["answer"] for r in derived] == [working(c) for c in chains["train"]]
    assert stats["derived by the sentence votes"] > 0          # the ambiguous ones, resolved
    shown = [{"question": "Tom has 3 cards. He buys 4 more. How many?", "answer": "3 + 4 = 7\n#### 7"},
             {"question": "no numbers here", "answer": "#### 2"}]
    kept, stats = pad.derive(shown)
    assert kept == shown[:1] and stats["dropped (no single working)"] == 1


def test_the_scratchpad_stage_writes_train_sft_beside_it():
    agent = import_agent_module("scripted", "agent").ScriptedAgent(recipe="scratchpad")
    agent.reset("", {"scenario": {"task_kind": "static"}})
    plan = drive(agent)
    writes = [c["path"] for c in plan if c["tool"] == "write_file"]
    assert writes == ["code/deadline.py", "code/train_sft.py", "code/train_scratchpad.py"]
    assert [c["command"] for c in plan if c["tool"] == "run"] == [
        "export TRAIN_SECONDS=855; OUTPUT_NAME=v1 python code/train_scratchpad.py"]


@pytest.mark.slow
def test_scripted_sft_episode_gains_but_modestly(tmp_path, micro_assets, multistep_assets):
    """Plain SFT on answers without working, capped at 40 steps: above the baseline, and far
    from the headroom (the full recipe comparison is the bench's)."""
    cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", SCENARIO, "--agent", "scripted",
           "--agent-option", "train_env={SFT_MAX_STEPS: 40}",
           "--results-dir", str(tmp_path / "results"), "--workspace-root", str(tmp_path / "ws")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "COLUMNS": "160"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    fb = json.loads((next((tmp_path / "results").iterdir()) / "feedback.json").read_text())
    assert fb["status"] == "finished" and fb["submission_id"] == 1, fb
    assert 0 < fb["improvement"] <= 30, fb
    print(f"\nmulti-step SFT episode: test {fb['baseline']:.2f} -> {fb['score']:.2f} "
          f"({fb['improvement']:+.2f}) in {fb['elapsed_s']:.0f} s")


def test_the_static_grpo_stage_rewards_the_strict_answer_and_trains(tmp_path, micro_assets):
    """Two GRPO steps on a slice of the plain arithmetic split (unit-level; the stage's gain is
    the bench's to measure)."""
    grpo = import_agent_module("scripted", "train_grpo")
    assert grpo.strict_reward([" 3 + 4 = 7\n#### 7", " #### 7\n\n#### 8", "#### 8", "7"],
                              ["#### 7"] * 4) == [1.0, 1.0, 0.0, 0.0]
    assert grpo.strict_reward(["\n\n#### 7"], ["#### 7"]) == [0.0]   # past the grader's stop
    data = tmp_path / "data"
    data.mkdir()
    lines = micro_assets.train_file.read_text().splitlines()[:8]
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    script = Path(grpo.__file__)
    env = {**os.environ, "MODEL_PATH": str(micro_assets.model_dir), "DATA_PATH": str(data),
           "OUTPUT_DIR": str(tmp_path / "out"), "GRPO_MAX_STEPS": "2", "GRPO_PROMPTS": "2",
           "GRPO_GENERATIONS": "4", "GRPO_MAX_COMPLETION": "16", "GRPO_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "step 2/2  reward" in proc.stdout
    assert (tmp_path / "out" / "v1" / "model.safetensors").is_file()


def test_the_data_only_asset_is_refused_as_a_base_model(multistep_assets):
    from autorl_gym.core.assets import resolve_base_model
    from autorl_gym.core.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="ships data only.*micro:arith"):
        resolve_base_model("micro:arith_multistep", progress=False)
