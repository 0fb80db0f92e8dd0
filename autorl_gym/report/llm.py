"""A run's LLM usage for the report and the leaderboard, from the gateway's ``llm_calls.jsonl``
(and ``llm_usage.json``'s driver model): calls, tokens, cost (the repo's price table), tokens
over time, and cost per point of improvement."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from autorl_gym.gateway.records import LLMCall, summarize


class TokenPoint(BaseModel):
    elapsed_s: float
    """seconds from the run's start to the call's end"""
    tokens: int
    """input plus output tokens so far"""
    cost_usd: float | None
    """cost so far (None while no call had a price)"""


class LLMReport(BaseModel):
    driver_model: str | None
    calls: int
    refused: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float | None
    cost_per_point: float | None
    """USD per point of test improvement (None without a cost or a positive improvement)"""
    tokens_over_time: list[TokenPoint]


def _start(started_at: str | None, calls: list[LLMCall]) -> datetime:
    if started_at:
        try:
            return datetime.fromisoformat(started_at)
        except ValueError:
            pass
    return min(c.time for c in calls)


def llm_report(calls: list[LLMCall] | None, driver_model: str | None, started_at: str | None,
               improvement: float | None) -> LLMReport | None:
    """None for a run without an LLM gateway (no ``llm_calls.jsonl``)."""
    if calls is None:
        return None
    usage = summarize(calls)
    points: list[TokenPoint] = []
    if calls:
        start = _start(started_at, calls)
        tokens, cost, priced = 0, 0.0, False
        answered = sorted((c for c in calls if c.refused is None),
                          key=lambda c: c.time + timedelta(seconds=c.latency_s))
        for c in answered:
            tokens += (c.input_tokens or 0) + (c.output_tokens or 0)
            if c.cost_usd is not None:
                cost, priced = cost + c.cost_usd, True
            end = c.time + timedelta(seconds=c.latency_s)
            points.append(TokenPoint(elapsed_s=round((end - start).total_seconds(), 3), tokens=tokens,
                                     cost_usd=round(cost, 6) if priced else None))
    per_point = (usage.cost_usd / improvement if usage.cost_usd is not None and improvement is not None
                 and improvement > 0 else None)
    return LLMReport(driver_model=driver_model or (usage.models[0] if len(usage.models) == 1 else None),
                     calls=usage.calls, refused=usage.refused, input_tokens=usage.input_tokens,
                     output_tokens=usage.output_tokens, cached_tokens=usage.cached_tokens,
                     cost_usd=usage.cost_usd, cost_per_point=per_point, tokens_over_time=points)
