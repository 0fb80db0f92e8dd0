"""The texts an episode shows the agent (observations) and writes in its trajectory."""

from __future__ import annotations

import json
from typing import Any

from autorl_gym.core.records import Feedback, SubmissionRecord
from autorl_gym.core.sandbox import ExecResult
from autorl_gym.episode.tools import Run, Submit, WriteFile

EPISODE_OVER = "error: the episode is over; call reset() to start a new one"
_MAX_RECORDED = 100_000


def format_exec(res: ExecResult) -> str:
    """A ``run`` call's observation: exit code, time, what was cut or killed, the output."""
    head = f"exit code: {res.exit_code if res.exit_code is not None else 'killed'}"
    head += f" ({res.duration_s:.2f} s)"
    if res.timed_out:
        head += "\ntimed out: the command and all its processes were killed"
    if res.killed_reason and not res.timed_out:
        head += f"\nkilled: {res.killed_reason}"
    if res.truncated:
        head += f"\noutput truncated: {res.omitted_chars} characters omitted in the middle"
    return head + "\n--- output ---\n" + (res.output if res.output else "(no output)")


def budget_spent_text(seconds: float) -> str:
    return f"not run: the wall-clock budget ({seconds:.0f} s) was already spent"


def submission_text(rec: SubmissionRecord, best: SubmissionRecord | None, submissions_left: int) -> str:
    """A ``submit`` call's observation: the grader's feedback, or why it was refused."""
    if rec.error:
        return f"submission {rec.id} refused: {rec.error}"
    body: dict[str, Any] = {
        "submission_id": rec.id, "split": rec.split, "score": round(rec.score or 0.0, 2),
        "baseline": round(rec.baseline, 2), "improvement": round(rec.improvement or 0.0, 2),
        "best_so_far": round(best.score, 2) if best and best.score is not None else None,
        "best_submission_id": best.id if best else None,
        "submissions_left": submissions_left,
    }
    if rec.flagged_base_copy:
        body["flag"] = "weights equal the base model's: scored as the baseline"
    return "submission graded\n" + json.dumps(body, indent=2)


def final_text(fb: Feedback, results_dir: str | None) -> str:
    """What the last observation adds: the final test result."""
    return "episode over: " + fb.reason + "\n" + json.dumps({
        "test_baseline": round(fb.baseline, 2), "test_score": round(fb.score, 2),
        "improvement": round(fb.improvement, 2), "submission_id": fb.submission_id,
        "results": results_dir,
    }, indent=2)


def clip(value: Any) -> Any:
    """A tool call as recorded in the trajectory: very long strings cut."""
    if isinstance(value, str) and len(value) > _MAX_RECORDED:
        return value[:_MAX_RECORDED] + f"[... {len(value) - _MAX_RECORDED} characters not recorded]"
    if isinstance(value, dict):
        return {k: clip(v) for k, v in value.items()}
    return value


def describe_call(call: Any) -> str:
    """A one-line commit message for the code history."""
    if isinstance(call, WriteFile):
        return f"write_file {call.path}"
    if isinstance(call, Run):
        return "run " + call.command.replace("\n", " ")[:200]
    if isinstance(call, Submit):
        return f"submit {call.model_path}"
    return call.tool


def describe_raw(action: Any) -> dict[str, Any]:
    """An action that is not a valid tool call, as recorded in the trajectory."""
    if isinstance(action, str | bytes):
        text = action if isinstance(action, str) else action.decode("utf-8", "replace")
        return {"raw": text[:2000], "raw_chars": len(text)}
    try:
        text = json.dumps(action)
    except (TypeError, ValueError):
        text = repr(action)
    return {"raw": text[:2000], "raw_chars": len(text)}


#: the longest observation (the env's observation space says the same)
OBS_MAX_CHARS = 200_000


def to_observation(text: str) -> str:
    """Fit text into the observation space."""
    if not text:
        text = "(empty)"
    if any(ord(c) > 0xFFFF or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        text = "".join(
            "\ufffd" if ord(c) > 0xFFFF or 0xD800 <= ord(c) <= 0xDFFF else c for c in text
        )
    if len(text) > OBS_MAX_CHARS:
        marker = f"\n[... {len(text) - OBS_MAX_CHARS + 200:,} characters omitted ...]\n"
        keep = (OBS_MAX_CHARS - len(marker)) // 2
        text = text[:keep] + marker + text[-keep:]
    return text
