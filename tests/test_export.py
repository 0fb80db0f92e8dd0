"""autorl-gym export: any recorded run as OpenAI chat JSONL, loaded back and checked step by step."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from autorl_gym.cli.main import app
from autorl_gym.episode.tools import tool_schemas
from autorl_gym.report.export import SYSTEM_PROMPT, ExportError, episode_to_chat, export_jsonl, find_runs

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()


def _episode(env, actions):
    obs, info = env.reset(seed=0)
    for a in actions:
        obs, reward, term, trunc, info = env.step(a)
    return obs, info


def test_export_matches_the_recorded_steps(make_env, tmp_path):
    env = make_env()
    first_obs, _ = env.reset(seed=0)
    actions = [{"tool": "list_files"}, "this is not JSON", {"tool": "read_file", "path": "data/train.jsonl",
                                                            "limit": 200},
               {"tool": "write_file", "path": "code/a.py", "content": "print('hi')\n"},
               {"tool": "run", "command": "python code/a.py"}, {"tool": "finish"}]
    for a in actions:
        env.step(a)
    run_dir = next((tmp_path / "results").iterdir())
    ep = episode_to_chat(run_dir)
    steps = [json.loads(x) for x in (run_dir / "trajectory.jsonl").read_text().splitlines()]
    assert len(steps) == len(actions)
    assert ep.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert ep.messages[1] == {"role": "user", "content": first_obs}
    assert ep.tools == tool_schemas()
    pairs = list(zip(ep.messages[2::2], ep.messages[3::2], strict=True))
    assert len(pairs) == len(steps)
    for step, (call_msg, result_msg) in zip(steps, pairs, strict=True):
        assert call_msg["role"] == "assistant"
        if "tool" in step["call"]:
            (tc,) = call_msg["tool_calls"]
            args = json.loads(tc["function"]["arguments"])
            assert {"tool": tc["function"]["name"], **args} == {
                k: v for k, v in step["call"].items() if v is not None}
            assert result_msg == {"role": "tool", "tool_call_id": tc["id"], "content": step["observation"]}
        else:  # the invalid call: the raw text, and the env's complaint as the next user turn
            assert call_msg["content"] == "this is not JSON"
            assert result_msg["role"] == "user" and "not valid JSON" in result_msg["content"]
    assert "hi" in pairs[4][1]["content"]
    assert ep.reward == 0.0 and ep.metadata["status"] == "finished"
    assert ep.metadata["step_rewards"] == [s["reward"] for s in steps]

    # the CLI, to a file and to stdout; the file loads back to the same episode
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["export", str(run_dir), "--format", "openai-chat", "-o", str(out)])
    assert res.exit_code == 0, res.output
    (line,) = out.read_text().splitlines()
    assert json.loads(line) == ep.model_dump(mode="json")
    res = runner.invoke(app, ["export", str(run_dir)])
    assert res.exit_code == 0 and json.loads(res.stdout.splitlines()[0]) == json.loads(line)


def test_export_a_folder_of_runs_and_unfinished_runs(make_env, tmp_path):
    env = make_env()
    _episode(env, [{"tool": "finish"}])
    _episode(env, [{"tool": "list_files"}])  # left unfinished: close() marks it abandoned
    env.close()
    results = tmp_path / "results"
    assert len(find_runs(results)) == 2
    n = export_jsonl(results, tmp_path / "all.jsonl")
    eps = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert n == 2 and [e["metadata"]["status"] for e in eps] == ["finished", "abandoned"]
    assert all(e["reward"] == 0.0 for e in eps)


def test_export_errors_are_clear(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        find_runs(tmp_path / "nope")
    with pytest.raises(ExportError, match="neither a run folder"):
        find_runs(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{not json")
    with pytest.raises(ExportError, match="run.json: not valid JSON"):
        episode_to_chat(run)
    res = runner.invoke(app, ["export", str(run)])
    # rich wraps the message at the console width, which depends on the tmp path's length
    assert res.exit_code == 2 and "not valid JSON" in " ".join(res.output.split()), res.output
    res = runner.invoke(app, ["export", str(run), "--format", "sharegpt"])
    assert res.exit_code == 2 and "unknown format 'sharegpt'" in " ".join(res.output.split()), res.output
    assert not (run / "out.jsonl").exists()
