"""Recorded episodes as Harbor's ATIF (Agent Trajectory Interchange Format, ``ATIF-v1.8``).

One trajectory document per episode, the shape Harbor's ``harbor.models.trajectories.Trajectory``
validates (``tests/data/atif/`` holds its JSON schema): a ``system`` step (the exported system
prompt), a ``user`` step (the reset observation), then one ``agent`` step per recorded env step
with its tool call (``call_<step>``) and, as the step's observation, the tool result that answers
that call. A step whose action was not a valid tool call is an agent step whose message is the raw
action, and its observation the env's error (no ``source_call_id``). ``final_metrics`` carries the
step count and, when the run went through the LLM gateway, its token and cost totals; the
episode's outcome (reward = test score minus baseline, status, scores) is in
``final_metrics.extra``; per-step env data (reward, budget, exit code, seconds) in each step's
``extra``. The agent's LLM turns are not in trajectory.jsonl, so agent steps carry no ``metrics``
and ``llm_call_count`` is left unset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autorl_gym import __version__
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.episode.tools import tool_schemas
from autorl_gym.gateway.records import read_calls, summarize

ATIF_VERSION = "ATIF-v1.8"
_STEP_EXTRA = ("reward", "elapsed_s", "duration_s", "exit_code", "budget", "submission_id")


def _agent_step(n: int, rec: dict[str, Any], call_arguments: Any) -> dict[str, Any]:
    call = rec.get("call") or {}
    step: dict[str, Any] = {"step_id": n, "source": "agent"}
    if rec.get("time"):
        step["timestamp"] = rec["time"]
    obs = rec.get("observation", "")
    if "tool" in call:
        call_id = f"call_{rec.get('step', n)}"
        step["message"] = ""
        step["tool_calls"] = [{"tool_call_id": call_id, "function_name": call["tool"],
                               "arguments": call_arguments(call)}]
        step["observation"] = {"results": [{"source_call_id": call_id, "content": obs}]}
    else:
        step["message"] = str(call.get("raw", ""))
        step["observation"] = {"results": [{"content": obs}]}
    extra = {k: rec[k] for k in _STEP_EXTRA if rec.get(k) is not None}
    extra["env_step"] = rec.get("step")
    step["extra"] = extra
    return step


def episode_to_atif(run_dir: Path, run: dict[str, Any], steps: list[dict[str, Any]],
                    feedback: dict[str, Any] | None, first_observation: str, system_prompt: str,
                    call_arguments: Any) -> dict[str, Any]:
    """The ATIF document of one recorded episode (the pieces read by ``report.export``)."""
    started = run.get("started_at")
    at = {"timestamp": started} if started else {}
    doc_steps: list[dict[str, Any]] = [
        {"step_id": 1, "source": "system", "message": system_prompt, **at},
        {"step_id": 2, "source": "user", "message": first_observation, **at},
    ]
    for rec in steps:
        doc_steps.append(_agent_step(len(doc_steps) + 1, rec, call_arguments))
    agent: dict[str, Any] = {"name": run.get("agent") or "unknown", "version": __version__,
                             "tool_definitions": run.get("tool_schemas") or tool_schemas(),
                             "extra": {"benchmark": "autorl-gym", "sandbox": run.get("sandbox")}}
    if run.get("driver_model"):
        agent["model_name"] = run["driver_model"]
    outcome = {"status": feedback.get("status") if feedback else "unfinished"}
    if feedback:
        outcome.update({k: feedback.get(k) for k in ("reason", "metric", "baseline", "score", "improvement")})
        outcome["reward"] = feedback.get("improvement")
    final: dict[str, Any] = {"total_steps": len(doc_steps), "extra": outcome}
    calls = read_calls(run_dir / RunFolder.LLM_CALLS)
    if calls:
        usage = summarize(calls)
        final.update({"total_prompt_tokens": usage.input_tokens,
                      "total_completion_tokens": usage.output_tokens,
                      "total_cached_tokens": usage.cached_tokens})
        if usage.cost_usd is not None:
            final["total_cost_usd"] = usage.cost_usd
        outcome["llm_calls"] = usage.calls
    return {
        "schema_version": ATIF_VERSION, "session_id": run_dir.name, "trajectory_id": run_dir.name,
        "agent": agent, "steps": doc_steps,
        "notes": (f"autorl-gym episode {run_dir.name} on {run.get('scenario')}: steps 1-2 are the "
                  "system prompt and the reset observation, each later step one env step"),
        "final_metrics": final,
        "extra": {"scenario": run.get("scenario"), "base_model": run.get("base_model"),
                  "started_at": started, "budget": run.get("budget")},
    }


def dumps(doc: dict[str, Any], indent: int | None = None) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=indent)
