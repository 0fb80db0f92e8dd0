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
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from autorl_gym.audit.normalise import COVERAGE, MIN_WHOLE_ITEM, NGRAM
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
        "audit could not read; clean: none of these")


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


def decide(hits: list[AuditHit], n_items: int,
           unread: list[str] | None = None) -> tuple[Verdict, str, list[str], list[str], list[str]]:
    """(verdict, reason, items overlapped, answers found, canaries found)."""
    tol = tolerance(n_items)
    items = sorted({h.item for h in hits if h.kind == "ngram" and h.counted})
    answers = sorted({h.item for h in hits if h.kind == "answer"} - set(items))
    cans = sorted({h.item for h in hits if h.kind == "canary"})
    where = sorted({h.source for h in hits})
    shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
    if cans:
        return ("contaminated", f"canary of {', '.join(cans)} found in {shown}", items, answers, cans)
    if len(items) > tol:
        return ("contaminated", f"{len(items)} hidden items overlap (tolerance {tol}) in {shown}",
                items, answers, cans)
    if items:
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
