"""Why a run did not improve: one failure type, with the evidence (steps and log lines) that
decided it."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from autorl_gym.grading.stats import Interval
from autorl_gym.report.run_data import RunData, Step

FailureType = Literal["code_error_runtime", "timeout_no_submission", "copy_model_fallback",
                      "training_diverged", "invalid_submission", "no_improvement"]

FAILURE_MEANING: dict[str, str] = {
    "code_error_runtime": "the agent's code crashed and no valid model came out of it",
    "timeout_no_submission": "the episode ended (budget, step limit or finish) without any submission",
    "copy_model_fallback": "the only valid submissions were copies of the base model",
    "training_diverged": "training diverged (non-finite or exploding loss, or a collapsed model)",
    "invalid_submission": "every submission was refused by the grader",
    "no_improvement": "valid models were submitted but none beat the baseline",
}


class Evidence(BaseModel):
    step: int | None = None
    what: str
    lines: list[str] = []


class Diagnosis(BaseModel):
    outcome: Literal["improved", "not_improved", "unknown"]
    failure_type: FailureType | None
    summary: str
    evidence: list[Evidence]


_ERROR_LINE = re.compile(r"Traceback \(most recent call last\)|^\s*\w+(Error|Exception|Interrupt)\b|"
                         r"^\s*(error|fatal)\b|No such file|command not found|Killed|"
                         r"out of memory", re.I)
_LOSS = re.compile(r"""['"]?\b(?:train_)?loss['"]?\s*[:=]?\s*"""
                   r"(nan|[+-]?inf(?:inity)?|[+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?)", re.I)


def _output(step: Step) -> str:
    _, _, out = step.observation.partition("--- output ---\n")
    return out


def _timed_out(step: Step) -> bool:
    return "\ntimed out:" in step.observation.split("--- output ---", 1)[0]


_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning)\b")


def _error_lines(step: Step, keep: int = 6) -> list[str]:
    """The lines that show why a run failed: the end of its last Python traceback (where it
    was raised, and the exception), or else the error-looking lines and the last line."""
    lines = [ln.rstrip()[:300] for ln in _output(step).splitlines() if ln.strip()]
    starts = [i for i, ln in enumerate(lines) if "Traceback (most recent call last)" in ln]
    if starts:
        block = lines[starts[-1]:]
        frames = [i for i, ln in enumerate(block) if ln.lstrip().startswith('File "')]
        picked = [block[0]] + (block[frames[-1]:frames[-1] + 2] if frames else [])
        raised = [ln for ln in block[1:] if _EXCEPTION.match(ln.strip())]
        picked += raised[-1:] or block[-1:]
        return list(dict.fromkeys(picked))
    hits = [ln.rstrip()[:300] for ln in lines if _ERROR_LINE.search(ln)]
    last = lines[-1].rstrip()[:300] if lines else "(no output)"
    if last not in hits:
        hits.append(last)
    return hits[-keep:]


def _command(step: Step) -> str:
    call = step.call if isinstance(step.call, dict) else {}
    return str(call.get("command", ""))[:200]


def _run_steps(run: RunData) -> list[Step]:
    return [s for s in run.steps if s.tool == "run"]


def _failed(step: Step) -> bool:
    return step.exit_code != 0


def _losses(run: RunData) -> list[tuple[int, float, str]]:
    out = []
    for s in _run_steps(run):
        for line in _output(s).splitlines():
            for m in _LOSS.finditer(line):
                try:
                    out.append((s.step, float(m.group(1)), line.strip()[:300]))
                except ValueError:
                    continue
    return out


def _divergence(run: RunData) -> Evidence | None:
    losses = _losses(run)
    bad = [(st, ln) for st, v, ln in losses if v != v or v in (float("inf"), float("-inf"))]
    if bad:
        return Evidence(step=bad[0][0], what="non-finite training loss in the run output",
                        lines=[ln for _, ln in bad[:4]])
    for st in dict.fromkeys(s for s, _, _ in losses):
        vals = [(v, ln) for s, v, ln in losses if s == st]
        if len(vals) >= 4:
            first, low, last = vals[0][0], min(v for v, _ in vals), vals[-1][0]
            if last > first and last > 2 * low + 1e-6 and last - low > 0.5:
                return Evidence(step=st, what=f"the loss rose from {low:g} to {last:g} during training",
                                lines=[vals[0][1], min(vals)[1], vals[-1][1]])
    return None


