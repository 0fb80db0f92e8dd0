"""Recorded episodes as OpenAI chat-format JSONL, for SFT or RL of agents.

One line per episode: ``{"messages": [...], "tools": [...], "reward": ..., "metadata": {...}}``.
The messages are a system prompt, the reset observation as the first user message, then for
every recorded step the assistant's tool call (``tool_calls`` with one call, its arguments as a
JSON string) and the tool result (``role: tool``, the full observation as recorded). A step
whose action was not a valid tool call becomes an assistant text message with the raw action
and a user message with the env's error. ``reward`` is the episode's final reward (test score
minus baseline); per-step rewards and the episode's outcome are in ``metadata``.

Works for any run the env recorded: it needs ``run.json`` and ``trajectory.jsonl``, and reads
``feedback.json`` when the episode ended.

``--format atif`` writes the same episodes as Harbor's ATIF trajectories instead
(:mod:`autorl_gym.report.atif`): one JSON document per line, or one pretty document when the
output file ends in ``.json`` and there is one run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from autorl_gym.core.durable import atomic_write_text
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.episode.tools import tool_schemas
from autorl_gym.report import atif
from autorl_gym.runtime import safe_walk

SYSTEM_PROMPT = """\
You are an AI research engineer working in a sandboxed workspace. Your goal is to post-train
the base language model in model/ so that it scores as high as possible on a hidden test of
the task described below. You act only through tool calls: write_file, read_file, list_files,
run (a shell command with a timeout), submit (a model folder, graded on a hidden feedback
split) and finish (ends the episode; the submission you name, by default your best, is graded
once on the hidden test). Watch the wall-clock budget: your own thinking time counts too."""

FORMATS = ("openai-chat", "atif")
Format = Literal["openai-chat", "atif"]
_MAX_TEXT_BYTES = 1 << 20


class ExportError(ValueError):
    pass


class ChatEpisode(BaseModel):
    """One exported episode (one JSONL line)."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    reward: float | None = Field(description="final reward: test score minus baseline; None if "
                                             "the episode never ended")
    metadata: dict[str, Any]


def find_runs(path: Path) -> list[Path]:
    """``path`` itself if it is a run folder, else the run folders directly inside it."""
    if not path.exists():
        raise ExportError(f"{path} does not exist")
    if (path / RunFolder.TRAJECTORY).is_file() or (path / RunFolder.RUN).is_file():
        return [path]
    runs = sorted(p for p in path.iterdir() if p.is_dir() and (p / RunFolder.RUN).is_file())
    if not runs:
        raise ExportError(f"{path} is neither a run folder (run.json, trajectory.jsonl) nor a "
                          "folder of runs")
    return runs


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: not valid JSON ({e})") from e


def read_trajectory(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / RunFolder.TRAJECTORY
    if not path.is_file():
        return []
    steps = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            steps.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ExportError(f"{path}:{n}: not valid JSON ({e.msg})") from e
    return steps


def call_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """A recorded call's arguments as the model would send them (no 'tool', no unset fields)."""
    return {k: v for k, v in call.items() if k != "tool" and v is not None}


def _first_observation(run_dir: Path, run: dict[str, Any]) -> str:
    if run.get("reset_observation"):
        return run["reset_observation"]
    ws = Path(run.get("workspace") or "")
    try:  # the workspace is the agent's: read without following a link it made
        parts = [safe_walk.read_file(ws, name, _MAX_TEXT_BYTES).decode("utf-8", "replace")
                 for name in ("description.md", "instructions.md")]
        return "\n".join(parts)
    except OSError:
        pass
    raise ExportError(f"{run_dir}/run.json has no reset_observation (recorded by newer versions) and "
                      f"the workspace {ws} is gone: the first observation cannot be rebuilt")


def _read_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    run_json = run_dir / RunFolder.RUN
    if not run_json.is_file():
        raise ExportError(f"{run_dir} has no run.json: not a run folder")
    run = _read_json(run_json)
    steps = read_trajectory(run_dir)
    feedback = _read_json(run_dir / RunFolder.FEEDBACK) if (run_dir / RunFolder.FEEDBACK).is_file() else None
    return run, steps, feedback


def episode_to_atif(run_dir: Path, system_prompt: str = SYSTEM_PROMPT) -> dict[str, Any]:
    """One recorded episode as an ATIF trajectory document (see :mod:`autorl_gym.report.atif`)."""
    run, steps, feedback = _read_run(run_dir)
    return atif.episode_to_atif(run_dir, run, steps, feedback, _first_observation(run_dir, run),
                                system_prompt, call_arguments)


def episode_to_chat(run_dir: Path, system_prompt: str = SYSTEM_PROMPT) -> ChatEpisode:
    run, steps, feedback = _read_run(run_dir)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": _first_observation(run_dir, run)},
    ]
    for rec in steps:
        call = rec.get("call") or {}
        obs = rec.get("observation", "")
        if "tool" in call:
            call_id = f"call_{rec['step']}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": call_id, "type": "function",
                "function": {"name": call["tool"], "arguments": json.dumps(call_arguments(call))}}]})
            messages.append({"role": "tool", "tool_call_id": call_id, "content": obs})
        else:
            messages.append({"role": "assistant", "content": str(call.get("raw", ""))})
            messages.append({"role": "user", "content": obs})
    reward = feedback.get("improvement") if feedback else None
    metadata = {
        "run": run_dir.name, "scenario": run.get("scenario"), "agent": run.get("agent"),
        "started_at": run.get("started_at"), "steps": len(steps),
        "step_rewards": [r.get("reward", 0.0) for r in steps],
        "status": feedback.get("status") if feedback else "unfinished",
        "reason": feedback.get("reason") if feedback else None,
        "baseline": feedback.get("baseline") if feedback else None,
        "score": feedback.get("score") if feedback else None,
        "metric": feedback.get("metric") if feedback else None,
    }
    return ChatEpisode(messages=messages, tools=run.get("tool_schemas") or tool_schemas(),
                       reward=reward, metadata=metadata)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; available: {', '.join(FORMATS)}")


def iter_export(path: Path, fmt: Literal["openai-chat"] = "openai-chat",
                system_prompt: str = SYSTEM_PROMPT) -> Iterator[ChatEpisode]:
    _check_format(fmt)
    if fmt != "openai-chat":
        raise ExportError(f"iter_export gives chat episodes; for {fmt!r} use export_lines")
    for run_dir in find_runs(path):
        yield episode_to_chat(run_dir, system_prompt)


def export_lines(path: Path, fmt: Format = "openai-chat", system_prompt: str = SYSTEM_PROMPT) -> list[str]:
    """Every episode under ``path`` as one JSON line each, in ``fmt``."""
    _check_format(fmt)
    if fmt == "atif":
        return [atif.dumps(episode_to_atif(r, system_prompt)) for r in find_runs(path)]
    return [ep.model_dump_json() for ep in iter_export(path, "openai-chat", system_prompt)]


def export_jsonl(path: Path, out: Path, fmt: Format = "openai-chat",
                 system_prompt: str = SYSTEM_PROMPT) -> int:
    """Write every episode under ``path`` to ``out`` (one line each); returns how many. An ATIF
    export of one run to a ``.json`` file is that one document, indented.

    Everything is converted before anything is written, so a broken run leaves no partial file.
    """
    lines = export_lines(path, fmt, system_prompt)
    if fmt == "atif" and out.suffix == ".json" and len(lines) == 1:
        atomic_write_text(out, atif.dumps(json.loads(lines[0]), indent=2) + "\n")
        return 1
    atomic_write_text(out, "".join(line + "\n" for line in lines))
    return len(lines)
