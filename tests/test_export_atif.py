"""autorl-gym export --format atif: recorded episodes as Harbor's ATIF trajectories, validated
against ATIF's published JSON schema (tests/data/atif/) and the rules its model checks besides."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from autorl_gym.cli.main import app
from autorl_gym.episode.tools import tool_schemas
from autorl_gym.report.export import SYSTEM_PROMPT, ExportError, episode_to_atif, export_jsonl, export_lines

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()
SCHEMA = json.loads((Path(__file__).parent / "data" / "atif" / "trajectory.schema.json").read_text())
AGENT_ONLY = ("model_name", "reasoning_effort", "reasoning_content", "tool_calls", "metrics")


def check_atif(doc: dict) -> None:
    """ATIF's schema, then the checks Harbor's Trajectory model makes beyond it."""
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert [s["step_id"] for s in doc["steps"]] == list(range(1, len(doc["steps"]) + 1))
    for step in doc["steps"]:
        ids = {tc["tool_call_id"] for tc in step.get("tool_calls") or []}
        for result in (step.get("observation") or {}).get("results", []):
            assert result.get("source_call_id") in ids | {None}
        if step["source"] != "agent":
            assert not any(step.get(f) is not None for f in AGENT_ONLY), step
        if step.get("timestamp"):
            datetime.fromisoformat(step["timestamp"].replace("Z", "+00:00"))


def test_the_schema_refuses_what_it_should():
    """The schema file is the real one: a document missing its agent, or with a stray field, fails."""
    good = {"schema_version": "ATIF-v1.8", "agent": {"name": "a", "version": "1"},
            "steps": [{"step_id": 1, "source": "user", "message": "hi"}]}
    jsonschema.Draft202012Validator(SCHEMA).validate(good)
    for bad in ({k: v for k, v in good.items() if k != "agent"}, {**good, "oops": 1},
                {**good, "schema_version": "ATIF-v9"}, {**good, "steps": []}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(SCHEMA).validate(bad)


def test_atif_export_matches_the_recorded_steps(make_env, tmp_path):
    env = make_env(agent_name="scripted-test")
    first_obs, _ = env.reset(seed=0)
    actions = [{"tool": "list_files"}, "this is not JSON",
               {"tool": "write_file", "path": "code/a.py", "content": "print('hi')\n"},
               {"tool": "run", "command": "python code/a.py"},
               {"tool": "run", "command": 'cp -rL "$MODEL_PATH" "$OUTPUT_DIR/base"'},
               {"tool": "submit", "model_path": "output/base"}, {"tool": "finish"}]
    for a in actions:
        env.step(a)
    run_dir = next((tmp_path / "results").iterdir())
    doc = episode_to_atif(run_dir)
    check_atif(doc)
    recorded = [json.loads(x) for x in (run_dir / "trajectory.jsonl").read_text().splitlines()]
    steps = doc["steps"]
    assert steps[0] == {"step_id": 1, "source": "system", "message": SYSTEM_PROMPT,
                        "timestamp": steps[0]["timestamp"]}
    assert steps[1]["source"] == "user" and steps[1]["message"] == first_obs
    assert len(steps) == 2 + len(recorded) == doc["final_metrics"]["total_steps"]
    for rec, step in zip(recorded, steps[2:], strict=True):
        assert step["source"] == "agent" and step["timestamp"] == rec["time"]
        assert step["extra"]["reward"] == rec["reward"] and step["extra"]["env_step"] == rec["step"]
        (result,) = step["observation"]["results"]
        assert result["content"] == rec["observation"]
        if "tool" in rec["call"]:
            (tc,) = step["tool_calls"]
            assert result["source_call_id"] == tc["tool_call_id"]
            assert {"tool": tc["function_name"], **tc["arguments"]} == {
                k: v for k, v in rec["call"].items() if v is not None}
        else:
            assert step["message"] == "this is not JSON" and "tool_calls" not in step
            assert "source_call_id" not in result and "not valid JSON" in result["content"]
    assert "hi" in steps[5]["observation"]["results"][0]["content"]
    assert doc["agent"]["name"] == "scripted-test" and doc["agent"]["tool_definitions"] == tool_schemas()
    outcome = doc["final_metrics"]["extra"]
    feedback = json.loads((run_dir / "feedback.json").read_text())
    assert outcome["status"] == "finished" and outcome["reward"] == feedback["improvement"]
    assert outcome["baseline"] == feedback["baseline"] and outcome["score"] == feedback["score"]
    assert doc["session_id"] == run_dir.name and doc["extra"]["scenario"] == "AutoRL-Micro-Arith-v0"

    # the CLI: one run to a .json file is one indented document; to stdout one line per episode
    out = tmp_path / "episode.json"
    res = runner.invoke(app, ["export", str(run_dir), "--format", "atif", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text()) == doc and out.read_text().startswith("{\n  ")
    res = runner.invoke(app, ["export", str(run_dir), "--format", "atif"])
    assert res.exit_code == 0 and json.loads(res.stdout.strip()) == doc


def test_atif_export_of_a_folder_and_an_unfinished_run(make_env, tmp_path):
    for actions in ([{"tool": "finish"}], [{"tool": "run", "command": "echo still going"}]):
        env = make_env()
        env.reset()
        for a in actions:
            env.step(a)
    results = tmp_path / "results"
    n = export_jsonl(results, tmp_path / "all.jsonl", fmt="atif")
    docs = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert n == 2 == len(docs)
    for doc in docs:
        check_atif(doc)
    assert sorted(d["final_metrics"]["extra"]["status"] for d in docs) == ["finished", "unfinished"]
    assert export_lines(results, "openai-chat")  # the chat export is still there
    with pytest.raises(ExportError, match="unknown format 'harbor'"):
        export_lines(results, "harbor")  # type: ignore[arg-type]
