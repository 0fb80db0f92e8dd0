"""The one grading core, for every task family: submission checks, the base model's weights hash,
the baseline cache, the base-copy short-circuit, and the results record. Scoring is the family's
(:mod:`autorl_gym.tasks`); generation is a registered backend's (:mod:`autorl_gym.grading.backends.registry`).

A submission is graded in a child process under the scenario's grader limits
(:mod:`autorl_gym.grading.isolation`). Runs on the host, never in the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autorl_gym.core.assets import ScenarioAssets
from autorl_gym.core.durable import atomic_write_text
from autorl_gym.core.family import GradeContext, InteractiveTask, StaticTask
from autorl_gym.core.paths import cache_dir
from autorl_gym.core.records import EvalResult
from autorl_gym.core.scenario import Scenario
from autorl_gym.grading.backends.registry import check_backend, get_backend
from autorl_gym.grading.checks import check_loadable
from autorl_gym.grading.submission import (
    SubmissionInfo,
    SubmissionLimits,
    check_submission,
    inspect_submission,
    submission_limits,
    weight_bytes,
    weights_hash,
)

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (done, total)
# grader settings that change how fast a score is measured, never the score
_SPEED_ONLY = {"batch_size", "gpu_memory_utilization", "max_lora_rank", "isolation", "memory_mb",
               "timeout_s", "max_params", "max_params_factor", "max_submission_bytes",
               "max_submission_bytes_factor"}


class Grader:
    """Scores models on a scenario's hidden splits, whatever its task family."""

    def __init__(self, scenario: Scenario, assets: ScenarioAssets, backend: str | None = None,
                 log_root: Path | None = None):
        self.scenario = scenario
        self.assets = assets
        self.family = scenario.family
        self.backend = backend or scenario.grader.backend
        check_backend(self.backend, self.family)
        self.ctx = GradeContext(scenario, assets)
        self.log_root = log_root  # lm_eval writes its task YAML and samples here (else the cache)
        self._base_info = inspect_submission(assets.base_model_dir)
        self._base_hash: str | None = None

    @property
    def base_hash(self) -> str:
        if self._base_hash is None:
            self._base_hash = weights_hash(self._base_info.weight_files)
        return self._base_hash

    @property
    def submission_limits(self) -> SubmissionLimits:
        """What a submission may be on disk (the scenario's cap, or a multiple of the base's)."""
        g = self.scenario.grader
        return submission_limits(g.max_submission_bytes, g.max_submission_bytes_factor,
                                 weight_bytes(self._base_info))

    @property
    def backend_label(self) -> str:
        """What graded: the backend, or the family's rollout loop for interactive tasks."""
        return getattr(self.family, "backend", self.backend) if isinstance(self.family, InteractiveTask) \
            else self.backend

    def split_path(self, split: str) -> Path:
        return self.ctx.split_path(split)

    def protocol_record(self) -> dict[str, Any]:
        """The protocol as graded (feedback.json)."""
        return self.family.protocol_record(self.ctx, self.backend_label)

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
        from autorl_gym.grading.isolation import run_isolated

        job = {"scenario": self.scenario.model_dump(mode="json"), "assets": self.assets,
               "backend": self.backend, "info": info, "split": split, "limit": limit,
               "log_dir": log_dir, "model_hash": model_hash}
        return run_isolated(job, g.memory_mb, g.timeout_s, progress)

    def evaluate_here(self, info: SubmissionInfo, split: str, limit: int | None = None,
                      progress: Progress | None = None, log_dir: Path | None = None,
                      model_hash: str | None = None) -> EvalResult:
        """Score in this process: the refusals first, then the family's scoring."""
        base = self.assets.base_model_dir
        check_submission(info, base)
        g = self.scenario.grader
        check_loadable(info, base, g.max_params, g.max_params_factor)
        mhash = model_hash or weights_hash(info.weight_files)
        items = self.ctx.items(split, limit)
        t0 = time.perf_counter()
        notes = [] if info.has_tokenizer else [
            "submission has no tokenizer files; the base model's tokenizer was used"]
        gen_metrics: dict[str, float] = {}
        family = self.family
        if isinstance(family, InteractiveTask):
            results = family.play(self.ctx, info, split, limit, progress)
            notes += [f"item {r.index}: {r.details['error']}" for r in results if r.details.get("error")][:20]
        else:
            assert isinstance(family, StaticTask)
            done = 0

            def on_batch(n: int) -> None:
                nonlocal done
                done += n
                if progress:
                    progress(done, len(items))

            run_dir = log_dir or self._log_dir(split, mhash)
            gen = get_backend(self.backend).generate(self.ctx, info, items, on_batch, run_dir)
            self.ctx.run_dir = run_dir
            results = family.score(self.ctx, items, gen.completions)
            gen_metrics = gen.metrics
            notes += gen.notes
        summary = family.summarize(self.ctx, items, results)
        notes += summary.notes
        n = len(results)
        correct = sum(r.correct for r in results)
        return EvalResult(
            split=split, n=n, score=summary.score, correct=correct,
            metrics=summary.metrics | gen_metrics, model_hash=mhash,
            kind="base" if mhash == self.base_hash else info.kind,
            backend=self.backend_label, protocol=self.protocol_record(),
            seconds=time.perf_counter() - t0, items=results, notes=notes,
            integrity_events=[e for r in results for e in r.integrity_events] + summary.integrity_events)

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

    def _log_dir(self, split: str, mhash: str) -> Path:
        root = self.log_root or cache_dir() / "lm_eval_runs"
        stamp = time.strftime("%Y%m%dT%H%M%S")
        return root / self.backend / f"{split}_{mhash[:12]}_{stamp}_{uuid.uuid4().hex[:6]}"

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
        """The base model's score on a split, measured once and cached on disk."""
        cached = self.cached_baseline(split, limit)
        if cached is not None:
            return cached
        result = self.evaluate(self.assets.base_model_dir, split, limit, progress, info=self._base_info)
        atomic_write_text(self._baseline_path(split, limit), result.model_dump_json())
        return result


def make_grader(scenario: Scenario, assets: ScenarioAssets, backend: str | None = None) -> Grader:
    """The grader of a scenario (``backend`` overrides the scenario's generation backend)."""
    return Grader(scenario, assets, backend=backend)
