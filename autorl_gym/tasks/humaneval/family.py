"""The ``humaneval`` task family: HumanEval Python function completion, scored by pass@1.

Assets: :mod:`autorl_gym.tasks.humaneval.data` (the visible train split with prompts, tests and
canonical solutions; hidden dev and test). Prompt: the problem's ``prompt`` through the
protocol's ``prompt_template`` (``"{prompt}"``: the raw prompt, no few-shot, no chat template by
default). A completion is cut at the protocol's stop sequences (the Codex paper's) and scored by
running ``prompt + completion + test + check(entry_point)`` in a fresh sandbox
(:mod:`autorl_gym.tasks.humaneval.executor`: the candidate's code and the test in two processes,
results compared as values of builtin types); pass@1 is the percentage that pass (greedy, one
sample per problem). Guard trips (a result of a non-builtin type, an early exit, a refused file
or process, the checker killed) are ``code.guard`` integrity events of the split's result.

Where the executor runs, from the scenario's ``task_options`` (:class:`ExecutorSettings`):
``sandbox`` (``local``, bubblewrap, by default; ``none`` runs programs with no isolation),
``workers`` (parallel problems, default up to 4) and ``limits`` (per-problem
:class:`~autorl_gym.tasks.humaneval.executor.ExecLimits`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autorl_gym.core.family import GradeContext, Progress, SplitSummary, StaticTask, TaskItem, register_family
from autorl_gym.core.integrity import IntegrityEvent
from autorl_gym.sandbox.registry import check_sandbox_kind
from autorl_gym.tasks.humaneval import data as he_data
from autorl_gym.tasks.humaneval.executor import ExecLimits, Executor, Program
from autorl_gym.tasks.humaneval.lm_eval_task import TASK_NAME, task_config

if TYPE_CHECKING:
    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.records import ItemResult
    from autorl_gym.core.scenario import Scenario

PROMPT_FIELD = "{prompt}"
FILTER = "execution"
CHECKER = "two-process-builtin-values-v1"  # how a run is judged (a baseline measured otherwise is stale)


class HumanEvalItem(TaskItem):
    task_id: str
    prompt: str
    test: str
    entry_point: str
    canonical_solution: str


class ExecutorSettings(BaseModel):
    """``task_options`` of a HumanEval scenario: where and how the programs run."""

    model_config = ConfigDict(extra="forbid")

    sandbox: str = Field("local", description="sandbox kind of every program's run")
    workers: int = Field(default_factory=lambda: min(4, os.cpu_count() or 1), gt=0,
                         description="programs run at once")
    limits: ExecLimits = Field(default_factory=ExecLimits)

    @field_validator("sandbox")
    @classmethod
    def _registered_kind(cls, v: str) -> str:
        return check_sandbox_kind(v)


def jinja_prompt(template: str) -> str:
    """The protocol's template as a Jinja template lm-eval renders identically."""
    parts = template.split(PROMPT_FIELD)
    return "{{prompt}}".join("{% raw %}" + p + "{% endraw %}" if p else "" for p in parts)


def guard_event(r: ItemResult) -> IntegrityEvent:
    """The ``code.guard`` event of one graded item whose run tripped a guard."""
    d = r.details
    verdict = "passed" if r.correct else f"failed: {d.get('status')}"
    return IntegrityEvent(kind="code.guard", source="humaneval",
                          detail=f"{d.get('task_id')}: {', '.join(d['guards'])} ({verdict})",
                          data={"task_id": d.get("task_id"), "index": r.index,
                                "guards": d["guards"], "status": d.get("status"),
                                "passed": r.correct})


