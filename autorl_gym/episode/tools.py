"""The agent's actions: tool calls, validated by pydantic.

A call arrives as a dict, a JSON string or one of these models. :func:`parse_tool_call`
turns any of them into a model or raises :class:`ToolCallError` with a message the agent
can act on; the env shows that message as the observation.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_CALL_CHARS = 12_000_000  # a JSON call larger than this is refused before parsing


class _Call(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WriteFile(_Call):
    """Write a text file in the workspace (parents created, file replaced)."""

    tool: Literal["write_file"] = "write_file"
    path: str = Field(min_length=1, description="path relative to the workspace")
    content: str


class ReadFile(_Call):
    """Read a text file from the workspace, model/ or data/."""

    tool: Literal["read_file"] = "read_file"
    path: str = Field(min_length=1)
    offset: int = Field(0, ge=0, description="first character to return")
    limit: int | None = Field(None, gt=0, description="characters to return (default: all)")


class ListFiles(_Call):
    """List a directory of the workspace as a tree."""

    tool: Literal["list_files"] = "list_files"
    path: str = "."


class Run(_Call):
    """Run a shell command in the sandbox, cwd = workspace."""

    tool: Literal["run"] = "run"
    command: str = Field(min_length=1)
    timeout_s: float | None = Field(None, gt=0, description="seconds before the command is killed")


class Submit(_Call):
    """Submit a model directory (full model or LoRA adapter) for grading on the feedback split."""

    tool: Literal["submit"] = "submit"
    model_path: str = Field(min_length=1, description="e.g. output/v1")


class Finish(_Call):
    """End the episode; the named submission (default: the best so far) is graded on test."""

    tool: Literal["finish"] = "finish"
    model_path: str | None = None


ToolCall = Annotated[
    WriteFile | ReadFile | ListFiles | Run | Submit | Finish, Field(discriminator="tool")
]
TOOL_MODELS: dict[str, type[_Call]] = {
    m.model_fields["tool"].default: m for m in (WriteFile, ReadFile, ListFiles, Run, Submit, Finish)
}
_ADAPTER: TypeAdapter[Any] = TypeAdapter(ToolCall)


class ToolCallError(ValueError):
    """The action is not a valid tool call; the message says what was wrong."""


def parse_tool_call(action: Any) -> _Call:
    """A tool call model from a model, a dict or a JSON string."""
    if isinstance(action, _Call):
        return action
    if isinstance(action, bytes):
        action = action.decode("utf-8", errors="replace")
    if isinstance(action, str):
        if len(action) > MAX_CALL_CHARS:
            raise ToolCallError(
                f"tool call too large: {len(action):,} characters (limit {MAX_CALL_CHARS:,})"
            )
        try:
            action = json.loads(action)
        except json.JSONDecodeError as e:
            raise ToolCallError(
                f"tool call is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                'expected an object like {"tool": "run", "command": "ls"}'
            ) from None
    if not isinstance(action, dict):
        raise ToolCallError(
            f"tool call must be a JSON object with a 'tool' field, got {type(action).__name__}"
        )
    tool = action.get("tool")
    if tool not in TOOL_MODELS:
        known = ", ".join(TOOL_MODELS)
        if tool is None:
            raise ToolCallError(f"tool call has no 'tool' field; tools: {known}")
        raise ToolCallError(f"unknown tool {str(tool)[:80]!r}; tools: {known}")
    try:
        return _ADAPTER.validate_python(action)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'call'}: {err['msg']}"
            for err in e.errors()
        )
        raise ToolCallError(f"invalid {tool} call: {problems}") from None


def tool_schemas() -> list[dict[str, Any]]:
    """OpenAI-style function schemas of every tool (for native tool calling)."""
    out = []
    for name, model in TOOL_MODELS.items():
        schema = model.model_json_schema()
        schema["properties"].pop("tool", None)
        if "required" in schema:
            schema["required"] = [r for r in schema["required"] if r != "tool"]
        schema.pop("title", None)
        out.append({
            "type": "function",
            "function": {"name": name, "description": (model.__doc__ or "").strip(),
                         "parameters": schema},
        })
    return out
