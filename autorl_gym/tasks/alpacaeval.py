"""AlpacaEval (level 2): instruction following, judged against a reference by an LLM.

The visible train data is the first 2,000 rows of Stanford Alpaca; the evaluation prompts and
their reference outputs (AlpacaEval 2.0: GPT-4 Turbo's) are hidden, a seeded dev slice for
feedback and the rest graded once at the end (:mod:`autorl_gym.tasks.alpaca_data`). The model's
greedy answer to each prompt (chat template applied) is compared with the reference by the
scenario's judge (:mod:`autorl_gym.judge`) in both orders; the score is the length-controlled
win rate (``lc_win_rate``) computed by the ``alpaca-eval`` package, with the raw win rate beside
it. A judge outage fails the grading with its reason; it is never scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from autorl_gym.core.family import GradeContext, Progress, SplitSummary, StaticTask, TaskItem, register_family
from autorl_gym.tasks.alpaca_data import (
    EVAL_CONFIG,
    EVAL_HUB,
    GAMED_FILE,
    TRAIN_HUB,
    TRAIN_ROWS,
    DataError,
    find_materialized,
    load_hub,
    load_local,
    local_folder,
    materialize,
    read_eval_split,
)

if TYPE_CHECKING:
    from pathlib import Path

    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.records import ItemResult
    from autorl_gym.core.scenario import Scenario
    from autorl_gym.judge.judge import CachedJudge

JUDGEMENTS_FILE = "judgements.jsonl"


class ChatItem(TaskItem):
    source_index: int   # the prompt's index in the evaluation set
    instruction: str
    reference: str
    generator: str      # who wrote the reference


def judge_of(ctx: GradeContext, record: Path | None = None, cache: bool = True) -> CachedJudge:
    """The scenario's judge; ``cache=False`` for what only needs its identity."""
    from autorl_gym.judge.judge import make_judge

    assert ctx.scenario.judge is not None
    return make_judge(ctx.scenario.judge, record=record, cache=cache)


def judge_record(judge: CachedJudge) -> dict[str, Any]:
    """Which judge graded, for feedback.json and the report (never the endpoint or the key)."""
    ident = judge.identity()
    pairwise = ident.get("pairwise", {})
    return {"label": judge.label, "backend": ident.get("backend"), "model": ident.get("model"),
            "prompt": pairwise.get("prompt"), "prompt_version": pairwise.get("prompt_version"),
            "prompt_sha": pairwise.get("prompt_sha"), "temperature": ident.get("temperature"),
            "orders": ["reference_first", "output_first"]}


def judge_notes(label: str, results: Sequence[ItemResult]) -> list[str]:
    verdicts = [v for r in results for v in r.details.get("verdicts", [])]
    cached = sum(v["cached"] for v in verdicts)
    requests = sum(v["attempts"] for v in verdicts if not v["cached"])
    unparsed = [(r.index, v["order"]) for r in results for v in r.details.get("verdicts", [])
                if not v["parsed"]]
    notes = [f"judged by {label}: {len(verdicts)} verdicts ({len(results)} items x 2 orders), "
             f"{len(verdicts) - cached} asked in {requests} requests, {cached} from the cache"]
    if unparsed:
        shown = ", ".join(f"item {i} ({o})" for i, o in unparsed[:10])
        notes.append(f"{len(unparsed)} verdicts were unparseable after retries and count as ties: "
                     f"{shown}{' ...' if len(unparsed) > 10 else ''}")
    return notes