@register_family
class HumanEvalTask(StaticTask):
    name: ClassVar[str] = "humaneval"
    metrics: ClassVar[tuple[str, ...]] = ("pass@1",)
    data_sources: ClassVar[tuple[str, ...]] = ("humaneval",)
    description: ClassVar[str] = "HumanEval Python function completion, pass@1 by sandboxed execution"
    options_model: ClassVar[type[BaseModel]] = ExecutorSettings

    # -- the scenario ------------------------------------------------------------------------
    def check_scenario(self, scenario: Scenario) -> None:
        super().check_scenario(scenario)
        proto = scenario.protocol
        if proto.prompt_template.count(PROMPT_FIELD) != 1:
            raise ValueError("field 'protocol.prompt_template': must contain '{prompt}' once")
        if proto.few_shot:
            raise ValueError("field 'protocol.few_shot': HumanEval is graded zero-shot (0)")
        if proto.chat_template:
            raise ValueError("field 'protocol.chat_template': HumanEval completes the raw prompt "
                             "(an instruct variant, which reads code out of a chat answer, is not "
                             "implemented)")
        if proto.filter != FILTER:
            raise ValueError(f"field 'protocol.filter': {FILTER!r} (completions are run, not "
                             f"read), got {proto.filter!r}")
        if not 0 < scenario.data.dev_size < 82:
            raise ValueError("field 'data.dev_size': between 1 and 81 (the dev slice is drawn "
                             "from the first 82 problems)")

    def describe_train_data(self, scenario: Scenario) -> str:
        hub = scenario.data.hub_id or he_data.HUB_ID
        return f"{hub} (HumanEval/0-81 minus a {scenario.data.dev_size}-problem dev slice)"

    # -- assets ------------------------------------------------------------------------------
    def resolve_assets(self, scenario: Scenario, base_model: str | None = None,
                       progress: bool = True) -> ScenarioAssets:
        from autorl_gym.core.scenario import ScenarioError

        d = scenario.data
        try:
            he = he_data.ensure_humaneval(d.dev_size, d.dev_seed, d.hub_id or he_data.HUB_ID)
        except (he_data.SplitLoadError, ValueError) as e:
            raise ScenarioError(f"{scenario.id}: {e}") from e
        return self._assets(he, base_model or scenario.base_model, progress)

    def assets_if_present(self, scenario: Scenario) -> ScenarioAssets | None:
        from autorl_gym.core.assets import base_model_present
        from autorl_gym.core.scenario import ScenarioError

        d = scenario.data
        he = he_data.humaneval_if_materialized(d.dev_size, d.dev_seed, d.hub_id or he_data.HUB_ID)
        if he is None or not base_model_present(scenario.base_model):
            return None
        try:
            return self._assets(he, scenario.base_model, progress=False)
        except ScenarioError:
            return None

    @staticmethod
    def _assets(he: he_data.HumanEvalAssets, base_model: str, progress: bool) -> ScenarioAssets:
        from autorl_gym.core.assets import ScenarioAssets, resolve_base_model

        return ScenarioAssets(
            base_model_dir=resolve_base_model(base_model, progress=progress),
            train_dir=he.train_dir.resolve(),
            hidden_splits={s: he.split_path(s).resolve() for s in ("dev", "test")})

    # -- grading -----------------------------------------------------------------------------
    def load_split(self, ctx: GradeContext, split: str) -> list[HumanEvalItem]:
        return [HumanEvalItem(index=i, gold="pass", **p.model_dump())
                for i, p in enumerate(he_data.load_split(ctx.split_path(split)))]

    def prompt(self, ctx: GradeContext, item: HumanEvalItem) -> str:
        return ctx.scenario.protocol.prompt_template.replace(PROMPT_FIELD, item.prompt)

    def score(self, ctx: GradeContext, items: Sequence[HumanEvalItem], completions: list[str],
              progress: Progress | None = None) -> list[ItemResult]:
        from autorl_gym.core.records import ItemResult

        settings = self.options(ctx.scenario)
        executor = Executor(settings.limits, sandbox=settings.sandbox, workers=settings.workers)
        programs = [Program(task_id=it.task_id, prompt=it.prompt, completion=c, test=it.test,
                            entry_point=it.entry_point)
                    for it, c in zip(items, completions, strict=True)]
        outcomes = executor.run(programs, progress)
        return [ItemResult(index=it.index, gold=it.gold, answer=o.status, correct=o.passed,
                           completion=c, details={"task_id": it.task_id, "status": o.status,
                                                  "reason": o.reason,
                                                  "seconds": round(o.seconds, 3),
                                                  **({"guards": o.guards} if o.guards else {})})
                for it, c, o in zip(items, completions, outcomes, strict=True)]

    def summary_metrics(self, results: list[ItemResult]) -> dict[str, float]:
        """The share of each failure kind, in percent (``failed_timeout``, ...)."""
        n = len(results) or 1
        counts: dict[str, int] = {}
        for r in results:
            if not r.correct:
                key = f"failed_{r.details.get('status', 'error')}"
                counts[key] = counts.get(key, 0) + 1
        return {k: 100.0 * v / n for k, v in sorted(counts.items())}

    def summarize(self, ctx: GradeContext, items: Sequence[HumanEvalItem],
                  results: list[ItemResult]) -> SplitSummary:
        """pass@1, with one ``code.guard`` integrity event per item whose run tripped a guard."""
        summary = super().summarize(ctx, items, results)
        events = [guard_event(r) for r in results if r.details.get("guards")]
        return summary.model_copy(update={"integrity_events": events})

    def protocol_record(self, ctx: GradeContext, backend: str) -> dict[str, Any]:
        s = self.options(ctx.scenario)
        return super().protocol_record(ctx, backend) | {
            "stop_source": "the Codex paper's stop sequences, as lm-eval's humaneval.yaml",
            "program": "prompt + completion + '\\n' + test + '\\n' + f'check({entry_point})'",
            "checker": CHECKER,
            "executor": {"sandbox": s.sandbox, "workers": s.workers, **s.limits.model_dump()}}

    def baseline_settings(self, ctx: GradeContext) -> dict[str, Any]:
        s = self.options(ctx.scenario)
        return super().baseline_settings(ctx) | {"executor": s.limits.model_dump(),
                                                 "sandbox": s.sandbox, "checker": CHECKER}

    # -- lm-eval -----------------------------------------------------------------------------
    def lm_eval_task(self, ctx: GradeContext, items: Sequence[HumanEvalItem],
                     run_dir: Path) -> dict[str, Any]:
        from autorl_gym.core.durable import atomic_write_text, file_digest

        eval_file = run_dir / "eval.jsonl"
        atomic_write_text(eval_file, "".join(
            json.dumps({k: getattr(it, k) for k in he_data.FIELDS}) + "\n" for it in items))
        proto = ctx.scenario.protocol
        config = task_config(eval_file, f"{TASK_NAME}_{file_digest(eval_file)[:12]}",
                             stop=proto.stop, max_gen_toks=proto.max_new_tokens)
        config["doc_to_text"] = jinja_prompt(proto.prompt_template)
        return config

    def lm_eval_metrics(self, task_results: dict[str, Any]) -> dict[str, float]:
        value = task_results.get("exact_match,none")
        return {} if value is None else {"lm_eval_exact_match_canonical": 100.0 * float(value)}
