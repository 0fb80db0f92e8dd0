"""The judge task families use: a backend, asked in both orders, cached, recorded.

``compare`` asks "which output is better" twice, once with the reference as output_1 and once
with the model's output as output_1, and counts each order's verdict (a tie, from an unparseable
reply, counts a half). Every verdict goes through the grader-side cache; every judgement is
appended to ``record`` (``judgements.jsonl`` in the results folder) with both orders' raw replies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autorl_gym.io import append_jsonl
from autorl_gym.judge.backends import make_judge_backend
from autorl_gym.judge.base import Comparison, JudgeBackend, Match, Order, Reply, Verdict
from autorl_gym.judge.cache import JudgementCache, judgement_key
from autorl_gym.judge.settings import JudgeSpec

Progress = Callable[[int, int], None]


class JudgeStats(BaseModel):
    verdicts: int = 0   # verdicts handed out (both orders count)
    cached: int = 0     # of which from the cache
    requests: int = 0   # requests sent to the backend (retries included)
    unparsed: int = 0   # verdicts that never parsed (ties, or not-correct for match)


class CachedJudge:
    def __init__(self, backend: JudgeBackend, cache: JudgementCache | None = None,
                 record: Path | None = None, concurrency: int = 8):
        self.backend = backend
        self.cache = cache
        self.record = record
        self.concurrency = concurrency
        self.stats = JudgeStats()
        self._lock = threading.Lock()
        ident = backend.identity()
        self.label = f"{ident.get('backend')}:{ident.get('model')}"

    def identity(self) -> dict[str, Any]:
        return self.backend.identity()

    def _identity_for(self, kind: str) -> dict[str, Any]:
        ident = self.backend.identity()
        other = {"pairwise": "match", "match": "pairwise"}[kind]
        return {k: v for k, v in ident.items() if k != other}

    def _ask(self, kind: str, fields: dict[str, str], ask: Callable[[], Reply]) -> tuple[Reply, bool]:
        key = judgement_key(kind, self._identity_for(kind), **fields)
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is not None:
            reply, cached = Reply.model_validate(hit), True
        else:
            reply, cached = ask(), False
            if self.cache is not None:
                self.cache.put(key, reply.model_dump())
        with self._lock:
            self.stats.verdicts += 1
            self.stats.cached += cached
            self.stats.requests += 0 if cached else reply.attempts
            self.stats.unparsed += reply.choice is None
        return reply, cached

    def _pairwise(self, order: Order, instruction: str, output: str, reference: str) -> Verdict:
        first, second = (reference, output) if order == "reference_first" else (output, reference)
        reply, cached = self._ask(
            "pairwise", {"order": order, "instruction": instruction, "output_1": first,
                         "output_2": second},
            lambda: self.backend.pairwise(instruction, first, second))
        if reply.choice is None:
            winner = "tie"
        else:
            output_pos = 2 if order == "reference_first" else 1
            winner = "output" if reply.choice == output_pos else "reference"
        return Verdict(order=order, winner=winner, raw=reply.raw, attempts=reply.attempts,
                       parsed=reply.choice is not None, cached=cached)

    def compare(self, instruction: str, output: str, reference: str,
                tag: dict[str, Any] | None = None) -> Comparison:
        """The output against the reference, both orders; recorded with ``tag`` (item ids)."""
        comp = Comparison(verdicts=[self._pairwise(o, instruction, output, reference)
                                    for o in ("reference_first", "output_first")])
        self._write({**(tag or {}), "kind": "pairwise", "instruction": instruction,
                     "output": output, "reference": reference, "preference": comp.preference,
                     "verdicts": [v.model_dump() for v in comp.verdicts]})
        return comp

    def match(self, question: str, answer: str, gold: str,
              tag: dict[str, Any] | None = None) -> Match:
        reply, cached = self._ask("match", {"question": question, "answer": answer, "gold": gold},
                                  lambda: self.backend.correct(question, answer, gold))
        m = Match(correct=reply.choice is True, raw=reply.raw, attempts=reply.attempts,
                  parsed=reply.choice is not None, cached=cached)
        self._write({**(tag or {}), "kind": "match", "question": question, "answer": answer,
                     "gold": gold, **m.model_dump()})
        return m

    def compare_many(self, triples: Sequence[tuple[str, str, str]],
                     tags: Sequence[dict[str, Any]] | None = None,
                     progress: Progress | None = None) -> list[Comparison]:
        """``compare`` on (instruction, output, reference) triples, ``concurrency`` at a time,
        in order. The first :class:`JudgeUnavailable` stops the rest and is raised."""
        out: list[Comparison | None] = [None] * len(triples)
        done = 0

        def one(i: int) -> None:
            nonlocal done
            out[i] = self.compare(*triples[i], tag=tags[i] if tags else None)
            with self._lock:
                done += 1
            if progress:
                progress(done, len(triples))

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="judge") as pool:
            futures = [pool.submit(one, i) for i in range(len(triples))]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in finished if f.exception() is not None), None)
            if failed is not None:
                for f in futures:
                    f.cancel()
                raise failed.exception()  # type: ignore[misc]
        return [c for c in out if c is not None]

    def _write(self, record: dict[str, Any]) -> None:
        if self.record is None:
            return
        with self._lock:
            append_jsonl(self.record, record)


def make_judge(spec: JudgeSpec, record: Path | None = None, cache: bool = True) -> CachedJudge:
    """The scenario's judge as configured on this host, with the grader-side cache."""
    spec = spec.on_host()
    return CachedJudge(make_judge_backend(spec), JudgementCache() if cache else None, record,
                       concurrency=spec.concurrency)
