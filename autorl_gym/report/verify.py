"""``autorl-gym verify RUN_DIR``: re-check a claimed result from its results folder.

1. **Records agree**: feedback.json names a valid submission of submissions.jsonl; its
   improvement is its score minus its baseline; its provenance stamp is provenance.json's.
2. **Snapshot**: the submission's pinned snapshot (``submissions/<id>/``) still hashes to the
   weights hash recorded at submit (a swapped snapshot is caught here).
3. **Stamp**: the provenance of a grading here and now has the recorded score fields (another
   scenario file, split, base model, backend or library version is reported by name).
4. **Score**: the snapshot re-graded on the test split with the recorded protocol equals the
   recorded score, and the base model's test score the recorded baseline, within the tolerance:
   :data:`DEFAULT_TOLERANCE` points for a deterministic backend (hf, greedy, CPU), or
   :data:`NONDETERMINISTIC_TOLERANCE` for vllm and lm_eval (batching changes greedy outputs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from autorl_gym.audit.provenance import PROVENANCE_FILE, Provenance, read_provenance, stamp
from autorl_gym.core.run_folder import RunFolder

DEFAULT_TOLERANCE = 1e-6
NONDETERMINISTIC_TOLERANCE = 1.0
NONDETERMINISTIC = ("vllm", "lm_eval")


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


class Verification(BaseModel):
    run: str
    verdict: Literal["verified", "failed"]
    tolerance: float
    recorded_score: float | None = None
    regraded_score: float | None = None
    recorded_baseline: float | None = None
    regraded_baseline: float | None = None
    checks: list[Check]

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


class VerifyError(ValueError):
    """A folder that cannot be verified at all (no feedback.json, no run.json)."""


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise VerifyError(f"{path}: not readable ({e})") from e


def _submissions(run_dir: Path) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    try:
        lines = (run_dir / RunFolder.SUBMISSIONS).read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
            out[int(rec["id"])] = rec
        except (ValueError, KeyError, TypeError):
            continue
    return out


def tolerance_for(backend: str) -> float:
    return NONDETERMINISTIC_TOLERANCE if backend in NONDETERMINISTIC else DEFAULT_TOLERANCE


def verify_run(run_dir: Path, tolerance: float | None = None, regrade: bool = True) -> Verification:
    from autorl_gym.core.records import SubmissionError
    from autorl_gym.episode.grading import ScenarioGrading
    from autorl_gym.grading.submission import pinned
    from autorl_gym.scenarios.catalog import get_scenario

    run_dir = Path(run_dir)
    run, fb = _json(run_dir / RunFolder.RUN), _json(run_dir / RunFolder.FEEDBACK)
    checks: list[Check] = []

    def check(name: str, ok: bool, detail: str) -> bool:
        checks.append(Check(name=name, ok=ok, detail=detail))
        return ok

    subs = _submissions(run_dir)
    sid = fb.get("submission_id")
    rec = subs.get(sid) if isinstance(sid, int) else None
    if sid is None:
        check("records", True, "no submission was graded on test: the score is the baseline")
    elif check("records", rec is not None and rec.get("error") is None,
               f"feedback.json names submission {sid}" + ("" if rec else ", which submissions.jsonl "
                                                          "does not hold")):
        check("records.model_path", rec.get("model_path") == fb.get("model_path"),
              f"feedback.json's model_path {fb.get('model_path')!r}, submissions.jsonl's "
              f"{rec.get('model_path')!r}")
    arith = abs(float(fb["score"]) - float(fb["baseline"]) - float(fb["improvement"])) <= 1e-6
    check("records.improvement", arith,
          f"improvement {fb['improvement']} = score {fb['score']} - baseline {fb['baseline']}")

    recorded = read_provenance(run_dir)
    if recorded is None:
        check("stamp.recorded", False, f"no readable {PROVENANCE_FILE}")
    else:
        inline = fb.get("provenance")
        same = inline is not None and Provenance.model_validate(inline).score_key == recorded.score_key
        check("stamp.feedback", same, "feedback.json's provenance matches provenance.json" if same
              else "feedback.json's provenance is missing or differs from provenance.json")
        if rec is not None and rec.get("provenance_key") not in (None, recorded.score_key):
            check("stamp.submission", False, f"submission {sid}'s provenance key "
                  f"{rec.get('provenance_key')} is not provenance.json's {recorded.score_key}")

    scenario = get_scenario(str(run["scenario"]))
    base = run.get("base_model")
    grading = ScenarioGrading(scenario, base if base and base != scenario.base_model else None,
                              recorded.grader_backend if recorded and recorded.grader_backend in
                              ("hf", "vllm", "lm_eval") else None)
    tol = tolerance if tolerance is not None else tolerance_for(grading.grader.backend)
    if recorded is not None:
        now = stamp(scenario, grading.grader, recorded.sandbox)
        diff = recorded.differences(now)
        check("stamp.reproduced", not diff, "the recorded score fields are this grader's" if not diff
              else "differs from a grading here: " + "; ".join(diff))
    out = Verification(run=str(run_dir), verdict="verified", tolerance=tol, checks=checks,
                       recorded_score=fb.get("score"), recorded_baseline=fb.get("baseline"))
    if rec is not None and rec.get("snapshot") and rec.get("weights_hash"):
        snap = run_dir / rec["snapshot"]
        try:
            checked = pinned(snap, rec["weights_hash"])
            check("snapshot", True, f"{rec['snapshot']} hashes to the recorded "
                                    f"{rec['weights_hash'][:12]}")
        except (SubmissionError, OSError) as e:
            checked = None
            check("snapshot", False, f"{rec['snapshot']}: {e}")
        if checked is not None and regrade:
            score = grading.grade(checked, "test").score
            out.regraded_score = score
            check("score", abs(score - float(fb["score"])) <= tol,
                  f"re-graded {score:.4f} vs recorded {float(fb['score']):.4f} (tolerance {tol:g})")
    elif sid is not None:
        check("snapshot", False, f"submission {sid} has no pinned snapshot to re-grade")
    if regrade:
        base_score = grading.baseline("test").score
        out.regraded_baseline = base_score
        check("baseline", abs(base_score - float(fb["baseline"])) <= tol,
              f"base model re-graded {base_score:.4f} vs recorded {float(fb['baseline']):.4f}")
    out.checks = checks
    out.verdict = "verified" if all(c.ok for c in checks) else "failed"
    return out
