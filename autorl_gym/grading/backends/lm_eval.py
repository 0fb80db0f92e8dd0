"""The ``lm_eval`` grader backend: lm-evaluation-harness ``simple_evaluate``.

For every grading run the task family writes an lm-eval task config pinned to the scenario's
protocol and to local data files (:meth:`autorl_gym.core.family.StaticTask.lm_eval_task`: for
GSM8K, lm-eval's gsm8k task with the same items, prompt text, first-n few-shot examples,
delimiters, stop strings, ``max_gen_toks`` and filters). It is written as YAML into the run
folder, run there, and lm-eval's samples are logged beside it (``samples.jsonl``) with
``results.json``. The completions come back in document order and the family scores them as it
scores every backend's; lm-eval's own figures are kept beside.

lm-eval's ``hf`` model runs with ``batch_size=1``: it calls ``generate`` without an attention
mask, so for models whose pad token is also an end-of-text token (Qwen2.5, the micro model) a
padded batch would change the completions. Its context window is opened wide so that lm-eval
never left-truncates a prompt the other backends see whole.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from autorl_gym.core.durable import atomic_write_json, atomic_write_text
from autorl_gym.core.records import SubmissionError, SubmissionInfo
from autorl_gym.core.scenario import GraderSpec
from autorl_gym.grading.backends.hf import pick_device, pick_dtype

log = logging.getLogger(__name__)
WIDE_CONTEXT = 1 << 20  # lm-eval truncates contexts to max_length - max_gen_toks


class LmEvalUnavailable(RuntimeError):
    """lm-evaluation-harness is not installed where the grader runs."""


class LmEvalItem(BaseModel):
    doc_id: int
    context: str
    completion: str
    filtered: dict[str, Any]        # filter name -> lm-eval's filtered response
    metrics: dict[str, float]       # "metric,filter" -> lm-eval's per-document value


class LmEvalOutput(BaseModel):
    completions: list[str]
    task_results: dict[str, Any]    # lm-eval's aggregated results of the task
    items: list[LmEvalItem]
    run_dir: Path


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


def parse_samples(samples: list[dict[str, Any]], n: int, metric_names: list[str]) -> list[LmEvalItem]:
    """One item per document from lm-eval's per-(document, filter) samples, in document order."""
    by_doc: dict[int, LmEvalItem] = {}
    for s in samples:
        doc_id = int(s["doc_id"])
        item = by_doc.get(doc_id)
        if item is None:
            resp = s["resps"][0][0] if isinstance(s["resps"][0], list) else s["resps"][0]
            item = by_doc[doc_id] = LmEvalItem(
                doc_id=doc_id, context=s["arguments"][0][0], completion=resp, filtered={},
                metrics={})
        item.filtered[s["filter"]] = s["filtered_resps"][0]
        for m in metric_names:
            if m in s and isinstance(s[m], int | float | bool):
                item.metrics[f"{m},{s['filter']}"] = float(s[m])
    missing = sorted(set(range(n)) - set(by_doc))
    if missing:
        raise RuntimeError(f"lm-eval returned no sample for documents {missing[:10]}")
    return [by_doc[i] for i in range(n)]


def evaluate(sub: SubmissionInfo, base_model_dir: Path, grader: GraderSpec, config: dict[str, Any],
             n: int, run_dir: Path, chat_template: bool = False,
             batch_size: int | None = None) -> LmEvalOutput:
    """Run ``simple_evaluate`` on the task ``config`` (``n`` documents); the task YAML, samples
    and results go to ``run_dir``."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager
    except ImportError as e:
        raise LmEvalUnavailable(
            "the lm_eval grader backend needs lm-evaluation-harness: pip install 'lm-eval==0.4.13'"
        ) from e
    run_dir.mkdir(parents=True, exist_ok=True)
    name = config["task"]
    task_dir = run_dir / "task"
    atomic_write_text(task_dir / f"{name}.yaml",
                      yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    model, args = model_args(sub, base_model_dir, grader, batch_size)
    atomic_write_json(run_dir / "model_args.json", {"model": model, "model_args": args})
    try:
        results = simple_evaluate(
            model=model, model_args=args, tasks=[name],
            task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
            log_samples=True, bootstrap_iters=0, apply_chat_template=chat_template,
            fewshot_as_multiturn=False, verbosity="ERROR",
        )
    except (OSError, ValueError) as e:
        what = "model" if sub.kind == "full" else "adapter"
        raise SubmissionError(f"{sub.path.name}: lm-eval could not load or run the {what} "
                              f"({e.__class__.__name__}: {str(e).splitlines()[0][:300]})") from e
    if results is None:
        raise RuntimeError("lm-eval returned no results")
    samples = results["samples"][name]
    metric_names = [m["metric"] for m in config.get("metric_list", [])]
    items = parse_samples(samples, n, metric_names)
    with (run_dir / "samples.jsonl").open("w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps(s, default=str) + "\n")
    atomic_write_json(run_dir / "results.json", {"results": results["results"],
                                                 "config": results.get("config", {})})
    return LmEvalOutput(completions=[i.completion for i in items], task_results=results["results"][name],
                        items=items, run_dir=run_dir)
