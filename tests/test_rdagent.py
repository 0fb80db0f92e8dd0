"""The rdagent reference agent against a scripted OpenAI-compatible server on loopback.

The server is real HTTP (tests/fake_openai.py) and the agent talks to it with the real
``openai`` client; the env, the bubblewrap sandbox and the grader are the real ones on the
micro scenario.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer, Reply

from autorl_gym.agents.loop import run_episode
from autorl_gym.agents.spec import make_agent
from autorl_gym.episode.tools import tool_schemas

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TRAIN_SCRIPT = (Path(__file__).parents[1] / "autorl_gym" / "agents" / "scripted" / "train_sft.py").read_text()
COPY_BASE = "mkdir -p output && cp -rL model output/{v} && ls output/{v}"
# a worse model in seconds: the base model with its final norm zeroed (every logit equal)
BREAK_MODEL = ("python -c \"from safetensors.numpy import load_file, save_file; "
               "p='output/{v}/model.safetensors'; d=load_file(p); "
               "d['model.norm.weight'][:]=0; save_file(d, p, metadata={{'format': 'pt'}})\"")


def hypothesis(n: int, method: str = "SFT") -> Reply:
    return Reply.call("propose_hypothesis", {
        "hypothesis": f"hypothesis {n}: fine-tuning on the train split in the grader's prompt format "
                      "teaches the #### answer line",
        "method": method, "plan": f"SFT with TRL, save to output/v{n}",
        "reason": "the base model misses the answer format"})


def feedback(n: int) -> Reply:
    return Reply.call("record_feedback", {
        "observations": f"experiment {n} trained and was graded", "hypothesis_evaluation": "supported",
        "decision": True, "next_step": "train longer"})


def rdagent(server: FakeOpenAIServer, **options):
    options.setdefault("llm_model", "fake-model")
    options.setdefault("llm_api_key", "sk-test")
    return make_agent("rdagent", llm_base_url=server.base_url, **options)


def results_of(info: dict) -> Path:
    return Path(info["results_dir"])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_rdagent_cli_episode_improves_and_exports(tmp_path, micro_assets):
    """README command: autorl-gym run --agent rdagent --llm-base-url ... --llm-model ...;
    then autorl-gym export; the JSONL loads back and matches the recorded steps."""
    script = {
        "propose_hypothesis": [hypothesis(1)],
        "act": [
            Reply.call("list_files", {"path": "."}),
            Reply.call("write_file", {"path": "code/train.py", "content": TRAIN_SCRIPT}),
            Reply.call("run", {"command": "SFT_MAX_STEPS=40 python code/train.py", "timeout_s": 900}),
            Reply.call("submit", {"model_path": "output/v1"}),
        ],
        "record_feedback": [feedback(1)],
    }
    with FakeOpenAIServer(script) as server:
        cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", "AutoRL-Micro-Arith-v0",
               "--agent", "rdagent", "--llm-base-url", server.base_url, "--llm-model", "fake-model",
               "--agent-option", "max_iterations=1",
               "--results-dir", str(tmp_path / "results"), "--workspace-root", str(tmp_path / "ws")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                              env={**os.environ, "OPENAI_API_KEY": "sk-test", "COLUMNS": "160"})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert server.left() == {}, "every scripted reply was used"
    run_dir = next((tmp_path / "results").iterdir())
    fb = json.loads((run_dir / "feedback.json").read_text())
    assert fb["status"] == "finished" and fb["submission_id"] == 1 and fb["model_path"] == "output/v1"
    assert fb["improvement"] > 0, fb
    steps = read_jsonl(run_dir / "trajectory.jsonl")
    print(f"\nrdagent micro episode: test {fb['baseline']:.2f} -> {fb['score']:.2f} "
          f"({fb['improvement']:+.2f}) in {fb['elapsed_s']:.0f} s, {len(steps)} steps, "
          f"{len(server.requests)} LLM requests")
    # the model was offered the env's own tool schemas, and the forced stages their own tool
    act_requests = [r for r in server.requests if "tool_choice" not in r or r["tool_choice"] == "auto"]
    assert act_requests and all(r["tools"] == tool_schemas() for r in act_requests)
    assert server.requests[0]["tool_choice"]["function"]["name"] == "propose_hypothesis"
    assert server.requests[0]["model"] == "fake-model"
    # the trace: one experiment, its feedback record, the best so far
    trace = json.loads((run_dir / "agent" / "trace.json").read_text())
    (exp,) = trace["experiments"]
    assert exp["submission"]["submission_id"] == 1 and exp["feedback"]["new_best"] is True
    assert exp["feedback"]["model_feedback"]["next_step"] == "train longer"
    assert exp["last_exit_code"] == 0 and "saved model" in exp["last_run_output"]
    assert trace["finished_with"] == "output/v1"
    assert len(read_jsonl(run_dir / "agent" / "llm_calls.jsonl")) == len(server.requests)

    out = tmp_path / "chat.jsonl"
    res = subprocess.run([sys.executable, "-m", "autorl_gym.cli.main", "export", str(run_dir),
                          "--format", "openai-chat", "-o", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    (episode,) = read_jsonl(out)
    assert [s["call"]["tool"] for s in steps] == ["list_files", "write_file", "run", "submit", "finish"]
    assert episode["tools"] == tool_schemas() and episode["reward"] == fb["improvement"]
    msgs = episode["messages"]
    assert msgs[0]["role"] == "system" and msgs[1]["role"] == "user"
    assert "Micro arithmetic" in msgs[1]["content"]
    assert len(msgs) == 2 + 2 * len(steps)
    for step, (call_msg, result_msg) in zip(steps, zip(msgs[2::2], msgs[3::2], strict=True), strict=True):
        (tc,) = call_msg["tool_calls"]
        assert tc["function"]["name"] == step["call"]["tool"]
        args = json.loads(tc["function"]["arguments"])
        assert {"tool": step["call"]["tool"], **args} == {k: v for k, v in step["call"].items()
                                                          if v is not None}
        assert result_msg == {"role": "tool", "tool_call_id": tc["id"], "content": step["observation"]}
    assert json.loads(msgs[4]["tool_calls"][0]["function"]["arguments"])["content"] == TRAIN_SCRIPT
    assert episode["metadata"]["status"] == "finished" and episode["metadata"]["agent"] == "rdagent"


def test_rdagent_retries_transient_server_errors(make_env):
    """500, 503 and 429 answers are retried with backoff; the episode goes on as scripted."""
    script = {
        "propose_hypothesis": [Reply.error(500), hypothesis(1)],
        "act": [Reply.error(503), Reply.call("run", {"command": COPY_BASE.format(v="v1")}),
                Reply.call("submit", {"model_path": "output/v1"})],
        "record_feedback": [Reply.error(429), feedback(1)],
    }
    with FakeOpenAIServer(script) as server:
        env = make_env()
        info = run_episode(env, rdagent(server, max_iterations=1, llm_max_retries=2))
        assert server.left() == {}
    assert server.statuses == [500, 200, 503, 200, 200, 429, 200]
    # a retried request is the same request
    assert server.requests[0] == server.requests[1] and server.requests[2] == server.requests[3]
    fb = info["feedback"]
    assert fb["status"] == "finished" and fb["submission_id"] == 1
    trace = json.loads((results_of(info) / "agent" / "trace.json").read_text())
    assert trace["experiments"][0]["feedback"]["model_feedback"]["decision"] is True


def test_rdagent_ends_cleanly_when_the_server_stays_down(make_env):
    """After the client's retries a dead endpoint ends the loop: finish, no crash."""
    with FakeOpenAIServer({}, fallback=Reply.error(502, retry_after_ms=1)) as server:
        env = make_env()
        info = run_episode(env, rdagent(server, llm_max_retries=1))
    assert server.statuses == [502, 502]
    assert info["feedback"]["status"] == "finished" and info["feedback"]["submission_id"] is None
    trace = json.loads((results_of(info) / "agent" / "trace.json").read_text())
    assert "chat model unavailable: HTTP 502" in trace["stop_reason"]


