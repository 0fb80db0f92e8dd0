"""A minimal answer judge for DeepSearchQA: is a free-text answer the gold answer?

Written for this family before the judge-graded issue's judge (:mod:`autorl_gym.judge`) was on
main; it takes that issue's :class:`~autorl_gym.judge.settings.JudgeSpec`, and the two are to be
unified (:func:`judge_answers` is the one entry point). Host side only.

The judge is a model behind any OpenAI-compatible endpoint (``judge.model``, ``judge.base_url``,
the key read from the host's ``$<judge.api_key_env>``, never from the sandbox). It is asked only
when the normalised strings differ (the exact-match check comes first, in the caller). Its verdict
is parsed strictly (the last line must be ``CORRECT`` or ``INCORRECT``); an unparseable verdict is
asked again, then counted as incorrect and reported. Every verdict is cached on disk by (question,
gold, answer, judge model, prompt version), so a re-grade asks nothing. An endpoint that cannot
be reached raises :class:`JudgeUnavailable`: the grading fails with that reason, never scores 0.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pydantic import BaseModel

from autorl_gym.io import atomic_write_text
from autorl_gym.judge.settings import JudgeSpec
from autorl_gym.paths import cache_dir

PROMPT_VERSION = "deepsearch-judge-v1"
SYSTEM = ("You grade answers to research questions. Compare the response with the gold answer. "
          "The response is correct if it states the same answer (the same entity, number, date "
          "or set of items; wording, spelling variants and extra explanation do not matter). "
          "It is incorrect if it gives a different answer, hedges between several, or misses or "
          "adds items of a set answer. Reply with exactly one word: CORRECT or INCORRECT.")


class JudgeUnavailable(RuntimeError):
    """The judge's endpoint could not be reached or refused every attempt."""


class Verdict(BaseModel):
    correct: bool
    raw: str
    parsed: bool = True
    cached: bool = False


class JudgeItem(BaseModel):
    question: str
    gold: str
    answer: str


def _user(item: JudgeItem) -> str:
    return f"Question: {item.question}\nGold answer: {item.gold}\nResponse: {item.answer}"


def parse_verdict(text: str) -> bool | None:
    lines = [ln.strip().strip("*.").upper() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    return {"CORRECT": True, "INCORRECT": False}.get(lines[-1])


def _key(spec: JudgeSpec, item: JudgeItem) -> str:
    raw = json.dumps([PROMPT_VERSION, spec.model, item.question, item.gold, item.answer])
    return hashlib.sha256(raw.encode()).hexdigest()


def _client(spec: JudgeSpec):  # noqa: ANN202
    from openai import OpenAI

    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    if not key and spec.base_url is None:
        raise JudgeUnavailable(f"the judge needs an API key in ${spec.api_key_env} (on the host) "
                               "or judge.base_url pointing at a local endpoint")
    return OpenAI(api_key=key or "none", base_url=spec.base_url, timeout=spec.timeout_s,
                  max_retries=spec.retries)


def judge_answers(spec: JudgeSpec, items: list[JudgeItem],
                  cache: Path | None = None) -> list[Verdict]:
    """One verdict per item, from the cache or the judge."""
    import openai

    folder = cache or cache_dir() / "judge" / "deepsearch"
    out: list[Verdict] = []
    client = None
    for item in items:
        path = folder / f"{_key(spec, item)}.json"
        if path.is_file():
            try:
                out.append(Verdict.model_validate_json(path.read_text()).model_copy(
                    update={"cached": True}))
                continue
            except ValueError:
                pass
        client = client or _client(spec)
        verdict = None
        for _ in range(1 + spec.parse_retries):
            try:
                resp = client.chat.completions.create(
                    model=spec.model, temperature=0.0, max_tokens=spec.max_tokens,
                    messages=[{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": _user(item)}])
            except (openai.APIConnectionError, openai.APITimeoutError, openai.APIStatusError) as e:
                raise JudgeUnavailable(f"the judge ({spec.model} at {spec.base_url or 'OpenAI'}) "
                                       f"failed: {e.__class__.__name__}: {str(e)[:200]}") from e
            raw = resp.choices[0].message.content or ""
            parsed = parse_verdict(raw)
            if parsed is not None:
                verdict = Verdict(correct=parsed, raw=raw)
                break
        if verdict is None:
            verdict = Verdict(correct=False, raw=raw, parsed=False)
        atomic_write_text(path, verdict.model_dump_json())
        out.append(verdict)
    return out
