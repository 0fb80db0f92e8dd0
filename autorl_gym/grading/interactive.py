"""Grading interactive (level 3) scenarios: the submitted model plays every game of a hidden split
through the evaluator's ReAct-style loop (:func:`autorl_gym.interactive.rollout`, batched across
games); the score is the success rate in percent within the scenario's step limit."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from autorl_gym.assets import ScenarioAssets
from autorl_gym.grading.results import EvalResult, ItemResult
from autorl_gym.grading.submission import (
    SubmissionInfo,
    check_submission,
    inspect_submission,
    weights_hash,
)
from autorl_gym.interactive import GameRef, HFPolicy, find_games, rollout
from autorl_gym.io import atomic_write_text
from autorl_gym.paths import cache_dir
from autorl_gym.scenario import Scenario

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
BACKEND = "hf-rollout"


class InteractiveGrader:
    """Same interface as :class:`autorl_gym.grading.grader.Grader`; runs on the host only."""

    def __init__(self, scenario: Scenario, assets: ScenarioAssets):
        if scenario.interactive is None:
            raise ValueError(f"{scenario.id} is not an interactive scenario")
        self.scenario = scenario
        self.spec = scenario.interactive
        self.assets = assets
        self.backend = BACKEND
        self._base_info = inspect_submission(assets.base_model_dir)
        self._base_hash: str | None = None
        self._games: dict[str, list[GameRef]] = {}

    @property
    def base_hash(self) -> str:
        if self._base_hash is None:
            self._base_hash = weights_hash(self._base_info.weight_files)
        return self._base_hash

    def protocol_record(self) -> dict:
        """The protocol as graded (feedback.json): the rollout settings, plus backend and metric."""
        return {"metric": self.scenario.metric, "backend": self.backend,
                "evaluator": "autorl_gym.interactive.rollout (ReAct-style loop, batched across games)",
                **self.spec.model_dump()}

    def split_path(self, split: str) -> Path:
        if split not in self.assets.hidden_splits:
            raise ValueError(f"unknown split {split!r}; hidden splits: dev, test")
        return self.assets.hidden_splits[split]

    def games(self, split: str, limit: int | None = None) -> list[GameRef]:
        if split not in self._games:
            self._games[split] = find_games(self.split_path(split))
            if not self._games[split]:
                raise ValueError(f"{self.split_path(split)}: no games in the {split} split")
        games = self._games[split]
        return games[:limit] if limit else games

    def evaluate(self, model_dir: Path, split: str, limit: int | None = None,
                 progress: Progress | None = None, info: SubmissionInfo | None = None) -> EvalResult:
        info = info or inspect_submission(model_dir)
        check_submission(info, self.assets.base_model_dir)
        mhash = weights_hash(info.weight_files)
        games = self.games(split, limit)
        t0 = time.perf_counter()
        g = self.scenario.grader
        policy = HFPolicy(info.path, base_model=self.assets.base_model_dir, device=g.device,
                          dtype=g.dtype, batch_size=g.batch_size,
                          max_new_tokens=self.spec.max_new_tokens, stop=tuple(self.spec.stop),
                          choose=self.spec.choose)
        episodes = rollout(games, policy, max_steps=self.spec.max_steps, prompt=self.spec.prompt,
                           on_step=progress)
        del policy
        items = [ItemResult(index=i, gold="won", strict="won" if e.won else "lost", flexible=None,
                            correct=e.won, completion=(f"[{e.game}] {e.goal}\n" + e.transcript())[:8000])
                 for i, e in enumerate(episodes)]
        won = sum(e.won for e in episodes)
        n = len(episodes)
        errors = [f"{e.game}: {e.error}" for e in episodes if e.error]
        return EvalResult(
            split=split, n=n, score=100.0 * won / n, flexible_score=100.0 * won / n, correct=won,
            flexible_correct=won, model_hash=mhash,
            kind="base" if mhash == self.base_hash else info.kind, backend=self.backend,
            protocol=self.protocol_record(), seconds=time.perf_counter() - t0, items=items,
            notes=errors[:20],
        )

    def _split_digest(self, split: str) -> str:
        h = hashlib.sha256()
        for ref in self.games(split):
            h.update(ref.name.encode() + b"\0" + str(ref.path.stat().st_size).encode())
        return h.hexdigest()

    def baseline_key(self, split: str, limit: int | None = None) -> str:
        key = {"scenario": self.scenario.id, "base_hash": self.base_hash, "split": split,
               "split_digest": self._split_digest(split), "limit": limit, "backend": self.backend,
               "interactive": self.spec.model_dump(),
               "grader": self.scenario.grader.model_dump(exclude={"batch_size"})}
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
        cached = self.cached_baseline(split, limit)
        if cached is not None:
            return cached
        result = self.evaluate(self.assets.base_model_dir, split, limit, progress, info=self._base_info)
        atomic_write_text(self._baseline_path(split, limit), result.model_dump_json())
        return result


def make_grader(scenario: Scenario, assets: ScenarioAssets,  # noqa: ANN201 - Grader or InteractiveGrader
                backend: str | None = None):
    """The grader a scenario needs: rollouts for interactive scenarios, else the QA grader
    (``backend`` overrides the scenario's QA grader backend: hf, lm_eval or vllm)."""
    if scenario.interactive is not None:
        if backend not in (None, "hf"):
            raise ValueError(f"{scenario.id} is interactive: its rollouts run on the hf backend only, "
                             f"not {backend!r}")
        return InteractiveGrader(scenario, assets)
    from autorl_gym.grading.grader import Grader

    return Grader(scenario, assets, backend=backend)
