"""The contamination audit's optional LLM review: a judge (any registered judge backend that
offers ``review``) reads a sample of the hidden items beside what the agent could have trained on
(its workspace files, the prompts and answers of its LLM calls, its tool calls), for items the
n-gram scan cannot see because they were reworded.

It never replaces the deterministic scan and can only add to it: items it names raise a clean
verdict to suspect, with the review as the reason; it never lowers a verdict. Names of items it
was not shown are ignored. The material goes into the prompt as data (neutralised, like every
judged output), so text the agent planted cannot open a turn; an instruction in the material can
at most make the reviewer name nothing, which leaves the deterministic verdict as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from autorl_gym.audit.hidden import HiddenIndex
from autorl_gym.core.scenario import AuditSpec


class LLMReview(BaseModel):
    judge: dict[str, Any] = Field(default_factory=dict, description="the judge's identity")
    prompt: str = "contamination_review_v1"
    items_shown: int = 0
    material_chars: int = 0
    items_named: list[str] = Field(default_factory=list, description="shown hidden items it named")
    ignored: list[str] = Field(default_factory=list, description="names it gave of no shown item")
    raw: str = ""
    error: str | None = Field(None, description="why there is no review (the judge did not answer...)")


def _sample(index: HiddenIndex, n: int) -> list[str]:
    """``n`` hidden item keys, evenly spaced over the test split first, then dev."""
    keys = sorted(index.items, key=lambda k: (k.split(":")[0] != "test", k))
    if len(keys) <= n:
        return keys
    step = len(keys) / n
    return [keys[int(i * step)] for i in range(n)]


def material_of(sources: Iterable[Any], limit: int) -> str:
    """The first ``limit`` characters of the sources' text, each headed by its name."""
    out: list[str] = []
    left = limit
    for source in sources:
        if left <= 0:
            break
        head = f"--- {source.name}\n"
        out.append(head)
        left -= len(head)
        for piece in source.pieces():
            text = piece.decode("utf-8", "replace") if isinstance(piece, bytes) else piece
            out.append(text[:max(left, 0)])
            left -= len(text)
            if left <= 0:
                break
        out.append("\n")
    return "".join(out)


def review(index: HiddenIndex, spec: AuditSpec, sources: Iterable[Any]) -> LLMReview:
    """Ask the scenario's reviewing judge; a judge that fails leaves an error, not an exception."""
    from autorl_gym.judge.backends import make_judge_backend
    from autorl_gym.judge.base import JudgeUnavailable

    assert spec.llm_review is not None
    judge_spec = spec.llm_review.on_host()
    shown = _sample(index, spec.review_items)
    hidden = "\n".join(f"[{k}] {index.items[k].text}" for k in shown)
    material = material_of(sources, spec.review_chars)
    out = LLMReview(prompt=judge_spec.review_prompt, items_shown=len(shown),
                    material_chars=len(material))
    try:
        backend = make_judge_backend(judge_spec)
        out.judge = backend.identity()
        ask = getattr(backend, "review", None)
        if ask is None:
            out.error = f"the judge backend {judge_spec.backend!r} offers no review"
            return out
        reply = ask(hidden, material)
    except (JudgeUnavailable, ValueError) as e:
        out.error = f"{e.__class__.__name__}: {e}"[:500]
        return out
    out.raw = reply.raw[:2000]
    if not isinstance(reply.choice, list):
        out.error = "the judge's reply could not be read as a list of item IDs"
        return out
    named = list(dict.fromkeys(reply.choice))
    out.items_named = [k for k in named if k in shown]
    out.ignored = [k for k in named if k not in shown][:50]
    return out
