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
``extra``. A reprompted agent's resumes (``turns.jsonl``) are ``user`` steps carrying the resume
message, placed where they came in time; each agent step's ``extra.turn`` says its turn.

When the agent's LLM went through the gateway (``llm_calls.jsonl``), each agent step carries
the calls made since the previous step: ``llm_call_count``, and ``metrics`` with their tokens and
cost; with one call, its ``prompt_token_ids``, ``completion_token_ids`` and ``logprobs`` where the
upstream returned them (a vLLM asked for them), with several, each call's in
``metrics.extra.calls``. Calls after the last env step make one more agent step, with no tool
call. Without a gateway, agent steps carry no ``metrics`` and ``llm_call_count`` is left unset.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from autorl_gym import __version__
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.core.turns import TurnRecord
from autorl_gym.episode.tools import tool_schemas
from autorl_gym.gateway.records import LLMCall, read_calls, summarize

ATIF_VERSION = "ATIF-v1.8"
_STEP_EXTRA = ("reward", "elapsed_s", "duration_s", "exit_code", "budget", "submission_id", "turn")


def _call_metrics(c: LLMCall) -> dict[str, Any]:
    pairs = (("prompt_tokens", c.input_tokens), ("completion_tokens", c.output_tokens),
             ("cached_tokens", c.cached_tokens), ("cost_usd", c.cost_usd))
    m: dict[str, Any] = {k: v for k, v in pairs if v is not None}
    if c.tokens is not None:
        m.update(c.tokens.model_dump(exclude_none=True))
    return m


def _llm_fields(calls: list[LLMCall]) -> dict[str, Any]:
    """A step's ``llm_call_count`` and ``metrics`` from the LLM calls it stands for."""
    if not calls:
        return {"llm_call_count": 0}
    if len(calls) == 1:
        return {"llm_call_count": 1, "metrics": _call_metrics(calls[0])}
    each = [_call_metrics(c) for c in calls]
    total: dict[str, Any] = {}
    for key in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd"):
        vals = [m[key] for m in each if key in m]
        if vals:
            total[key] = round(sum(vals), 8) if key == "cost_usd" else sum(vals)
    return {"llm_call_count": len(calls), "metrics": {**total, "extra": {"calls": each}}}


def _calls_by_step(steps: list[dict[str, Any]],
                   calls: list[LLMCall]) -> tuple[list[list[LLMCall]], list[LLMCall]]:
    """Each env step's LLM calls (made after the previous step was recorded, up to its own
    recording), and the calls made after the last step."""
    pending = sorted((c for c in calls if c.refused is None), key=lambda c: c.time)
    out: list[list[LLMCall]] = []
    for rec in steps:
        try:
            until = datetime.fromisoformat(str(rec.get("time")))
        except ValueError:
            out.append([])
            continue
        mine = [c for c in pending if c.time <= until]
        pending = pending[len(mine):]
        out.append(mine)
    return out, pending


def _resumes(run_dir: Path) -> list[TurnRecord]:
    """A reprompted agent's resumes (turns.jsonl, turns 2 and later), in order; a line that does
    not read is left out."""
    path = run_dir / RunFolder.TURNS
    if not path.is_file() or path.is_symlink():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = TurnRecord.model_validate_json(line)
        except ValueError:
            continue
        if rec.turn > 1:
            out.append(rec)
    return sorted(out, key=lambda t: t.turn)


def _resume_step(n: int, turn: TurnRecord) -> dict[str, Any]:
    return {"step_id": n, "source": "user", "message": turn.prompt,
            "timestamp": turn.started_at.isoformat(), "extra": {"turn": turn.turn, "kind": "resume"}}


def _starts_before(turn: TurnRecord, rec: dict[str, Any]) -> bool:
    try:
        return turn.started_at <= datetime.fromisoformat(str(rec.get("time")))
    except ValueError:
        return False


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
    calls = read_calls(run_dir / RunFolder.LLM_CALLS)
    per_step, after = _calls_by_step(steps, calls) if calls else ([[] for _ in steps], [])
    resumes = _resumes(run_dir)  # each resume: a user step with its message, where it came
    for rec, mine in zip(steps, per_step, strict=True):
        while resumes and _starts_before(resumes[0], rec):
            doc_steps.append(_resume_step(len(doc_steps) + 1, resumes.pop(0)))
        step = _agent_step(len(doc_steps) + 1, rec, call_arguments)
        doc_steps.append({**step, **_llm_fields(mine)} if calls else step)
    for turn in resumes:
        doc_steps.append(_resume_step(len(doc_steps) + 1, turn))
    if after:
        doc_steps.append({"step_id": len(doc_steps) + 1, "source": "agent", "message": "",
                          "timestamp": after[-1].time.isoformat(), **_llm_fields(after),
                          "extra": {"note": "LLM calls after the last env step"}})
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
