"""The scripted agent's interactive GRPO stage (``train_interactive_grpo.py``): group-relative
advantages, and a couple of iterations on a few micro TextWorld training games that save a model
the evaluator's policy loads. The whole ``sft+grpo`` recipe is measured by
``bench/micro_recipes.py``, not here."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from scripted_doubles import drive

from autorl_gym.agents.spec import import_agent_module
from autorl_gym.interactive import HFPolicy, find_games, rollout
from autorl_gym.micro.textworld import PROMPT
from autorl_gym.scenarios.catalog import get_scenario
from autorl_gym.tasks.interactive import settings_json


def test_group_advantages_are_relative_to_each_group() -> None:
    grpo = import_agent_module("scripted", "train_interactive_grpo")
    adv = grpo.group_advantages([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.5], group=4)
    assert adv[:4] == pytest.approx([3 ** 0.5, -(3 ** -0.5), -(3 ** -0.5), -(3 ** -0.5)])
    assert adv[4:] == pytest.approx([1.0, 1.0, -1.0, -1.0])
    assert grpo.group_advantages([0.0, 0.0, 1.0, 1.0], group=2) == [0.0] * 4  # nothing to learn


def test_grpo_stage_trains_on_a_few_games_and_saves_a_loadable_model(tmp_path, monkeypatch, capsys,  # noqa: ANN001
                                                                     textworld_assets) -> None:  # noqa: ANN001
    grpo = import_agent_module("scripted", "train_interactive_grpo")
    games_dir = tmp_path / "data" / "games"
    games_dir.mkdir(parents=True)
    for game in find_games(textworld_assets.train_dir)[:3]:
        for f in (game.path, game.path.with_suffix(".json")):
            (games_dir / f.name).symlink_to(f)
    monkeypatch.chdir(tmp_path)
    # the scenario's settings, but games cut to 6 steps to keep the test short
    settings = json.dumps({**json.loads(settings_json(get_scenario("AutoRL-Micro-TextWorld-v0"),
                                                      "data/games")), "max_steps": 6})
    for name, value in {"AUTORL_INTERACTIVE": settings, "MODEL_PATH": str(textworld_assets.model_dir),
                        "OUTPUT_DIR": str(tmp_path / "output"), "OUTPUT_NAME": "v2", "GRPO_ITERS": "2",
                        "GAMES": "3", "GROUP": "3", "THREADS": "1",
                        "TEMPERATURE": "2.0"}.items():
        monkeypatch.setenv(name, value)
    threads = torch.get_num_threads()
    try:
        grpo.main()  # in-process: a subprocess would pay torch's and transformers' imports again
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.splitlines()
    assert sum(ln.startswith("iteration ") for ln in lines) == 2, lines
    assert "saved model and tokenizer" in lines[-1]
    trained = sum(int(ln.split(" distinct states")[0].rsplit(" ", 1)[1]) for ln in lines
                  if ln.startswith("iteration "))
    assert trained > 0, lines  # the seeded rollouts won some games and lost others
    out = tmp_path / "output" / "v2"
    before = load_file(textworld_assets.model_dir / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not (before[k] == after[k]).all() for k in before)
    # the evaluator's policy loads it and plays
    policy = HFPolicy(out, choose="admissible", batch_size=16)
    (ep,) = rollout(find_games(games_dir)[:1], policy, max_steps=3, prompt=PROMPT)
    assert ep.steps >= 1 and ep.error is None

    monkeypatch.setenv("GROUP", "1")
    with pytest.raises(SystemExit, match="GROUP must be at least 2"):
        grpo.main()


def test_sft_grpo_recipe_chains_the_interactive_stages() -> None:
    agent = import_agent_module("scripted", "agent")
    a = agent.ScriptedAgent(recipe="sft+grpo", train_env={"THREADS": 1})
    a.reset("", {"scenario": {"task_kind": "interactive"}})
    plan = drive(a)
    runs = [c["command"] for c in plan if c["tool"] == "run"]
    assert runs == ["export TRAIN_SECONDS=855; export THREADS=1; OUTPUT_NAME=v1 python "
                    "code/train_interactive.py",
                    "export TRAIN_SECONDS=855; export THREADS=1; MODEL_PATH=output/v1 OUTPUT_NAME=v2 "
                    "python code/train_interactive_grpo.py"]
    assert plan[-1] == {"tool": "finish", "model_path": "output/v2"}
