"""Question/answer tasks stored as JSON lines (``question``, ``answer`` ending in ``#### N``):
the format of GSM8K and of the micro arithmetic task, and :class:`QATask`, the family base both
share (few-shot prompts from the visible train split, answers scored exactly as lm-eval's gsm8k
task scores them (:mod:`autorl_gym.core.answers`), lm-eval's gsm8k task pinned to the same
protocol)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from autorl_gym.core.answers import (
    FLEXIBLE_RE,
    IGNORE_CASE,
    REGEXES_TO_IGNORE,
    SCORING,
    STRICT_RE,
    extract_flexible,
    extract_strict,
    is_correct,
    is_lenient_correct,
    reference_answer,
)
from autorl_gym.core.family import GradeContext, Progress, StaticTask, TaskItem

if TYPE_CHECKING:
    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.records import ItemResult
    from autorl_gym.core.scenario import Protocol, Scenario

LM_EVAL_FILTERS = ("strict-match", "flexible-extract")


class Problem(TaskItem):
    question: str
    answer: str


class SplitLoadError(ValueError):
    """A split file is missing or malformed; the message names the path and the line."""


def jsonl_records(path: Path) -> Iterator[tuple[str, Any]]:
    """``(where, record)`` for every non-blank line of a ``.jsonl`` (or ``.jsonl.gz``) file,
    ``where`` being ``path:line``; SplitLoadError names the path and the line."""
    if not path.is_file():
        raise SplitLoadError(f"{path}: split file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise SplitLoadError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
                yield f"{path}:{lineno}", rec
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise SplitLoadError(f"{path}: cannot be read ({e.__class__.__name__}: {e})") from None


def load_jsonl_split(path: Path, limit: int | None = None) -> list[Problem]:
    problems: list[Problem] = []
    for where, rec in jsonl_records(path):
        if not isinstance(rec, dict) or not isinstance(rec.get("question"), str) \
                or not isinstance(rec.get("answer"), str):
            raise SplitLoadError(f"{where}: expected an object with string fields 'question' and 'answer'")
        try:
            gold = reference_answer(rec["answer"])
        except ValueError as e:
            raise SplitLoadError(f"{where}: {e}") from None
        problems.append(Problem(index=len(problems), question=rec["question"],
                                answer=rec["answer"], gold=gold))
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise SplitLoadError(f"{path}: split file holds no problems")
    return problems


def jsonl_text(problems: Sequence[Problem]) -> str:
    return "".join(json.dumps({"question": p.question, "answer": p.answer}) + "\n" for p in problems)


def hidden_jsonl_assets(scenario: Scenario, train_dir: Path, hidden_dir: Path, base_model: str | None,
                        progress: bool) -> ScenarioAssets:
    """Assets of a task whose splits are ``train_dir/train.jsonl`` and ``hidden_dir/{dev,test}.jsonl``."""
    from autorl_gym.core.assets import ScenarioAssets, resolve_base_model
    from autorl_gym.core.scenario import ScenarioError

    if not (train_dir / "train.jsonl").is_file():
        raise ScenarioError(f"{scenario.id}: train split not found at {train_dir / 'train.jsonl'}")
    splits = {s: hidden_dir / f"{s}.jsonl" for s in ("dev", "test")}
    for s, path in splits.items():
        if not path.is_file():
            raise ScenarioError(f"{scenario.id}: hidden {s} split not found at {path}")
    model_dir = resolve_base_model(base_model or scenario.base_model, progress=progress)
    return ScenarioAssets(base_model_dir=model_dir, train_dir=train_dir.resolve(),
                          hidden_splits={k: v.resolve() for k, v in splits.items()})


def jinja_template(prompt_template: str) -> str:
    """The protocol's ``str.format`` template as a Jinja template lm-eval renders identically."""
    parts = [p.replace("{{", "{").replace("}}", "}") for p in prompt_template.split("{question}")]
    return "{{question}}".join("{% raw %}" + p + "{% endraw %}" if p else "" for p in parts)


