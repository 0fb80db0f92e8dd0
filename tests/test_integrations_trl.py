"""The TRL environment class: its tools as TRL sees them, an episode through its methods, and a
few GRPOTrainer steps on CPU with a tiny tool-calling chat model built here."""

from __future__ import annotations

import json

import pytest

from autorl_gym.integrations.trl import AutoRLToolEnv, scenario_dataset, tool_env_factory

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TOOLS = ["finish", "list_files", "read_file", "run", "submit", "write_file"]


def test_methods_become_tool_schemas():
    from transformers.utils import get_json_schema

    env = AutoRLToolEnv()
    schemas = {name: get_json_schema(getattr(env, name))["function"] for name in TOOLS}
    assert schemas["write_file"]["parameters"]["required"] == ["path", "content"]
    assert schemas["run"]["parameters"]["properties"]["timeout_s"]["type"] == "number"
    assert "test split" in schemas["finish"]["description"]
    assert all(s["description"] for s in schemas.values())


def test_dataset_rows_name_their_scenario():
    ds = scenario_dataset(["AutoRL-Micro-Arith-v0"], repeats=3)
    assert len(ds) == 3 and ds[0]["scenario"] == "AutoRL-Micro-Arith-v0"
    content = ds[0]["prompt"][0]["content"]
    assert ds[0]["prompt"][0]["role"] == "user" and "Micro arithmetic" in content and "finish" in content


def test_an_episode_through_the_methods(tmp_path, micro_assets):
    env = tool_env_factory(workspace_root=tmp_path / "w", results_dir=tmp_path / "r")()
    assert env.reset(scenario="AutoRL-Micro-Arith-v0", prompt="ignored") is None
    assert env.write_file("code/a.py", "print(6 * 7)\n").startswith("wrote")
    assert env.read_file("code/a.py", offset=6, limit=5) == "6 * 7"
    assert "a.py" in env.list_files("code")
    assert "42" in env.run("python code/a.py")
    assert "valid" in env.submit("output/nothing-here") or "not" in env.submit("output/nothing-here")
    first = env.results_dir
    assert env.get_reward() == 0.0  # finished by get_reward: no valid submission, the baseline
    feedback = json.loads((first / "feedback.json").read_text())
    assert feedback["status"] == "finished" and feedback["improvement"] == 0.0
    assert env.tool_calls == ["write_file", "read_file", "list_files", "run", "submit", "submit", "finish"]
    env.reset(scenario="AutoRL-Micro-Arith-v0")  # a fresh episode, its own folders
    assert env.results_dir != first and env.tool_calls == []
    assert "mine" not in env.list_files("code")
    env.env.close()


def test_grpo_trainer_rollouts_call_our_tools(tmp_path, micro_assets, monkeypatch):
    from jinja2 import Template
    from transformers.utils import get_json_schema
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen2_5_chat_template
    from trl_chat_model import MARK_COMMAND, call, chat_tokenizer, teach

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    dataset = scenario_dataset(["AutoRL-Micro-Arith-v0"], repeats=4)
    probe = AutoRLToolEnv()
    tools = [getattr(probe, name) for name in TOOLS]
    rendered = Template(qwen2_5_chat_template).render(
        messages=dataset[0]["prompt"], tools=[get_json_schema(t) for t in tools], add_generation_prompt=True)
    tok = chat_tokenizer([rendered + call("run", {"command": MARK_COMMAND}) + call("finish", {})])
    model = teach(tok, dataset[0]["prompt"], tools)

    made: list[AutoRLToolEnv] = []

    def factory() -> AutoRLToolEnv:
        made.append(AutoRLToolEnv(workspace_root=tmp_path / "w", results_dir=tmp_path / "r"))
        return made[-1]

    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=64, max_tool_calling_iterations=2, max_steps=2,
                      learning_rate=1e-4, logging_steps=1, report_to=[], use_cpu=True, bf16=False,
                      save_strategy="no", seed=0)
    trainer = GRPOTrainer(model=model, processing_class=tok, args=args, train_dataset=dataset,
                          environment_factory=factory)
    trainer.train()

    logged = [h for h in trainer.state.log_history if "rewards/AutoRLToolEnv/mean" in h]
    assert len(logged) == 2  # our env's get_reward is a reward source, logged per step
    runs = sorted((tmp_path / "r").iterdir())
    feedback = [json.loads((r / "feedback.json").read_text()) for r in runs if (r / "feedback.json").exists()]
    assert len(feedback) >= 4 and all(f["status"] == "finished" for f in feedback)
    assert all(h["rewards/AutoRLToolEnv/mean"] == 0.0 for h in logged)
    assert {f["improvement"] for f in feedback} == {0.0}  # the env's reward, as logged
    called = [(json.loads(line)["call"] or {}).get("tool") for r in runs
              for line in (r / "trajectory.jsonl").read_text().splitlines()]
    assert "run" in called  # rollouts called our tools, in our episodes
    marks = list((tmp_path / "w").glob("*/code/mark.txt"))
    assert marks and marks[0].read_text() == "trl-was-here\n"
