"""The agent interface: registry, options, package agents; rdagent's pure helpers."""

from __future__ import annotations

import json

import pytest
from scripted_doubles import drive

from autorl_gym.agents.spec import AgentError, agent_options, find_agents, import_agent_module, make_agent

records = import_agent_module("rdagent", "records")


def test_registry_finds_both_agents_and_passes_options(monkeypatch):
    assert {"scripted", "rdagent"} <= set(find_agents())
    a = make_agent("scripted", train_timeout_s=5)
    assert a.train_timeout_s == 5
    with pytest.raises(AgentError, match="does not take these options"):
        make_agent("scripted", llm_model="x")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        make_agent("rdagent")
    scripted = make_agent("scripted", train_env={"SFT_EPOCHS": 1, "NOISE": "0.5 x"})
    scripted.reset("", {"scenario": {"task_family": "textworld"}})
    run = [a for a in drive(scripted) if a["tool"] == "run"][0]
    assert run["command"] == ("export TRAIN_SECONDS=855; export SFT_EPOCHS=1; export NOISE='0.5 x'; "
                              "OUTPUT_NAME=v1 python code/train_sft.py")
    with pytest.raises(AgentError, match="not environment variable names: 'A B'"):
        make_agent("scripted", train_env={"A B": 1})
    with pytest.raises(AgentError, match="train_env must be a mapping"):
        make_agent("scripted", train_env="SFT_EPOCHS=1")
    rd = make_agent("rdagent", llm_base_url="http://127.0.0.1:9/v1", llm_model="m", max_iterations=2)
    assert rd.max_iterations == 2 and rd.llm.model == "m"


def test_agent_options_parse_yaml_values():
    opts = agent_options(["max_iterations=3", "temperature=0.5", "name=abc", "flag=true"],
                         llm_model="m", llm_base_url=None)
    assert opts == {"max_iterations": 3, "temperature": 0.5, "name": "abc", "flag": True, "llm_model": "m"}
    with pytest.raises(AgentError, match="KEY=VALUE"):
        agent_options(["novalue"])


def test_head_tail_keeps_both_ends_within_the_limit():
    text = "HEAD" + "x" * 10_000 + "TAIL"
    out = records.head_tail(text, 500)
    assert len(out) <= 500 and out.startswith("HEAD") and out.endswith("TAIL")
    assert "characters omitted" in out
    assert records.head_tail("short", 500) == "short"


def test_submission_and_exit_code_are_read_from_observations():
    graded = "submission graded\n" + json.dumps({"submission_id": 2, "split": "dev", "score": 61.5,
                                                 "baseline": 21.0, "improvement": 40.5, "best_so_far": 61.5,
                                                 "best_submission_id": 2, "submissions_left": 8})
    s = records.read_submission(graded, "output/v2")
    assert s.valid and s.score == 61.5 and s.submissions_left == 8
    last = records.read_submission(graded + '\n\nepisode over: submission limit reached\n{"test_score": 60}',
                                   "output/v2")
    assert last.valid and last.score == 61.5
    assert not records.read_submission("submission graded\n{broken", "output/v2").valid
    refused = records.read_submission("submission 3 refused: output/v9 does not exist", "output/v9")
    assert not refused.valid and refused.submission_id == 3 and "does not exist" in refused.error
    assert records.read_exit_code("exit code: 1 (0.20 s)\n--- output ---\n") == 1
    assert records.read_exit_code("exit code: killed (3.00 s)") is None


def test_trace_best_is_the_highest_score_earliest_on_ties():
    hyp = records.Hypothesis(hypothesis="h", method="SFT", plan="p", reason="r")

    def exp(i, score):
        sub = records.SubmissionResult(submission_id=i, model_path=f"output/v{i}", score=score,
                                       baseline=20.0, improvement=None if score is None else score - 20)
        if score is None:
            sub.error = "refused"
        return records.Experiment(index=i, hypothesis=hyp, submission=sub)

    trace = records.Trace(experiments=[exp(1, 40.0), exp(2, 55.0), exp(3, None), exp(4, 55.0)])
    assert trace.best().index == 2 and trace.best_score() == 55.0
    text = trace.summary()
    assert "Experiment 2  <== best so far" in text and "refused" in text


def test_fit_context_shrinks_old_tool_results_first():
    agent_mod = import_agent_module("rdagent", "agent")
    rd = make_agent("rdagent", llm_base_url="http://127.0.0.1:9/v1", llm_api_key="k", max_context_chars=5000)
    big = "y" * 20_000
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    for i in range(4):
        msgs.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function",
             "function": {"name": "write_file", "arguments": json.dumps({"path": "a", "content": big})}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "content": big})
    rd._fit_context(msgs)
    assert len(msgs[3]["content"]) <= 600 and len(msgs[-1]["content"]) == 20_000  # the latest stay whole
    assert json.loads(msgs[2]["tool_calls"][0]["function"]["arguments"])["path"] == "a"
    assert isinstance(agent_mod.PROPOSE_TOOL["function"]["parameters"]["properties"], dict)