def gsm8k_task_config(protocol: Protocol, train_file: Path, eval_file: Path,
                      task_name: str) -> dict[str, Any]:
    """lm-eval's gsm8k task, pinned to the protocol and to local data files."""
    return {
        "task": task_name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"train": str(train_file), "eval": str(eval_file)}},
        "output_type": "generate_until",
        "training_split": "train",
        "fewshot_split": "train",
        "test_split": "eval",
        "fewshot_config": {"sampler": "first_n"},
        "num_fewshot": protocol.few_shot,
        "doc_to_text": jinja_template(protocol.prompt_template),
        "doc_to_target": "{{answer}}",
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "generation_kwargs": {"until": list(protocol.stop), "do_sample": False, "temperature": 0.0,
                              "max_gen_toks": protocol.max_new_tokens},
        "repeats": 1,
        "metric_list": [{
            "metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
            "ignore_case": IGNORE_CASE, "ignore_punctuation": False,
            "regexes_to_ignore": list(REGEXES_TO_IGNORE),
        }],
        "filter_list": [
            {"name": "strict-match", "filter": [
                {"function": "regex", "regex_pattern": STRICT_RE.pattern},
                {"function": "take_first"}]},
            {"name": "flexible-extract", "filter": [
                {"function": "regex", "group_select": -1, "regex_pattern": FLEXIBLE_RE.pattern},
                {"function": "take_first"}]},
        ],
        "metadata": {"version": 1.0, "protocol": protocol.model_dump()},
    }


class QATask(StaticTask):
    """Question -> worked answer ending in ``#### N``; scored by the strict answer."""

    metrics: ClassVar[tuple[str, ...]] = ("accuracy",)

    def check_scenario(self, scenario: Scenario) -> None:
        super().check_scenario(scenario)
        if "{question}" not in scenario.protocol.prompt_template:
            raise ValueError("field 'protocol.prompt_template': must contain '{question}'")

    def load_split(self, ctx: GradeContext, split: str) -> list[Problem]:
        return load_jsonl_split(ctx.split_path(split))

    def prompt(self, ctx: GradeContext, item: Problem) -> str:
        proto = ctx.scenario.protocol
        shots = ""
        if proto.few_shot:
            shots = "".join(proto.prompt_template.format(question=p.question) + " " + p.answer + "\n\n"
                            for p in ctx.items("train", proto.few_shot))
        return shots + proto.prompt_template.format(question=item.question)

    def score(self, ctx: GradeContext, items: Sequence[Problem], completions: list[str],
              progress: Progress | None = None) -> list[ItemResult]:
        from autorl_gym.core.records import ItemResult

        out = []
        for p, text in zip(items, completions, strict=True):
            strict, flex = extract_strict(text), extract_flexible(text)
            out.append(ItemResult(index=p.index, gold=p.gold, answer=strict,
                                  correct=is_correct(strict, p.gold), completion=text,
                                  details={"flexible": flex, "flexible_correct": is_correct(flex, p.gold),
                                           "lenient_correct": is_lenient_correct(strict, p.gold)}))
        return out

    def summary_metrics(self, results: list[ItemResult]) -> dict[str, float]:
        """``flexible``: lm-eval's flexible-extract; ``lenient``: the strict answer compared as a
        number (not lm-eval's; ``#### 48.0`` counts there)."""
        n = len(results) or 1
        return {"flexible": 100.0 * sum(bool(r.details.get("flexible_correct")) for r in results) / n,
                "lenient": 100.0 * sum(bool(r.details.get("lenient_correct")) for r in results) / n}

    def baseline_settings(self, ctx: GradeContext) -> dict[str, Any]:
        return super().baseline_settings(ctx) | {"scoring": SCORING}

    def protocol_record(self, ctx: GradeContext, backend: str) -> dict[str, Any]:
        return super().protocol_record(ctx, backend) | {
            "few_shot_source": "first problems of the visible train split", "scoring": SCORING}

    def lm_eval_task(self, ctx: GradeContext, items: Sequence[Problem], run_dir: Path) -> dict[str, Any]:
        from autorl_gym.core.durable import atomic_write_text, file_digest

        eval_file = run_dir / "eval.jsonl"
        atomic_write_text(eval_file, jsonl_text(items))
        train_file = ctx.split_path("train")
        # one task name per (protocol, data): lm-eval registers tasks by name
        name = f"autorl_{self.name}_{file_digest(eval_file)[:8]}{file_digest(train_file)[:8]}"
        return gsm8k_task_config(ctx.scenario.protocol, train_file, eval_file, name)

    def lm_eval_metrics(self, task_results: dict[str, Any]) -> dict[str, float]:
        return {f"lm_eval_{f}": 100.0 * float(task_results[f"exact_match,{f}"]) for f in LM_EVAL_FILTERS}
