"""What the search-question families share (level 3): the evaluator plays every question of a
hidden split through the ReAct loop (:func:`autorl_gym.interactive.rollout` with the ``deepsearch``
engine: ``search[query]`` ... ``answer[text]``, at most ``interactive.max_steps`` steps), with the
split's search backend answered through an on-disk cache (a re-grade sees the same pages and
costs no backend call). An answer is correct when it matches the gold one after normalisation;
where the scenario has a judge, the judge is asked about the answers that do not match (only
those). Each item's queries, answer and verdict are kept in the per-item results; the score comes
with its bootstrap interval (``score_ci_low``/``score_ci_high`` in the metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from autorl_gym.core.family import GradeContext, Progress
from autorl_gym.core.paths import cache_dir
from autorl_gym.tasks.interactive import GamesTask, torch_threads

if TYPE_CHECKING:
    from autorl_gym.core.records import ItemResult, SubmissionInfo
    from autorl_gym.core.scenario import JudgeSpec, Scenario
    from autorl_gym.interactive import Episode


def search_cache_dir() -> Path:
    """Where the grader caches search answers (outside every sandbox)."""
    return cache_dir() / "search_cache"


class SearchQATask(GamesTask):
    metrics: ClassVar[tuple[str, ...]] = ("accuracy",)
    backend: ClassVar[str] = "hf-rollout"

    def check_scenario(self, scenario: Scenario) -> None:
        super().check_scenario(scenario)
        check_judge(scenario)
        if scenario.interactive is not None and scenario.interactive.max_steps > 50:
            raise ValueError("field 'interactive.max_steps': at most 50 steps per question")

    def _use_cached_search(self, refs: list[Any]) -> list[Any]:
        """Answer the searches of every world these questions belong to through the grader's
        on-disk cache; the cached backends, for their counts."""
        from autorl_gym.interactive.deepsearch import _Split, set_backend
        from autorl_gym.interactive.search import CachedSearch, make_search

        out = []
        for root in dict.fromkeys(r.path.parent.parent.resolve() for r in refs):
            spec = _Split(root).spec.model_copy(update={"cache_dir": None})
            backend = CachedSearch(make_search(spec, root), search_cache_dir())
            set_backend(root, backend)
            out.append(backend)
        return out

    def play(self, ctx: GradeContext, info: SubmissionInfo, split: str, limit: int | None,
             progress: Progress | None = None) -> list[ItemResult]:
        from autorl_gym.interactive import HFPolicy, rollout

        spec = ctx.scenario.interactive
        assert spec is not None
        g = ctx.scenario.grader
        refs = list(ctx.items(split, limit))
        backends = self._use_cached_search(refs)
        with torch_threads(self.grading_threads):
            policy = HFPolicy(info.path, base_model=ctx.assets.base_model_dir, device=g.device,
                              dtype=g.dtype, batch_size=g.batch_size,
                              max_new_tokens=spec.max_new_tokens, stop=tuple(spec.stop),
                              choose=spec.choose)
            episodes = rollout(refs, policy, max_steps=spec.max_steps, prompt=spec.prompt,
                               on_step=progress)
        return self.results(ctx, refs, episodes, backends)

    def results(self, ctx: GradeContext, refs: list[Any], episodes: list[Episode],
                backends: list[Any] | None = None) -> list[ItemResult]:
        """Per-item results: exact match first, the judge (if any) on the answers that differ."""
        from autorl_gym.core.records import ItemResult
        from autorl_gym.interactive.deepsearch import load_question, parse_command

        rows = []
        for i, (ref, ep) in enumerate(zip(refs, episodes, strict=True)):
            q = load_question(ref)
            cmds = [parse_command(t.action) for t in ep.turns]
            queries = [c[1] for c in cmds if c and c[0] == "search"]
            answer = next((c[1] for c in reversed(cmds) if c and c[0] == "answer"), None)
            rows.append((i, q, ep, queries, answer))
        verdicts = self._judge(ctx, [(q, answer) for _, q, ep, _, answer in rows
                                     if answer is not None and not ep.won])
        out = []
        for i, q, ep, queries, answer in rows:
            verdict = verdicts.get((q.id, answer)) if not ep.won else None
            correct = ep.won or bool(verdict and verdict.correct)
            details: dict[str, Any] = {
                "id": q.id, "question": q.question, "queries": queries, "steps": ep.steps,
                "exact_match": ep.won, "reward": 1.0 if correct else 0.0,
                "graded_by": "exact_match" if ep.won else ("judge" if verdict else "exact_match")}
            if verdict is not None:
                details["judge"] = {"correct": verdict.correct, "parsed": verdict.parsed,
                                    "cached": verdict.cached, "attempts": verdict.attempts,
                                    "raw": verdict.raw[:2000]}
            if ep.error:
                details["error"] = ep.error
            out.append(ItemResult(index=i, gold=q.answer or "", answer=answer, correct=correct,
                                  completion=(f"[{q.id}] {q.question}\n" + ep.transcript())[:8000],
                                  details=details,
                                  integrity_events=verdict.events if verdict is not None else []))
        if backends and out:  # this grading's searches: answered by the backend / by the cache
            out[0].details["search"] = {"backend_calls": sum(b.misses for b in backends),
                                        "cache_hits": sum(b.hits for b in backends)}
        return out

    def _judge(self, ctx: GradeContext, pending: list[tuple[Any, str]]) -> dict[tuple[str, str], Any]:
        """The scenario's judge (:mod:`autorl_gym.judge`, its ``match`` question) on the answers
        that differ from the gold one after normalisation, ``judge.concurrency`` at a time,
        through the grader-side cache. An outage raises :class:`JudgeUnavailable` (the grading
        fails with that reason, it is never scored 0)."""
        spec = ctx.scenario.judge
        pending = list({(q.id, a): (q, a) for q, a in pending}.values())
        if spec is None or not pending:
            return {}
        from concurrent.futures import ThreadPoolExecutor

        from autorl_gym.judge import make_judge

        judge = make_judge(spec)
        try:
            with ThreadPoolExecutor(max_workers=judge.concurrency, thread_name_prefix="judge") as pool:
                matches = list(pool.map(
                    lambda qa: judge.match(qa[0].question, qa[1], qa[0].answer or "",
                                           tag={"id": qa[0].id}), pending))
        finally:
            if judge.cache is not None:
                judge.cache.close()
        return {(q.id, a): m for (q, a), m in zip(pending, matches, strict=True)}

    def summary_metrics(self, results: list[ItemResult]) -> dict[str, float]:
        from autorl_gym.grading.stats import score_interval

        n = len(results) or 1
        out = super().summary_metrics(results)
        if results:
            iv = score_interval([float(r.correct) for r in results])
            out |= {"score_ci_low": iv.low, "score_ci_high": iv.high}
        out["exact_match"] = 100.0 * sum(bool(r.details.get("exact_match")) for r in results) / n
        out["judged_correct"] = float(sum(r.details.get("graded_by") == "judge" and r.correct
                                          for r in results))
        judged = [r.details["judge"] for r in results if "judge" in r.details]
        out["judge_verdicts"] = float(len(judged))
        out["judge_requests"] = float(sum(j["attempts"] for j in judged if not j["cached"]))
        out["judge_unparsed"] = float(sum(not j["parsed"] for j in judged))
        search = results[0].details.get("search", {}) if results else {}
        if search:
            out["search_backend_calls"] = float(search["backend_calls"])
            out["search_cache_hits"] = float(search["cache_hits"])
        out["mean_searches"] = sum(len(r.details.get("queries", [])) for r in results) / n
        return out

    def protocol_record(self, ctx: GradeContext, backend: str) -> dict[str, Any]:
        rec = super().protocol_record(ctx, backend)
        rec["evaluator"] = ("autorl_gym.interactive.rollout with the deepsearch engine (ReAct loop: "
                            "search[query] then answer[text], batched across questions)")
        rec["grading"] = ("normalised exact match, then the judge on answers that differ"
                          if ctx.scenario.judge else "normalised exact match")
        if ctx.scenario.judge is not None:
            rec["judge"] = judge_record(ctx.scenario.judge)
        return rec

    def baseline_settings(self, ctx: GradeContext) -> dict[str, Any]:
        out = super().baseline_settings(ctx)
        if ctx.scenario.judge is not None:
            from autorl_gym.judge import make_judge

            out["judge"] = make_judge(ctx.scenario.judge, cache=False).identity()
        return out


def check_judge(scenario: Scenario) -> None:
    """The scenario's judge names a registered backend and a known correctness prompt."""
    if scenario.judge is None:
        return
    from autorl_gym.judge.backends import judge_backend_names
    from autorl_gym.judge.prompts import get_prompt

    if scenario.judge.backend not in judge_backend_names():
        raise ValueError(f"field 'judge.backend': unknown judge backend {scenario.judge.backend!r}; "
                         f"available: {', '.join(judge_backend_names())}")
    try:
        get_prompt(scenario.judge.match_prompt)
    except ValueError as e:
        raise ValueError(f"field 'judge.match_prompt': {e}") from None


def judge_record(spec: JudgeSpec) -> dict[str, Any]:
    """Which judge graded, for feedback.json and the report (never the endpoint or the key)."""
    from autorl_gym.judge import make_judge

    judge = make_judge(spec, cache=False)
    ident = judge.identity()
    match = ident.get("match", {})
    return {"label": judge.label, "backend": ident.get("backend"), "model": ident.get("model"),
            "prompt": match.get("prompt"), "prompt_version": match.get("prompt_version"),
            "prompt_sha": match.get("prompt_sha"), "temperature": ident.get("temperature"),
            "how": "asked only where the normalised answer differs from the gold one"}