def test_rdagent_survives_malformed_tool_calls(make_env):
    """Broken JSON, an unknown tool and a schema violation are explained to the model; nothing
    reaches the env, and the model's corrected calls go on."""
    broken = '{"path": "code/note.txt", "content": "unterminated'
    script = {
        "propose_hypothesis": [Reply.call("propose_hypothesis", '{"hypothesis": "x"'),  # broken too
                               Reply.call("propose_hypothesis", {"hypothesis": "x"}),  # fields missing
                               hypothesis(1)],
        "act": [
            Reply.call("write_file", broken),
            Reply.call("train_model", {"epochs": 3}),
            Reply.call("run", {"timeout_s": 5}),
            Reply(content="I think I am done."),
            Reply.call("write_file", {"path": "code/note.txt", "content": "fixed"}),
            Reply.call("run", {"command": COPY_BASE.format(v="v1")}),
            Reply.call("submit", {"model_path": "output/v1"}),
        ],
        "record_feedback": [feedback(1)],
    }
    with FakeOpenAIServer(script) as server:
        env = make_env()
        info = run_episode(env, rdagent(server, max_iterations=1))
        assert server.left() == {}
    # each complaint is the tool result the model reads next
    tool_results = [m for m in server.requests[-2]["messages"] if m["role"] == "tool"]
    texts = [m["content"] for m in tool_results]
    assert "not valid JSON" in texts[0] and "Nothing was run" in texts[0]
    assert "unknown tool 'train_model'" in texts[1]
    # the broken arguments are echoed back as a JSON object (servers may parse the history)
    echoed = next(m for m in server.requests[-2]["messages"] if m.get("tool_calls"))
    assert json.loads(echoed["tool_calls"][0]["function"]["arguments"]) == {"unparsed_arguments": broken}
    assert "invalid run call: command" in texts[2]
    assert any(m["role"] == "user" and "calling one of the tools" in m["content"]
               for m in server.requests[-2]["messages"])
    propose_msgs = server.requests[2]["messages"]
    assert "not a valid propose_hypothesis call" in propose_msgs[-1]["content"]
    # the env saw only the valid calls
    steps = read_jsonl(results_of(info) / "trajectory.jsonl")
    assert [s["call"]["tool"] for s in steps] == ["write_file", "run", "submit", "finish"]
    trace = json.loads((results_of(info) / "agent" / "trace.json").read_text())
    assert trace["experiments"][0]["invalid_calls"] == 3
    assert info["feedback"]["submission_id"] == 1


