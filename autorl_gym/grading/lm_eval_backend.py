"""The ``lm_eval`` grader backend: lm-evaluation-harness ``simple_evaluate``.

For every grading run a task YAML is written into the run folder that pins lm-eval's gsm8k task
to the scenario's protocol: the same items (written to ``eval.jsonl``), the same prompt text,
few-shot examples in the same order (``first_n`` from the visible train split, never sampled),
the same delimiters, stop strings, ``max_gen_toks`` and filters (``strict-match`` and
``flexible-extract``, lm-eval's own regexes). lm-eval's samples are logged beside it
(``samples.jsonl``) with ``results.json``.

lm-eval's ``hf`` model runs with ``batch_size=1``: it calls ``generate`` without an attention
mask, so for models whose pad token is also an end-of-text token (Qwen2.5, the micro model) a
padded batch would change the completions. Its context window is opened wide so that lm-eval
never left-truncates a prompt the other backends see whole.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from autorl_gym.grading.hf_backend import pick_device, pick_dtype
from autorl_gym.grading.submission import SubmissionError, SubmissionInfo
from autorl_gym.io import atomic_write_json, atomic_write_text
from autorl_gym.scenario import GraderSpec, Protocol
from autorl_gym.tasks.answers import FLEXIBLE_RE, STRICT_RE
from autorl_gym.tasks.qa import Problem, file_digest

log = logging.getLogger(__name__)
TASK_NAME = "autorl_gsm8k"
FILTERS = ("strict-match", "flexible-extract")
WIDE_CONTEXT = 1 << 20  # lm-eval truncates contexts to max_length - max_gen_toks


class LmEvalUnavailable(RuntimeError):
    """lm-evaluation-harness is not installed where the grader runs."""


class LmEvalItem(BaseModel):
    doc_id: int
    context: str
    completion: str
    filtered: dict[str, str]       # filter name -> lm-eval's filtered response
    exact_match: dict[str, float]  # filter name -> lm-eval's exact_match


class LmEvalOutput(BaseModel):
    completions: list[str]
    scores: dict[str, float]       # filter name -> exact_match in percent
    items: list[LmEvalItem]
    run_dir: Path


def jinja_template(prompt_template: str) -> str:
    """The protocol's ``str.format`` template as a Jinja template lm-eval renders identically."""
    parts = [p.replace("{{", "{").replace("}}", "}") for p in prompt_template.split("{question}")]
    return "{{question}}".join("{% raw %}" + p + "{% endraw %}" if p else "" for p in parts)


def task_config(protocol: Protocol, train_file: Path, eval_file: Path,
                task_name: str = TASK_NAME) -> dict[str, Any]:
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
            "ignore_case": True, "ignore_punctuation": False,
            "regexes_to_ignore": [",", "\\$", "(?s).*#### ", "\\.$"],
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


def model_args(sub: SubmissionInfo, base_model_dir: Path, grader: GraderSpec,
               batch_size: int | None = None) -> tuple[str, dict]:
    """(lm-eval model type, model_args) for a full model or an adapter on the base model.
    ``batch_size`` other than 1 for the ``hf`` model is for benchmarks only (see the module doc)."""
    tokenizer = str(sub.path if sub.has_tokenizer else base_model_dir)
    pretrained = str(sub.path if sub.kind == "full" else base_model_dir)
    if grader.lm_eval_model == "vllm":
        args: dict[str, Any] = {
            "pretrained": pretrained, "tokenizer": tokenizer,
            "dtype": "bfloat16" if grader.dtype == "auto" else grader.dtype,
            "gpu_memory_utilization": grader.gpu_memory_utilization, "batch_size": "auto",
        }
        if sub.kind == "lora":
            args |= {"lora_local_path": str(sub.path), "max_lora_rank": grader.max_lora_rank}
        return "vllm", args
    device = pick_device(grader.device)
    dtype = str(pick_dtype(grader.dtype, device)).removeprefix("torch.")
    args = {"pretrained": pretrained, "tokenizer": tokenizer, "device": device, "dtype": dtype,
            "batch_size": batch_size or 1, "max_length": WIDE_CONTEXT}
    if sub.kind == "lora":
        args["peft"] = str(sub.path)
    return "hf", args


