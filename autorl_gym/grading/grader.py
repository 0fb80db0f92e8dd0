"""The one grading core on the host: a submission scored in a child process under the scenario's
grader limits (:mod:`autorl_gym.grading.isolation`), the baseline cache and the base-copy
short-circuit. Scoring itself is :class:`~autorl_gym.grading.scoring.Scorer`'s (the family scores;
a registered backend generates). Runs on the host, never in the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

from autorl_gym.core.durable import atomic_write_text, exclusive
from autorl_gym.core.paths import cache_dir
from autorl_gym.core.records import EvalResult, SubmissionInfo
from autorl_gym.grading.isolation import prepare_in_background, run_isolated
from autorl_gym.grading.scoring import Progress, Scorer
from autorl_gym.grading.submission import inspect_submission, weights_hash

log = logging.getLogger(__name__)
# grader settings that change how fast a score is measured, never the score
_SPEED_ONLY = {"batch_size", "gpu_memory_utilization", "max_lora_rank", "isolation", "memory_mb",
               "timeout_s", "max_params", "max_params_factor", "max_submission_bytes",
               "max_submission_bytes_factor"}


class Grader(Scorer):
    """Scores models on a scenario's hidden splits, whatever its task family: isolated, with the
    base model's baselines cached."""

    # -- grading ---------------------------------------------------------------------------
    def evaluate(self, model_dir: Path, split: str, limit: int | None = None,
                 progress: Progress | None = None, info: SubmissionInfo | None = None,
                 log_dir: Path | None = None, model_hash: str | None = None) -> EvalResult:
        """Score a model folder (full model or LoRA adapter) on a split, in a child process
        under the scenario's grader limits (``grader.isolation: inline`` grades here).
        ``model_hash``: its weights hash when known (a pinned submission's)."""
        info = info or inspect_submission(model_dir)
        g = self.scenario.grader
        model_hash = model_hash or weights_hash(info.weight_files)
        if log_dir is None and (self.backend == "lm_eval" or self.family.run_records):
            log_dir = self._log_dir(split, model_hash)
        if g.isolation == "inline":
            return self.evaluate_here(info, split, limit, progress, log_dir, model_hash)
        job = {"scenario": self.scenario.model_dump(mode="json"), "assets": self.assets,
               "backend": self.backend, "info": info, "split": split, "limit": limit,
               "log_dir": log_dir, "model_hash": model_hash}
        return run_isolated(job, g.memory_mb, g.timeout_s, progress)

    def prewarm(self, split: str, kind: str = "full") -> threading.Thread | None:
        """Start the warm grading server now, in the background, with this scenario's work that
        does not depend on a submission done (:mod:`autorl_gym.grading.warm`): the first grading
        then costs what the later ones do. ``kind``: the submission kind expected (``lora``
        imports peft too). No effect when gradings run inline or the cold way."""
        if self.scenario.grader.isolation == "inline":
            return None
        info = self._base_info.model_copy(update={"kind": kind})
        return prepare_in_background({
            "scenario": self.scenario.model_dump(mode="json"), "assets": self.assets,
            "backend": self.backend, "info": info, "split": split})

    def grade(self, path: Path, split: str, info: SubmissionInfo, baseline: EvalResult,
              progress: Progress | None = None, model_hash: str | None = None) -> EvalResult:
        """A submission's score on ``split``; an exact copy of the base model (by the content
        hash of its weights) scores as ``baseline`` (the base model's result on that split) and
        is flagged."""
        model_hash = model_hash or weights_hash(info.weight_files)
        if model_hash == self.base_hash:
            return baseline.model_copy(update={"kind": "base",
                                               "notes": ["weights equal the base model's"]})
        return self.evaluate(path, split, progress=progress, info=info, model_hash=model_hash)

    # -- the baseline ----------------------------------------------------------------------
    def baseline_key(self, split: str, limit: int | None = None) -> str:
        key = {
            "scenario": self.scenario.id,
            "task_family": self.family.name,
            "base_hash": self.base_hash,
            "split": split,
            "split_digest": self.family.split_digest(self.ctx, split),
            "limit": limit,
            "backend": self.backend_label,
            **self.family.baseline_settings(self.ctx),
            "grader": self.scenario.grader.model_dump(exclude=_SPEED_ONLY),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]

    def _baseline_path(self, split: str, limit: int | None) -> Path:
        return cache_dir() / "baselines" / f"{self.baseline_key(split, limit)}.json"

    def cached_baseline(self, split: str, limit: int | None = None) -> EvalResult | None:
        path = self._baseline_path(split, limit)
        if not path.is_file():
            return None
        try:
            return EvalResult.model_validate_json(path.read_text())
        except ValueError:
            log.warning("baseline cache %s is damaged; it will be measured again", path)
            return None

    def baseline(self, split: str, limit: int | None = None,
                 progress: Progress | None = None) -> EvalResult:
        """The base model's score on a split, measured once and cached on disk. Processes that
        need the same baseline at once (a sweep's or a vector env's episodes starting together)
        wait for the one measuring it and read its record."""
        cached = self.cached_baseline(split, limit)
        if cached is not None:
            return cached
        path = self._baseline_path(split, limit)

        def waiting() -> None:
            log.info("waiting for another process measuring the %s baseline (%s)", split, path.name)

        with exclusive(path.with_suffix(".lock"), waiting):
            cached = self.cached_baseline(split, limit)
            if cached is not None:
                return cached
            result = self.evaluate(self.assets.base_model_dir, split, limit, progress,
                                   info=self._base_info)
            atomic_write_text(path, result.model_dump_json())
        return result
