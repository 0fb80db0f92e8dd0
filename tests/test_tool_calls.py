"""Tool calls: every form accepted, every malformation explained."""

from __future__ import annotations

import json

import pytest

from autorl_gym.episode.tools import (
    MAX_CALL_CHARS,
    Finish,
    Run,
    Submit,
    ToolCallError,
    WriteFile,
    parse_tool_call,
    tool_schemas,
)


def test_dict_json_and_model_forms_agree():
    d = {"tool": "run", "command": "ls", "timeout_s": 60}
    assert parse_tool_call(d) == parse_tool_call(json.dumps(d)) == parse_tool_call(
        Run(command="ls", timeout_s=60))
    assert parse_tool_call(b'{"tool": "finish"}') == Finish()
    assert parse_tool_call({"tool": "submit", "model_path": "output/v1"}) == Submit(
        model_path="output/v1")


@pytest.mark.parametrize(("action", "message"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (42, "must be a JSON object"),
    (None, "must be a JSON object"),
    ({"command": "ls"}, "no 'tool' field"),
    ({"tool": "rm_rf"}, "unknown tool 'rm_rf'"),
    ({"tool": "run"}, "command: Field required"),
    ({"tool": "run", "command": "ls", "timeout_s": -1}, "timeout_s"),
    ({"tool": "run", "command": "ls", "shell": "zsh"}, "shell: Extra inputs"),
    ({"tool": "write_file", "path": "a"}, "content: Field required"),
    ({"tool": "read_file", "path": "a", "offset": -3}, "offset"),
    ({"tool": "submit", "model_path": ""}, "model_path"),
])
def test_malformed_calls_are_explained(action, message):
    with pytest.raises(ToolCallError, match=message):
        parse_tool_call(action)


def test_oversized_json_refused_before_parsing():
    big = json.dumps({"tool": "write_file", "path": "x", "content": "a" * MAX_CALL_CHARS})
    with pytest.raises(ToolCallError, match="too large"):
        parse_tool_call(big)


def test_schemas_cover_every_tool():
    schemas = {s["function"]["name"]: s["function"] for s in tool_schemas()}
    assert set(schemas) == {"write_file", "read_file", "list_files", "run", "submit", "finish"}
    assert schemas["run"]["parameters"]["required"] == ["command"]
    assert "tool" not in schemas["write_file"]["parameters"]["properties"]
    assert WriteFile.model_fields["content"].is_required()
