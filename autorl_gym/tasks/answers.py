"""GSM8K-style answer extraction, the same two filters lm-evaluation-harness reports.

* strict: the number after the first ``#### `` marker (lm-eval's ``strict-match``).
* flexible: the last number anywhere in the text (lm-eval's ``flexible-extract``).

The score of a scenario is the strict accuracy; flexible is reported beside it.
"""

from __future__ import annotations

import re

STRICT_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def normalize_number(text: str | None) -> str | None:
    """Canonical form of a numeric answer: no commas, dollar signs or trailing dot/zeros."""
    if text is None:
        return None
    s = text.strip().replace(",", "").replace("$", "").rstrip(".")
    if not s:
        return None
    try:
        value = float(s)
    except ValueError:
        return s
    if value.is_integer():
        return str(int(value))
    return repr(value)


def extract_strict(text: str) -> str | None:
    match = STRICT_RE.search(text)
    return normalize_number(match.group(1)) if match else None


def extract_flexible(text: str) -> str | None:
    matches = FLEXIBLE_RE.findall(text)
    if not matches:
        return None
    last = matches[-1]
    return normalize_number(last[0] or last[1])


def reference_answer(answer_field: str) -> str:
    """The gold number of a GSM8K-style answer field (the text after ``####``)."""
    if "####" not in answer_field:
        raise ValueError(f"answer has no '####' marker: {answer_field[-80:]!r}")
    gold = normalize_number(answer_field.split("####")[-1])
    if gold is None:
        raise ValueError(f"answer has nothing after '####': {answer_field[-80:]!r}")
    return gold
