"""Scoring in this process, for every task family: the submission checks, the base model's
weights hash, and the family's scoring of the completions a registered generation backend
produces (:mod:`autorl_gym.grading.backends.registry`). The grading child process
(:mod:`autorl_gym.grading.worker`) scores with it; :class:`~autorl_gym.grading.grader.Grader`
adds the isolation, the baseline cache and the base-copy short-circuit on the host.
"""


from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autorl_gym.core.assets import ScenarioAssets
from autorl_gym.core.family import GradeContext, InteractiveTask, StaticTask, family_of
from autorl_gym.core.paths import cache_dir
from autorl_gym.core.records import EvalResult, SubmissionInfo
from autorl_gym.core.scenario import Scenario
from autorl_gym.grading.backends.registry import check_backend, get_backend
from autorl_gym.grading.checks import check_loadable
from autorl_gym.grading.submission import (
    SubmissionLimits,
    check_submission,
    inspect_submission,
    submission_limits,
    weight_bytes,
    weights_hash,
)

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (done, total)


class Scorer:
    """Scores a submission on a scenario's hidden split in this process, whatever its task family."""

    def __init__(self, scenario: Scenario, assets: ScenarioAssets, backend: str | None = None,
                 log_root: Path | None = None):
        self.scenario = scenario
        self.assets = assets
        self.family = family_of(scenario)
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

    # -- scoring -----------------------------------------------------------------------------
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

    def _log_dir(self, split: str, mhash: str) -> Path:
        root = self.log_root or cache_dir() / "lm_eval_runs"
        stamp = time.strftime("%Y%m%dT%H%M%S")
        return root / self.backend / f"{split}_{mhash[:12]}_{stamp}_{uuid.uuid4().hex[:6]}"
