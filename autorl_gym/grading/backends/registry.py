"""Generation backends, registered by name: how a static task's completions are produced.

``hf`` (transformers, CPU or GPU), ``vllm`` (GPU; a LoRA adapter served with a LoRARequest) and
``lm_eval`` (lm-evaluation-harness running the family's own lm-eval task, for parity with the
published protocol). Every backend returns the completions in item order; the task family scores
them, so the backends cannot disagree on what counts as right.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel, Field

from autorl_gym.core.registry import Registry

if TYPE_CHECKING:
    from autorl_gym.core.family import GradeContext, TaskFamily
    from autorl_gym.core.records import SubmissionInfo

OnBatch = Callable[[int], None]
B = TypeVar("B", bound=type)


class Generation(BaseModel):
    completions: list[str]
    metrics: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class GenerationBackend(Protocol):
    name: str

    def generate(self, ctx: GradeContext, info: SubmissionInfo, items: Sequence[Any],
                 on_batch: OnBatch, run_dir: Path) -> Generation: ...


#: the generation backends (the built-ins are this module's classes)
BACKENDS: Registry[type] = Registry("grader backend")


def register_backend(cls: B) -> B:
    """Class decorator: a generation backend under ``cls.name``."""
    BACKENDS.add(cls.name, cls, owner=f"{cls.__module__}.{cls.__qualname__}")  # type: ignore[attr-defined]
    return cls


def backend_names() -> list[str]:
    return BACKENDS.names()


def check_backend(name: str, family: TaskFamily) -> None:
    """ValueError unless ``name`` can grade ``family``: interactive families play their
    episodes with the hf policy only."""
    if family.kind == "interactive":
        if name != "hf":
            raise ValueError(f"task family {family.name!r} is interactive: its episodes are played "
                             f"with the hf backend only, not {name!r}")
        return
    BACKENDS.get(name)


def get_backend(name: str) -> GenerationBackend:
    return BACKENDS.get(name)()


def build_prompts(ctx: GradeContext, items: Sequence[Any], tokenizer: Any) -> list[str]:
    """The family's prompts, through the tokenizer's chat template when the protocol says so."""
    out = []
    for item in items:
        text = ctx.family.prompt(ctx, item)  # type: ignore[attr-defined]
        if ctx.scenario.protocol.chat_template:
            text = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                 add_generation_prompt=True, tokenize=False)
        out.append(text)
    return out


@register_backend
class HFBackend:
    name = "hf"

    def generate(self, ctx: GradeContext, info: SubmissionInfo, items: Sequence[Any],
                 on_batch: OnBatch, run_dir: Path) -> Generation:
        from autorl_gym.grading.backends import hf as hf_backend

        grader = ctx.scenario.grader
        model, tokenizer = hf_backend.load_model(info, ctx.assets.base_model_dir, grader)
        completions = hf_backend.generate(model, tokenizer, build_prompts(ctx, items, tokenizer),
                                          ctx.scenario.protocol, grader.batch_size, on_batch)
        return Generation(completions=completions)


@register_backend
class VllmBackend:
    name = "vllm"

    def generate(self, ctx: GradeContext, info: SubmissionInfo, items: Sequence[Any],
                 on_batch: OnBatch, run_dir: Path) -> Generation:
        from autorl_gym.grading.backends import hf as hf_backend
        from autorl_gym.grading.backends import vllm as vllm_backend

        base = ctx.assets.base_model_dir
        tokenizer, _ = hf_backend.load_tokenizer(info.path if info.has_tokenizer else base, base)
        completions = vllm_backend.generate(info, base, ctx.scenario.grader, ctx.scenario.protocol,
                                            build_prompts(ctx, items, tokenizer), on_batch)
        return Generation(completions=completions)


@register_backend
class LmEvalBackend:
    name = "lm_eval"

    def generate(self, ctx: GradeContext, info: SubmissionInfo, items: Sequence[Any],
                 on_batch: OnBatch, run_dir: Path) -> Generation:
        from autorl_gym.grading.backends import lm_eval as lm_eval_backend

        run_dir.mkdir(parents=True, exist_ok=True)
        config = ctx.family.lm_eval_task(ctx, items, run_dir)  # type: ignore[attr-defined]
        out = lm_eval_backend.evaluate(info, ctx.assets.base_model_dir, ctx.scenario.grader, config,
                                       len(items), run_dir,
                                       chat_template=ctx.scenario.protocol.chat_template)
        on_batch(len(items))
        metrics = ctx.family.lm_eval_metrics(out.task_results)  # type: ignore[attr-defined]
        shown = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
        notes = [f"lm-eval task YAML and samples in {run_dir}"]
        if shown:
            notes.append(f"lm-eval's own scores: {shown}")
        return Generation(completions=out.completions, metrics=metrics, notes=notes)