@register_family
class AlpacaEvalTask(StaticTask):
    name: ClassVar[str] = "alpacaeval"
    metrics: ClassVar[tuple[str, ...]] = ("lc_win_rate", "win_rate")
    data_sources: ClassVar[tuple[str, ...]] = ("alpaca_eval",)
    description: ClassVar[str] = "instruction following, LLM-judged win rate against a reference"
    run_records: ClassVar[bool] = True

    def check_scenario(self, scenario: Scenario) -> None:
        super().check_scenario(scenario)
        if scenario.judge is None:
            raise ValueError(f"field 'judge': task family {self.name!r} is judged; name the judge "
                             "(judge.model, judge.base_url, judge.api_key_env)")
        from autorl_gym.judge.backends import judge_backend_names
        from autorl_gym.judge.prompts import get_prompt

        if scenario.judge.backend not in judge_backend_names():
            raise ValueError(f"field 'judge.backend': unknown judge backend {scenario.judge.backend!r}"
                             f"; available: {', '.join(judge_backend_names())}")
        try:
            get_prompt(scenario.judge.prompt)
        except ValueError as e:
            raise ValueError(f"field 'judge.prompt': {e}") from None
        if "{instruction}" not in scenario.protocol.prompt_template:
            raise ValueError("field 'protocol.prompt_template': must contain '{instruction}'")
        if scenario.data.dev_size <= 0:
            raise ValueError("field 'data.dev_size': the hidden dev slice needs at least one prompt")

    def _config(self, scenario: Scenario) -> str:
        return scenario.data.hub_config or EVAL_CONFIG

    def _source_label(self, scenario: Scenario) -> str:
        folder = local_folder(scenario.data.path)
        return str(folder) if folder is not None else \
            f"hub:{TRAIN_HUB}+{scenario.data.hub_id or EVAL_HUB}:{self._config(scenario)}"

    def describe_train_data(self, scenario: Scenario) -> str:
        return f"{TRAIN_HUB}: the first {TRAIN_ROWS:,} rows (instruction, input, output)"

    def resolve_assets(self, scenario: Scenario, base_model: str | None = None,
                       progress: bool = True) -> ScenarioAssets:
        from autorl_gym.core.assets import resolve_base_model
        from autorl_gym.core.scenario import ScenarioError

        d, config = scenario.data, self._config(scenario)
        try:
            folder = local_folder(d.path)
            src = load_local(folder, config) if folder is not None else \
                load_hub(TRAIN_HUB, d.hub_id or EVAL_HUB, config)
            root, _ = materialize(src, config, d.dev_size, d.dev_seed)
        except DataError as e:
            raise ScenarioError(f"{scenario.id}: {e}") from e
        return self._assets(root, resolve_base_model(base_model or scenario.base_model, progress))

    def _assets(self, root: Path, model_dir: Path) -> ScenarioAssets:
        from autorl_gym.core.assets import ScenarioAssets

        return ScenarioAssets(base_model_dir=model_dir, train_dir=root / "train",
                              hidden_splits={s: root / "hidden" / f"{s}.jsonl" for s in ("dev", "test")})

    def assets_if_present(self, scenario: Scenario) -> ScenarioAssets | None:
        from autorl_gym.core.assets import base_model_present, resolve_base_model

        d = scenario.data
        root = find_materialized(self._source_label(scenario), self._config(scenario), d.dev_size,
                                 d.dev_seed)
        if root is None or not base_model_present(scenario.base_model):
            return None
        return self._assets(root, resolve_base_model(scenario.base_model, progress=False))

    # -- grading -----------------------------------------------------------------------------
    def load_split(self, ctx: GradeContext, split: str) -> list[ChatItem]:
        if split == "train":
            raise ValueError("the train split is for training; it has no reference outputs")
        rows = read_eval_split(ctx.split_path(split))
        return [ChatItem(index=i, gold=r.generator, source_index=r.index, instruction=r.instruction,
                         reference=r.output, generator=r.generator) for i, r in enumerate(rows)]

    def prompt(self, ctx: GradeContext, item: ChatItem) -> str:
        return ctx.scenario.protocol.prompt_template.replace("{instruction}", item.instruction)

    def score(self, ctx: GradeContext, items: Sequence[ChatItem], completions: list[str],
              progress: Progress | None = None) -> list[ItemResult]:
        from autorl_gym.core.records import ItemResult

        record = ctx.run_dir / JUDGEMENTS_FILE if ctx.run_dir is not None else None
        judge = judge_of(ctx, record)
        try:
            comps = judge.compare_many(
                [(it.instruction, out, it.reference) for it, out in zip(items, completions, strict=True)],
                tags=[{"item": it.index, "source_index": it.source_index} for it in items],
                progress=progress)
        finally:
            if judge.cache is not None:
                judge.cache.close()
        out = []
        for it, text, comp in zip(items, completions, comps, strict=True):
            p = comp.preference
            out.append(ItemResult(
                index=it.index, gold=f"preferred to {it.generator}'s reference",
                answer="won" if p > 0.5 else "lost" if p < 0.5 else "tie", correct=p > 0.5,
                completion=text, integrity_events=comp.events,
                details={"preference": p, "source_index": it.source_index,
                         "reference_chars": len(it.reference),
                         "verdicts": [v.model_dump() for v in comp.verdicts]}))
        return out

    def summarize(self, ctx: GradeContext, items: Sequence[ChatItem],
                  results: list[ItemResult]) -> SplitSummary:
        from autorl_gym.judge.winrates import Annotation, win_rates

        anns = [Annotation(index=it.source_index, output=r.completion, reference=it.reference,
                           preference=float(r.details["preference"]))
                for it, r in zip(items, results, strict=True)]
        gamed = ctx.split_path("dev").parent / GAMED_FILE
        wr = win_rates(anns, gamed if gamed.is_file() else None)
        metrics = {"lc_win_rate": wr.lc_win_rate, "win_rate": wr.win_rate,
                   "win_rate_standard_error": wr.standard_error}
        if wr.lc_standard_error is not None:
            metrics["lc_standard_error"] = wr.lc_standard_error
        label = judge_of(ctx, cache=False).label if ctx.scenario.judge else "the judge"
        notes = judge_notes(label, results) + [
            f"length-controlled win rate by {wr.lc_method}; raw win rate {wr.win_rate:.2f} "
            f"({wr.wins} won, {wr.losses} lost, {wr.draws} even of {wr.n})"]
        score = wr.lc_win_rate if ctx.scenario.metric == "lc_win_rate" else wr.win_rate
        return SplitSummary(score=score, metrics=metrics, notes=notes)

    def protocol_record(self, ctx: GradeContext, backend: str) -> dict[str, Any]:
        return super().protocol_record(ctx, backend) | {
            "judge": judge_record(judge_of(ctx, cache=False)), "metric": ctx.scenario.metric,
            "reference": self._config(ctx.scenario),
            "win_rate_code": "alpaca-eval get_winrate / get_length_controlled_winrate"}

    def baseline_settings(self, ctx: GradeContext) -> dict[str, Any]:
        return super().baseline_settings(ctx) | {"judge": judge_of(ctx, cache=False).identity(),
                                                 "metric": ctx.scenario.metric}