def test_llm_retries_are_cut_to_fit_the_deadline():
    llm = import_agent_module("rdagent", "llm")
    # the openai client's backoff: 0.5, 1, 2, 4, 8, 8 s
    assert llm.retries_within(0.0, 6) == 0
    assert llm.retries_within(3.5, 6) == 3
    assert llm.retries_within(23.5, 6) == 6
    assert llm.retries_within(1000.0, 2) == 2


def test_scripted_recipes_chain_their_stages(monkeypatch):
    scripted_agent = import_agent_module("scripted", "agent")
    monkeypatch.setitem(scripted_agent.STAGES, "polish", {"static": "train_sft.py"})
    a = scripted_agent.ScriptedAgent(recipe="sft+polish", train_env={"SFT_EPOCHS": 1})
    a.reset("", {"scenario": {"task_kind": "static"}})
    plan = drive(a)
    assert [c["tool"] for c in plan] == ["list_files", "write_file", "write_file", "run", "submit",
                                         "write_file", "write_file", "run", "submit", "finish"]
    runs = [c["command"] for c in plan if c["tool"] == "run"]
    assert runs == ["export TRAIN_SECONDS=855; export SFT_EPOCHS=1; OUTPUT_NAME=v1 python code/train_sft.py",
                    "export TRAIN_SECONDS=855; export SFT_EPOCHS=1; MODEL_PATH=output/v1 OUTPUT_NAME=v2 "
                    "python code/train_sft.py"]
    assert [c["model_path"] for c in plan if c["tool"] in ("submit", "finish")] == [
        "output/v1", "output/v2", "output/v2"]
    with pytest.raises(AgentError, match="has no script for interactive tasks"):
        a.reset("", {"scenario": {"task_kind": "interactive"}})
    for bad, msg in (("sft+dpo", "unknown stage.*'dpo'.*stages: .*sft"),
                     ("sft+sft", "names a stage twice"), ("", "non-empty string")):
        with pytest.raises(AgentError, match=msg):
            make_agent("scripted", recipe=bad)
    with pytest.raises(ValueError, match="either script"):
        scripted_agent.ScriptedAgent(recipe="sft+polish", script="x.py")


def test_an_agent_lists_files_from_another_folder_and_a_missing_one_is_refused(tmp_path, monkeypatch):
    """``files:`` copies another agent's script into code/ (example_shell reuses the scripted
    agent's SFT recipe); a missing or absolute one is refused when the agent is loaded."""
    import pytest

    from autorl_gym.agents.spec import AgentError, load_agent_spec

    spec, folder = load_agent_spec("example_shell")
    [extra] = spec.extra_files(folder)
    assert extra.name == "train_sft.py" and extra.parent.name == "scripted"
    for name, files in (("missing", "[../nowhere/train.py]"), ("absolute", "[/etc/passwd.txt]")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "agent.yaml").write_text(f"name: {name}\nstart: bash x.sh\nfiles: {files}\n")
    monkeypatch.setenv("AUTORL_GYM_AGENTS", str(tmp_path))
    with pytest.raises(AgentError, match="nowhere/train.py is not a file"):
        load_agent_spec("missing")
    with pytest.raises(AgentError, match="must be a relative path"):
        load_agent_spec("absolute")


def test_an_agent_folder_cannot_carry_host_files_into_the_sandbox(tmp_path, monkeypatch):
    """``files:`` out of the agents' folder, and a link out of it, are refused at load (the
    folder is copied into code/ with its links followed); the same attack is in the suite."""
    import pytest

    from autorl_gym.agents.spec import AgentError, load_agent_spec
    from autorl_gym.attacks.runner import run_attacks

    secret = tmp_path / "host" / "hidden.json"
    secret.parent.mkdir()
    secret.write_text('{"answer": 42}')
    agents = tmp_path / "agents"
    (agents / "by_name").mkdir(parents=True)
    (agents / "by_name" / "agent.yaml").write_text(
        "name: by_name\nstart: bash x.sh\nfiles: [../../host/hidden.json]\n")
    (agents / "by_link" / "sub").mkdir(parents=True)
    (agents / "by_link" / "agent.yaml").write_text("name: by_link\nstart: bash x.sh\n")
    (agents / "by_link" / "sub" / "notes.txt").symlink_to(secret)
    (agents / "inside").mkdir()
    (agents / "inside" / "agent.yaml").write_text("name: inside\nstart: bash x.sh\n")
    (agents / "inside" / "shared.py").symlink_to(agents / "by_name" / "agent.yaml")  # stays among agents
    monkeypatch.setenv("AUTORL_GYM_AGENTS", str(agents))
    with pytest.raises(AgentError, match="outside"):
        load_agent_spec("by_name")
    with pytest.raises(AgentError, match="a link to .*hidden.json, outside"):
        load_agent_spec("by_link")
    assert load_agent_spec("inside")[0].name == "inside"
    # the suite's own attack, on the micro scenario's hidden split
    report = run_attacks("AutoRL-Micro-Arith-v0", "none", tmp_path / "scratch",
                         names=["agent_folder_carries_hidden_split"])
    assert [(o.name, o.status) for o in report.outcomes] == [
        ("agent_folder_carries_hidden_split", "held")], report