def diagnose(run: RunData, noise: Interval | None) -> Diagnosis:
    fb = run.feedback
    subs = run.submissions
    valid = [s for s in subs if s.valid]
    improvement = fb.improvement if fb else (max((s.improvement or 0.0) for s in valid) if valid else None)
    if improvement is not None and improvement > 0:
        where = "on test" if fb else "on the feedback split (the episode has no final result)"
        summary = f"improved by {improvement:+.2f} points {where}"
        ev = []
        if noise is not None:
            summary += "; " + ("a significant gain" if noise.significant
                                 else "but inside the noise (not significant)")
            ev.append(Evidence(what="bootstrap over test items", lines=[noise.text()]))
        return Diagnosis(outcome="improved", failure_type=None, summary=summary, evidence=ev)
    if fb is None and not subs and not run.steps:
        return Diagnosis(outcome="unknown", failure_type=None, evidence=[],
                         summary="nothing recorded: neither steps nor submissions")

    runs = _run_steps(run)
    end = fb.reason if fb else "the episode did not end (no feedback.json)"

    def crash_before(step_no: float) -> Step | None:
        before = [s for s in runs if s.step < step_no]
        if before and _failed(before[-1]) and not _timed_out(before[-1]):
            return before[-1]
        return None

    def crash(step: Step) -> Diagnosis:
        return Diagnosis(
            outcome="not_improved", failure_type="code_error_runtime",
            summary=f"the agent's code failed (step {step.step}, exit code {step.exit_code}) and "
                    f"no valid model was submitted",
            evidence=[Evidence(step=step.step, what=f"run `{_command(step)}` exited {step.exit_code}",
                               lines=_error_lines(step))]
            + [Evidence(step=_submit_step(run, s.id), what=f"submission {s.id} refused",
                        lines=[s.error or ""]) for s in subs[:3]])

    if valid:
        chosen = next((s for s in valid if fb and s.id == fb.submission_id), None)
        copies = [s for s in valid if s.flagged_base_copy]
        if (chosen is not None and chosen.flagged_base_copy) or len(copies) == len(valid):
            return Diagnosis(
                outcome="not_improved", failure_type="copy_model_fallback",
                summary=f"{len(copies)} of {len(valid)} valid submissions were copies of the base model"
                        + (f"; the graded one (submission {chosen.id}) was a copy" if chosen else ""),
                evidence=[Evidence(step=_submit_step(run, s.id),
                                   what=f"submission {s.id} ({s.model_path}) has the base model's weights",
                                   lines=[f"weights hash {s.weights_hash}",
                                          f"score {s.score:.2f} = baseline"])
                          for s in copies[:3]])
        div = _divergence(run)
        collapsed = fb is not None and fb.score == 0 and fb.baseline > 0
        if div is not None or collapsed:
            ev = [div] if div else []
            if collapsed:
                ev.append(Evidence(what="the chosen model scores 0 on test",
                                   lines=[f"test score 0.00 against a baseline of {fb.baseline:.2f}"]))
            return Diagnosis(outcome="not_improved", failure_type="training_diverged",
                             summary="training diverged: " + ev[0].what, evidence=ev)
        best = max(valid, key=lambda s: (s.score, -s.id))
        ev = [Evidence(step=_submit_step(run, best.id),
                       what=f"best submission {best.id} on {best.split}",
                       lines=[f"score {best.score:.2f} against a baseline of {best.baseline:.2f}"])]
        if fb:
            ev.append(Evidence(what="final result on test",
                               lines=[f"score {fb.score:.2f} against a baseline of {fb.baseline:.2f} "
                                      f"({fb.improvement:+.2f})"]))
        if noise is not None:
            ev.append(Evidence(what="bootstrap over test items", lines=[noise.text()]))
        return Diagnosis(outcome="not_improved", failure_type="no_improvement",
                         summary=f"{len(valid)} valid submission(s), none above the baseline", evidence=ev)

    if subs:
        first_sub_step = _submit_step(run, subs[0].id)
        limit = first_sub_step if first_sub_step is not None else float("inf")
        crashed = crash_before(limit)
        if crashed is not None:
            return crash(crashed)
        before = [s for s in runs if s.step < limit]
        if before and _timed_out(before[-1]):
            t = before[-1]
            return Diagnosis(
                outcome="not_improved", failure_type="timeout_no_submission",
                summary=f"the run at step {t.step} was killed at its timeout and no valid model was "
                        f"submitted",
                evidence=[Evidence(step=t.step, what=f"run `{_command(t)}` timed out",
                                   lines=t.observation.split("--- output ---", 1)[0].strip().splitlines()
                                   + _error_lines(t, keep=3))]
                + [Evidence(step=_submit_step(run, s.id), what=f"submission {s.id} refused",
                            lines=[s.error or ""]) for s in subs[:3]])
        return Diagnosis(
            outcome="not_improved", failure_type="invalid_submission",
            summary=f"all {len(subs)} submission(s) were refused",
            evidence=[Evidence(step=_submit_step(run, s.id),
                               what=f"submission {s.id} ({s.model_path}) refused",
                               lines=[s.error or ""]) for s in subs[:4]])
    crashed = crash_before(float("inf"))
    if crashed is not None:
        return crash(crashed)
    ev = [Evidence(what="how the episode ended", lines=[end])]
    timeouts = [s for s in runs if _timed_out(s)]
    if timeouts:
        t = timeouts[-1]
        ev.append(Evidence(step=t.step, what=f"run `{_command(t)}` timed out",
                           lines=t.observation.split("--- output ---", 1)[0].strip().splitlines()))
    last = run.steps[-1] if run.steps else None
    if last is not None:
        ev.append(Evidence(step=last.step, what="the last step", lines=[
            f"{last.tool} at {last.elapsed_s:.1f} s; budget left: {last.budget.get('seconds_left', '?')} s, "
            f"{last.budget.get('steps_left', '?')} steps"]))
    return Diagnosis(outcome="not_improved", failure_type="timeout_no_submission",
                     summary=f"no submission was made before the end ({end})", evidence=ev)


def _submit_step(run: RunData, sub_id: int) -> int | None:
    """The trajectory step that made a submission (a submit, or a finish naming a new model):
    the first such step ending after the submission started."""
    sub = next((s for s in run.submissions if s.id == sub_id), None)
    if sub is None:
        return None
    for s in run.steps:
        if s.tool in ("submit", "finish") and s.elapsed_s >= sub.elapsed_s - 1e-3:
            return s.step
    return None