def _two_experiments_s(make_env) -> float:
    """Seconds that experiments 1 and 2 take on this machine now (their two commands and two dev
    gradings, stepped by hand in an episode of their own): the budget is sized from it, so the
    machine's load does not decide the verdict."""
    env = make_env()
    env.reset(seed=0)
    started = time.monotonic()
    for action in ({"tool": "run", "command": COPY_BASE.format(v="v1")},
                   {"tool": "submit", "model_path": "output/v1"},
                   {"tool": "run", "command": COPY_BASE.format(v="v2") + " && " + BREAK_MODEL.format(v="v2")},
                   {"tool": "submit", "model_path": "output/v2"}):
        env.step(action)
    return time.monotonic() - started


def test_rdagent_budget_runs_out_mid_loop_and_finishes_with_best(make_env):
    """Experiment 1 submits the base model, experiment 2 a worse one, experiment 3 asks for a
    very long run: the agent cuts the run's timeout to the time left, stops, and finishes with
    the best submission (1), not the latest. The budget holds the first two experiments as
    they run here now, twice over, and 25 s more (40 s at least)."""
    budget = max(40, round(25 + 2 * _two_experiments_s(make_env)))
    script = {
        "propose_hypothesis": [hypothesis(1), hypothesis(2), hypothesis(3)],
        "act": [
            Reply.call("run", {"command": COPY_BASE.format(v="v1")}),
            Reply.call("submit", {"model_path": "output/v1"}),
            Reply.call("run", {"command": COPY_BASE.format(v="v2") + " && " + BREAK_MODEL.format(v="v2")}),
            Reply.call("submit", {"model_path": "output/v2"}),
            Reply.call("run", {"command": "sleep 3600", "timeout_s": 3600}),
            Reply.call("run", {"command": "echo never run"}),
        ],
        "record_feedback": [feedback(1), feedback(2), feedback(3)],
    }
    with FakeOpenAIServer(script) as server:
        env = make_env(budget_seconds=budget)
        agent = rdagent(server, min_reserve_s=8)
        info = run_episode(env, agent)
    fb = info["feedback"]
    assert fb["status"] == "finished", fb
    assert fb["submission_id"] == 1 and fb["model_path"] == "output/v1" and fb["submissions"] == 2
    subs = read_jsonl(results_of(info) / "submissions.jsonl")
    assert subs[1]["score"] < subs[0]["score"], "the broken model scores lower"
    steps = read_jsonl(results_of(info) / "trajectory.jsonl")
    sleep = next(s for s in steps if s["call"].get("command") == "sleep 3600")
    assert sleep["call"]["timeout_s"] < budget
    assert steps[-1]["call"] == {"tool": "finish", "model_path": "output/v1"}
    assert steps[-1]["elapsed_s"] <= budget, "finished inside the budget"
    trace = json.loads((results_of(info) / "agent" / "trace.json").read_text())
    took = ", ".join(f"{e['duration_s']:.1f}" for e in trace["experiments"])
    print(f"\nbudget {budget} s; experiments took {took} s")
    assert [e["index"] for e in trace["experiments"]] == [1, 2, 3]
    assert trace["experiments"][2]["aborted"].startswith("the time budget is almost spent")
    assert trace["finished_with"] == "output/v1"
    assert "echo never run" not in json.dumps(steps)
