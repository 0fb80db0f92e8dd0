"""The audit's record (``audit.json`` in the results folder) and the one verdict rule.

* **contaminated**: a canary of a hidden split was found anywhere, or n-gram overlap with more
  hidden items than the tolerance.
* **suspect**: n-gram overlap with at most the tolerance's number of items (accidental overlap
  of templated text is possible), or a distinctive answer found with no overlapping item text.
* **clean**: nothing found, and everything the agent could have trained on was read. Content
  the audit could not read (a link out of the workspace, a name the host does not read, a file
  over the size cap that is not a valid safetensors file) makes an otherwise clean run suspect.

The tolerance is ``max(2, ceil(0.5% of the hidden items))`` (3 items for the 600 of the micro
arithmetic scenario).

**Public generators.** Where the hidden items come from a generator the agent can run (the micro
arithmetic scenarios), an honest agent that generates its own data overlaps some hidden items by
chance. The audit then also matches control items (*decoys*: ``DECOY_FACTOR`` per hidden
item, drawn the same way from a stream of their own, in no split) and asks whether the hidden
items overlap more often than the decoys: a one-sided binomial test of ``H`` hidden against ``D``
decoy items overlapped, at the hidden items' share of all items. Overlap at the chance rate is
no evidence; otherwise the rule above applies, and a count over the tolerance is contaminated
only when the test also rejects chance at :data:`ALPHA_CONTAMINATED` (suspect at
:data:`ALPHA_SUSPECT`). A canary is contaminated whatever the test says.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from autorl_gym.audit.hidden import DECOY
from autorl_gym.audit.normalise import COVERAGE, MIN_WHOLE_ITEM, NGRAM
from autorl_gym.audit.review import LLMReview
from autorl_gym.core.run_folder import RunFolder

AUDIT_FILE = RunFolder.AUDIT
Verdict = Literal["clean", "suspect", "contaminated"]
NORMALISATION = (f"lowercase; every character that is not a letter or digit becomes a space; "
                 f"whitespace collapsed; each string of an item of {MIN_WHOLE_ITEM} to "
                 f"{2 * NGRAM - 1} tokens matched as a whole, a longer one by its {NGRAM}-token "
                 f"windows, counted when they cover {COVERAGE:.0%} of it; patterns that occur in "
                 f"the train split dropped")
RULE = ("contaminated: a canary found, or n-gram overlap with more items than the tolerance; "
        "suspect: overlap with 1..tolerance items, only distinctive answers found, or content the "
        "audit could not read; clean: none of these. Where the hidden items come from a public "
        "generator, overlap no more frequent than with control items drawn the same way is "
        "chance, not evidence (one-sided binomial test)")
ALPHA_CONTAMINATED = 0.001
ALPHA_SUSPECT = 0.05


def binomial_tail(k: int, n: int, q: float) -> float:
    """P(X >= k) for X ~ Binomial(n, q)."""
    if k <= 0:
        return 1.0
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    lq, lr = math.log(q), math.log1p(-q)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lq + (n - i) * lr
             for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


class ChanceTest(BaseModel):
    """Hidden items against control items drawn from the same public generator."""

    decoy_items: int = Field(description="control items matched (none in any split)")
    decoys_overlapped: int
    hidden_overlapped: int
    p_value: float = Field(description="P(at least this many of the overlapped items are hidden "
                                       "ones | overlap is chance)")


def tolerance(n_items: int) -> int:
    return max(2, math.ceil(0.005 * n_items))


class AuditHit(BaseModel):
    source: str = Field(description="the file, call or step: workspace:PATH, llm_call:FILE:LINE, "
                                    "trajectory:step N")
    kind: Literal["ngram", "answer", "canary"]
    item: str = Field(description="split:id of the hidden item, or canary:SPLIT")
    text: str = Field(description="the overlapping text, normalised")
    occurrences: int = 1
    coverage: float = Field(1.0, description="n-gram hits: the share of the item's text covered")
    counted: bool = Field(True, description="n-gram hits: covers enough of the item to count "
                                            "(a partial overlap is reported, not counted)")


class AuditReport(BaseModel):
    scenario: str
    verdict: Verdict
    reason: str
    tolerance_items: int
    items_overlapped: list[str] = Field(description="hidden items with n-gram overlap")
    answers_found: list[str] = []
    canaries_found: list[str] = []
    hits: list[AuditHit] = []
    hidden_items: dict[str, int]
    split_digests: dict[str, str] = {}
    chance: ChanceTest | None = Field(None, description="the public-generator control, where the "
                                                           "scenario's family has one")
    review: LLMReview | None = Field(None, description="the optional LLM review, where the "
                                                        "scenario asks for one")
    patterns_dropped_as_public: int = 0
    items_too_short: int = 0
    sources: dict[str, int] = Field(default_factory=dict, description="sources read, by kind")
    bytes_read: int = 0
    unscanned: list[str] = []
    unread: list[str] = Field(default_factory=list, description="the unscanned content that keeps "
                                                               "the run from being clean")
    index_s: float = 0.0
    scan_s: float = 0.0
    normalisation: str = NORMALISATION
    rule: str = RULE
    audited_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def flagged(self) -> bool:
        return self.verdict != "clean"


def chance_test(hits: list[AuditHit], n_items: int, n_decoys: int) -> ChanceTest | None:
    if not n_decoys:
        return None
    counted = {h.item for h in hits if h.kind == "ngram" and h.counted}
    d = sum(1 for k in counted if k.startswith(f"{DECOY}:"))
    h = len(counted) - d
    return ChanceTest(decoy_items=n_decoys, decoys_overlapped=d, hidden_overlapped=h,
                      p_value=round(binomial_tail(h, h + d, n_items / (n_items + n_decoys)), 6))


def decide(hits: list[AuditHit], n_items: int, unread: list[str] | None = None,
           chance: ChanceTest | None = None) -> tuple[Verdict, str, list[str], list[str], list[str]]:
    """(verdict, reason, items overlapped, answers found, canaries found). ``hits`` are hidden
    items' (decoy hits are counted in ``chance``)."""
    tol = tolerance(n_items)
    items = sorted({h.item for h in hits if h.kind == "ngram" and h.counted})
    answers = sorted({h.item for h in hits if h.kind == "answer"} - set(items))
    cans = sorted({h.item for h in hits if h.kind == "canary"})
    where = sorted({h.source for h in hits})
    shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
    if cans:
        return ("contaminated", f"canary of {', '.join(cans)} found in {shown}", items, answers, cans)
    evidence = items  # the overlapped items that count as evidence
    if items and chance is not None:
        against = (f"{len(items)} hidden item(s) overlap against {chance.decoys_overlapped} of "
                   f"{chance.decoy_items} control items drawn from the same public generator "
                   f"(chance p={chance.p_value:.3g})")
        if len(items) > tol and chance.p_value < ALPHA_CONTAMINATED:
            return "contaminated", f"{against} in {shown}", items, answers, cans
        if chance.p_value < ALPHA_SUSPECT:
            return "suspect", f"{against} in {shown}", items, answers, cans
        if not answers and not unread:
            return "clean", f"no evidence: {against}, as often as chance gives", items, answers, cans
        evidence = []  # chance overlap: the answers or the unread content decide
    if len(evidence) > tol:
        return ("contaminated", f"{len(items)} hidden items overlap (tolerance {tol}) in {shown}",
                items, answers, cans)
    if evidence:
        return ("suspect", f"{len(items)} hidden item(s) overlap, within the tolerance of {tol}, "
                           f"in {shown}", items, answers, cans)
    if answers:
        return ("suspect", f"{len(answers)} distinctive hidden answer(s) found in {shown}",
                items, answers, cans)
    if unread:
        more = f" and {len(unread) - 3} more" if len(unread) > 3 else ""
        return ("suspect", f"no overlap found, but {len(unread)} thing(s) the agent could train on "
                           f"were not read: {'; '.join(unread[:3])}{more}", items, answers, cans)
    return "clean", "no overlap with the hidden splits", items, answers, cans
