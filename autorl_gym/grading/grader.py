"""Grade a model on a scenario split, and measure (once, cached) the base model's baseline."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from autorl_gym.assets import ScenarioAssets
from autorl_gym.grading import hf_backend
from autorl_gym.grading.results import EvalResult, ItemResult
from autorl_gym.grading.submission import (
    SubmissionInfo,
    check_submission,
    inspect_submission,
    weights_hash,
)
from autorl_gym.io import atomic_write_text
from autorl_gym.paths import cache_dir
from autorl_gym.scenario import Scenario
from autorl_gym.tasks.answers import extract_flexible, extract_strict
from autorl_gym.tasks.qa import Problem, file_digest, load_jsonl_split

log = logging.getLogger(__name__)
BACKENDS = ("hf", "lm_eval", "vllm")
Progress = Callable[[int, int], None]  # (done, total)


class Grader:
    """Scores models on a scenario's hidden splits. Runs on the host, never in the sandbox."""

    def __init__(self, scenario: Scenario, assets: ScenarioAssets, backend: str | None = None,
                 log_root: Path | None = None):
        self.scenario = scenario
        self.assets = assets
        self.backend = backend or scenario.grader.backend
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown grader backend {self.backend!r}; available: {', '.join(BACKENDS)}")
        self.log_root = log_root  # lm_eval writes its task YAML and samples here (else the cache)
        self._base_info = inspect_submission(assets.base_model_dir)
        self._base_hash: str | None = None
        self._splits: dict[str, list[Problem]] = {}

    @property
    def base_hash(self) -> str:
        if self._base_hash is None:
            self._base_hash = weights_hash(self._base_info.weight_files)
        return self._base_hash

    def problems(self, split: str, limit: int | None = None) -> list[Problem]:
        if split not in self._splits:
            path = self.split_path(split)
            self._splits[split] = load_jsonl_split(path)
        items = self._splits[split]
        return items[:limit] if limit else items

    def split_path(self, split: str) -> Path:
        if split == "train":
            return self.assets.train_dir / "train.jsonl"
        if split not in self.assets.hidden_splits:
            raise ValueError(f"unknown split {split!r}; splits: train, dev, test")
        return self.assets.hidden_splits[split]

    def prompts(self, problems: list[Problem], tokenizer) -> list[str]:  # noqa: ANN001
        proto = self.scenario.protocol
        shots = ""
        if proto.few_shot:
            train = self.problems("train", proto.few_shot)
            shots = "".join(
                proto.prompt_template.format(question=p.question) + " " + p.answer + "\n\n"
                for p in train
            )
        out = []
        for p in problems:
            text = shots + proto.prompt_template.format(question=p.question)
            if proto.chat_template:
                text = tokenizer.apply_chat_template(
                    [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
                )
            out.append(text)
        return out

    def protocol_record(self) -> dict:
        """The protocol as graded (feedback.json): the scenario's, plus backend and shots."""
        return self.scenario.protocol.model_dump() | {
            "backend": self.backend, "few_shot_source": "first problems of the visible train split",
        }

    def evaluate(self, model_dir: Path, split: str, limit: int | None = None,
                 progress: Progress | None = None, info: SubmissionInfo | None = None,
                 log_dir: Path | None = None) -> EvalResult:
        """Score a model directory (full model or LoRA adapter) on a split."""
        info = info or inspect_submission(model_dir)
        check_submission(info, self.assets.base_model_dir)
        mhash = weights_hash(info.weight_files)
        problems = self.problems(split, limit)
        t0 = time.perf_counter()
        notes = [] if info.has_tokenizer else [
            "submission has no tokenizer files; the base model's tokenizer was used"]
        done = 0

        def on_batch(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, len(problems))

        lm_scores: dict[str, float] | None = None
        if self.backend == "lm_eval":
            from autorl_gym.grading import lm_eval_backend

            run_dir = log_dir or self._log_dir(split, mhash)
            out = lm_eval_backend.evaluate(
                info, self.assets.base_model_dir, self.scenario.grader, self.scenario.protocol,
                train_file=self.split_path("train"), problems=problems, run_dir=run_dir,
                on_batch=on_batch)
            completions, lm_scores = out.completions, out.scores
            notes.append(f"lm-eval task YAML and samples in {run_dir}")
        elif self.backend == "vllm":
            from autorl_gym.grading import vllm_backend

            tokenizer, _ = hf_backend.load_tokenizer(
                info.path if info.has_tokenizer else self.assets.base_model_dir,
                self.assets.base_model_dir)
            completions = vllm_backend.generate(info, self.assets.base_model_dir,
                                                self.scenario.grader, self.scenario.protocol,
                                                self.prompts(problems, tokenizer), on_batch)
        else:
            model, tokenizer = hf_backend.load_model(info, self.assets.base_model_dir,
                                                     self.scenario.grader)
            completions = hf_backend.generate(model, tokenizer, self.prompts(problems, tokenizer),
                                              self.scenario.protocol, self.scenario.grader.batch_size,
                                              on_batch)
            del model
        items = []
        for p, text in zip(problems, completions, strict=True):
            strict, flex = extract_strict(text), extract_flexible(text)
            items.append(ItemResult(index=p.index, gold=p.gold, strict=strict, flexible=flex,
                                    correct=strict == p.gold, completion=text))
        n = len(items)
        correct = sum(i.correct for i in items)
        flex_correct = sum(i.flexible == i.gold for i in items)
        if lm_scores is not None:
            notes.append("lm-eval's own exact_match: strict-match "
                         f"{lm_scores['strict-match']:.2f}, flexible-extract "
                         f"{lm_scores['flexible-extract']:.2f}")
        return EvalResult(
            split=split, n=n, score=100.0 * correct / n, flexible_score=100.0 * flex_correct / n,
            correct=correct, flexible_correct=flex_correct, model_hash=mhash,
            kind="base" if mhash == self.base_hash else info.kind, backend=self.backend,
            protocol=self.protocol_record(), seconds=time.perf_counter() - t0,
            items=items, notes=notes, lm_eval_scores=lm_scores,
        )

    def _log_dir(self, split: str, mhash: str) -> Path:
        root = self.log_root or cache_dir() / "lm_eval_runs"
        stamp = time.strftime("%Y%m%dT%H%M%S")
        return root / "lm_eval" / f"{split}_{mhash[:12]}_{stamp}_{uuid.uuid4().hex[:6]}"

    def baseline_key(self, split: str, limit: int | None = None) -> str:
        key = {
            "scenario": self.scenario.id,
            "base_hash": self.base_hash,
            "split": split,
            "split_digest": file_digest(self.split_path(split)),
            "limit": limit,
            "backend": self.backend,
            "protocol": self.scenario.protocol.model_dump(),
            "grader": self.scenario.grader.model_dump(
                exclude={"batch_size", "gpu_memory_utilization", "max_lora_rank"}),
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
        path = self._baseline_path(split, limit)
        result = self.evaluate(self.assets.base_model_dir, split, limit, progress,
                               info=self._base_info)
        atomic_write_text(path, result.model_dump_json())
        return result
