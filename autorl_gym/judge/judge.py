"""The judge task families use: a backend, asked in both orders, cached, recorded.

``compare`` asks "which output is better" twice, once with the reference as output_1 and once
with the model's output as output_1, and counts each order's verdict (a tie, from an unparseable
reply, counts a half). Every verdict goes through the grader-side cache; every judgement is
appended to ``record`` (``judgements.jsonl`` in the results folder) with both orders' raw replies.

The model's text (the output of ``compare``, the answer of ``match``) is data: it is neutralised
(:func:`autorl_gym.judge.quoting.neutralise`, chat-template markers and the prompt's own
delimiters) before anything else sees it, so the cache, the backend and the record all hold the
text as judged; an output that needed it is judged exactly as its neutralised text would be and
carries a ``judge.markers`` integrity event (in its Comparison or Match, and in ``events``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autorl_gym.core.durable import append_jsonl
from autorl_gym.core.integrity import IntegrityEvent
from autorl_gym.core.scenario import JudgeSpec
from autorl_gym.judge.backends import make_judge_backend
from autorl_gym.judge.base import Comparison, JudgeBackend, Match, Order, Reply, Verdict
from autorl_gym.judge.cache import JudgementCache, judgement_key
from autorl_gym.judge.quoting import neutralise

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
        self.events: list[IntegrityEvent] = []   # every judge.markers event of this judge
        self._lock = threading.Lock()
        ident = backend.identity()
        self.label = f"{ident.get('backend')}:{ident.get('model')}"

    def identity(self) -> dict[str, Any]:
        return self.backend.identity()

    def _identity_for(self, kind: str) -> dict[str, Any]:
        ident = self.backend.identity()
        other = {"pairwise": "match", "match": "pairwise"}[kind]
        return {k: v for k, v in ident.items() if k != other}

    def _as_data(self, kind: str, field: str, text: str,
                 tag: dict[str, Any] | None) -> tuple[str, list[IntegrityEvent]]:
        """The model's ``text`` as the judge will read it, and the event when it had to change."""
        n = neutralise(text, self.backend.delimiters(kind))
        if not n.changed:
            return text, []
        event = IntegrityEvent(
            kind="judge.markers", source="judge",
            detail=f"the {field} sent to the judge carried chat-template markers or the judge "
                   f"prompt's delimiters ({', '.join(repr(m) for m in n.markers[:5])}); it was "
                   "judged as its neutralised text",
            data={**(tag or {}), "field": field, "markers": n.markers, "question": kind})
        with self._lock:
            self.events.append(event)
        return n.text, [event]

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
        judged, events = self._as_data("pairwise", "output", output, tag)
        comp = Comparison(verdicts=[self._pairwise(o, instruction, judged, reference)
                                    for o in ("reference_first", "output_first")], events=events)
        self._write({**(tag or {}), "kind": "pairwise", "instruction": instruction,
                     "output": judged, "reference": reference, "preference": comp.preference,
                     "verdicts": [v.model_dump() for v in comp.verdicts],
                     **({"markers": events[0].data["markers"]} if events else {})})
        return comp

    def match(self, question: str, answer: str, gold: str,
              tag: dict[str, Any] | None = None) -> Match:
        answer, events = self._as_data("match", "answer", answer, tag)
        reply, cached = self._ask("match", {"question": question, "answer": answer, "gold": gold},
                                  lambda: self.backend.correct(question, answer, gold))
        m = Match(correct=reply.choice is True, raw=reply.raw, attempts=reply.attempts,
                  parsed=reply.choice is not None, cached=cached, events=events)
        self._write({**(tag or {}), "kind": "match", "question": question, "answer": answer,
                     "gold": gold, **m.model_dump(exclude={"events"}),
                     **({"markers": events[0].data["markers"]} if events else {})})
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
