"""The ``vllm`` grader backend: the project's own generation loop on vLLM (GPU).

Same prompts (built by the grader) and the same answer extraction as the ``hf`` backend;
greedy decoding with the protocol's stop strings and max new tokens. A LoRA adapter is served on
top of the scenario's base model with a ``LoRARequest`` (no merge); a full model is loaded as is.
One engine is kept per (model, tokenizer) so that successive adapters on the same base reuse it.

vLLM is the ``gpu`` extra (``pip install -e ".[gpu]"``); without it this backend refuses with a
message saying so.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autorl_gym.core.records import SubmissionError, SubmissionInfo
from autorl_gym.core.scenario import GraderSpec, Protocol
from autorl_gym.grading.backends.hf import truncate_at_stop


class VllmUnavailable(RuntimeError):
    """vLLM is not installed (or cannot start) where the grader runs."""


class EngineSpec(BaseModel):
    """Arguments of ``vllm.LLM`` for one submission."""

    model: str
    tokenizer: str
    dtype: str
    enable_lora: bool
    max_lora_rank: int | None = None
    gpu_memory_utilization: float
    seed: int = 0

    def llm_kwargs(self) -> dict[str, Any]:
        kw = self.model_dump(exclude={"max_lora_rank"})
        if self.enable_lora:
            kw["max_lora_rank"] = self.max_lora_rank
            kw["max_loras"] = 1
        return kw


class GenerationPlan(BaseModel):
    engine: EngineSpec
    sampling: dict[str, Any]
    lora_name: str | None = None
    lora_path: str | None = None


def lora_rank(adapter_dir: Path) -> int:
    try:
        cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    except (OSError, ValueError) as e:
        raise SubmissionError(f"{adapter_dir.name}/adapter_config.json is not readable JSON: {e}") from e
    r = cfg.get("r")
    if not isinstance(r, int) or r <= 0:
        raise SubmissionError(f"{adapter_dir.name}/adapter_config.json: field 'r' (the LoRA rank) "
                              f"must be a positive integer, got {r!r}")
    return r


def _round_rank(r: int) -> int:
    """vLLM accepts max_lora_rank from a fixed set (8, 16, 32, 64, 128, 256, ...)."""
    for allowed in (8, 16, 32, 64, 128, 256, 320, 512):
        if r <= allowed:
            return allowed
    return r


def plan_generation(sub: SubmissionInfo, base_model_dir: Path, grader: GraderSpec,
                    protocol: Protocol) -> GenerationPlan:
    """What ``LLM(...)``, ``SamplingParams(...)`` and ``LoRARequest`` will be given."""
    dtype = "bfloat16" if grader.dtype == "auto" else grader.dtype
    tokenizer = sub.path if sub.has_tokenizer else base_model_dir
    sampling = {"temperature": 0.0, "max_tokens": protocol.max_new_tokens,
                "stop": list(protocol.stop), "seed": 0}
    if sub.kind == "full":
        engine = EngineSpec(model=str(sub.path), tokenizer=str(tokenizer), dtype=dtype,
                            enable_lora=False, gpu_memory_utilization=grader.gpu_memory_utilization)
        return GenerationPlan(engine=engine, sampling=sampling)
    rank = lora_rank(sub.path)
    if rank > grader.max_lora_rank:
        raise SubmissionError(
            f"{sub.path.name}: LoRA rank {rank} is above the grader's max_lora_rank "
            f"{grader.max_lora_rank}; train with r <= {grader.max_lora_rank} or merge the adapter "
            "(merge_and_unload) and submit the full model")
    engine = EngineSpec(model=str(base_model_dir), tokenizer=str(tokenizer), dtype=dtype,
                        enable_lora=True, max_lora_rank=_round_rank(grader.max_lora_rank),
                        gpu_memory_utilization=grader.gpu_memory_utilization)
    return GenerationPlan(engine=engine, sampling=sampling, lora_name=sub.path.name,
                          lora_path=str(sub.path))


def completion_texts(outputs: Sequence[Any], protocol: Protocol) -> list[str]:
    """Each request's first completion, cut at the protocol's stop strings like the hf backend.

    vLLM already stops at them (and leaves them out); the cut also covers a stop string that
    spans the end of the text when ``max_tokens`` was hit.
    """
    return [truncate_at_stop(o.outputs[0].text, protocol.stop) for o in outputs]


_ENGINE: tuple[str, Any] | None = None
_LORA_IDS = itertools.count(1)


def _engine(spec: EngineSpec) -> Any:
    global _ENGINE
    try:
        from vllm import LLM
    except ImportError as e:
        raise VllmUnavailable(
            "the vllm grader backend needs vLLM, which is not installed here: "
            "pip install -e '.[gpu]' on a machine with an NVIDIA GPU, or use --backend hf"
        ) from e
    key = spec.model_dump_json()
    if _ENGINE is not None and _ENGINE[0] == key:
        return _ENGINE[1]
    if _ENGINE is not None:  # free the previous engine's GPU memory before starting another
        _ENGINE = None
        import gc

        gc.collect()
    llm = LLM(**spec.llm_kwargs())
    _ENGINE = (key, llm)
    return llm


def generate(sub: SubmissionInfo, base_model_dir: Path, grader: GraderSpec, protocol: Protocol,
             prompts: list[str], on_batch: Callable[[int], None] | None = None) -> list[str]:
    """Greedy completions of ``prompts`` by the submission, on vLLM."""
    plan = plan_generation(sub, base_model_dir, grader, protocol)
    llm = _engine(plan.engine)
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    params = SamplingParams(**plan.sampling)
    lora = None
    if plan.lora_path is not None:
        # a fresh id per grading: vLLM caches adapters by id, and a path may be overwritten
        lora = LoRARequest(plan.lora_name or "adapter", next(_LORA_IDS), plan.lora_path)
    outputs = llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
    texts = completion_texts(outputs, protocol)
    if on_batch:
        on_batch(len(texts))
    return texts