def _jsonl(problems: list[Problem]) -> str:
    return "".join(json.dumps({"question": p.question, "answer": p.answer}) + "\n" for p in problems)


def parse_samples(samples: list[dict[str, Any]], n: int) -> list[LmEvalItem]:
    """One item per document from lm-eval's per-(document, filter) samples, in document order."""
    by_doc: dict[int, LmEvalItem] = {}
    for s in samples:
        doc_id = int(s["doc_id"])
        item = by_doc.get(doc_id)
        if item is None:
            item = by_doc[doc_id] = LmEvalItem(
                doc_id=doc_id, context=s["arguments"][0][0], completion=s["resps"][0][0],
                filtered={}, exact_match={})
        item.filtered[s["filter"]] = s["filtered_resps"][0]
        item.exact_match[s["filter"]] = float(s["exact_match"])
    missing = sorted(set(range(n)) - set(by_doc))
    if missing:
        raise RuntimeError(f"lm-eval returned no sample for documents {missing[:10]}")
    return [by_doc[i] for i in range(n)]


def evaluate(sub: SubmissionInfo, base_model_dir: Path, grader: GraderSpec, protocol: Protocol,
             train_file: Path, problems: list[Problem], run_dir: Path,
             on_batch: Callable[[int], None] | None = None,
             batch_size: int | None = None) -> LmEvalOutput:
    """Run ``simple_evaluate`` on ``problems``; task YAML, samples and results go to ``run_dir``."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager
    except ImportError as e:
        raise LmEvalUnavailable(
            "the lm_eval grader backend needs lm-evaluation-harness: pip install 'lm-eval==0.4.13'"
        ) from e
    run_dir.mkdir(parents=True, exist_ok=True)
    eval_file = run_dir / "eval.jsonl"
    atomic_write_text(eval_file, _jsonl(problems))
    # one task name per (protocol, data): lm-eval registers tasks by name
    key = file_digest(eval_file)[:8] + file_digest(train_file)[:8]
    name = f"{TASK_NAME}_{key}"
    task_dir = run_dir / "task"
    atomic_write_text(task_dir / f"{name}.yaml",
                      yaml.safe_dump(task_config(protocol, train_file, eval_file, name),
                                     sort_keys=False, allow_unicode=True))
    model, args = model_args(sub, base_model_dir, grader, batch_size)
    atomic_write_json(run_dir / "model_args.json", {"model": model, "model_args": args})
    try:
        results = simple_evaluate(
            model=model, model_args=args, tasks=[name],
            task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
            log_samples=True, bootstrap_iters=0, apply_chat_template=protocol.chat_template,
            fewshot_as_multiturn=False, verbosity="ERROR",
        )
    except (OSError, ValueError) as e:
        what = "model" if sub.kind == "full" else "adapter"
        raise SubmissionError(f"{sub.path.name}: lm-eval could not load or run the {what} "
                              f"({e.__class__.__name__}: {str(e).splitlines()[0][:300]})") from e
    if results is None:
        raise RuntimeError("lm-eval returned no results")
    samples = results["samples"][name]
    items = parse_samples(samples, len(problems))
    with (run_dir / "samples.jsonl").open("w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps(s, default=str) + "\n")
    task_res = results["results"][name]
    scores = {f: 100.0 * float(task_res[f"exact_match,{f}"]) for f in FILTERS}
    atomic_write_json(run_dir / "results.json", {"results": results["results"],
                                                 "config": results.get("config", {})})
    if on_batch:
        on_batch(len(items))
    return LmEvalOutput(completions=[i.completion for i in items], scores=scores, items=items,
                        run_dir=run_dir)
