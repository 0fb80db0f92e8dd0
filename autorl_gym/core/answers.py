"""GSM8K-style scoring, exactly as lm-evaluation-harness's ``gsm8k`` task scores it
(``lm_eval/tasks/gsm8k/gsm8k.yaml``, lm-eval 0.4):

* filters (``RegexFilter`` then ``take_first``): ``strict-match`` takes the first match of
  ``#### (\\-?[0-9\\.\\,]+)``; ``flexible-extract`` the last match of
  ``(-?[$0-9.,]{2,})|(-?[0-9]+)`` (its first non-empty group); the match is stripped, and a
  completion without one becomes ``[invalid]``;
* metric (``exact_match``): the filtered answer and the reference (the whole ``answer`` field)
  both have the regexes ``,``, ``\\$``, ``(?s).*#### ``, ``\\.$`` removed in that order, are
  lowercased (``ignore_case``; ``ignore_punctuation`` is false), and must then be equal strings.
  So ``#### 48.0``, ``#### 048`` and ``$48.00`` are wrong where the gold is 48, as in lm-eval.

The score of a scenario is strict-match; flexible-extract is reported beside it, and so is
``lenient``: the strict answer compared as a number (``48.0`` = ``048`` = ``48``), the looser
check this package used before, kept as a named secondary figure only.
"""

from __future__ import annotations

import re

STRICT_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
FALLBACK = "[invalid]"
REGEXES_TO_IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")
IGNORE_CASE = True
SCORING = "lm-eval gsm8k: strict-match / flexible-extract filters, exact_match (lm-eval 0.4)"


def regex_filter(text: str, pattern: re.Pattern[str], group_select: int = 0) -> str:
    """lm-eval's ``RegexFilter`` on one response: the ``group_select``-th match (a tuple of
    groups gives its first non-empty one), stripped; ``[invalid]`` without a match."""
    matches = pattern.findall(text if isinstance(text, str) else "")
    if not matches:
        return FALLBACK
    match = matches[group_select]
    if isinstance(match, tuple):
        found = [m for m in match if m]
        match = found[0] if found else FALLBACK
    return match.strip()


def exact_match_key(text: str) -> str:
    """What lm-eval's ``exact_match`` compares: the ignored regexes removed in order, lowercased."""
    for pattern in REGEXES_TO_IGNORE:
        text = re.sub(pattern, "", text)
    return text.lower() if IGNORE_CASE else text


def _extracted(filtered: str) -> str | None:
    return None if filtered == FALLBACK else filtered


def extract_strict(text: str) -> str | None:
    """The strict-match filter's answer (None where lm-eval has ``[invalid]``)."""
    return _extracted(regex_filter(text, STRICT_RE))


def extract_flexible(text: str) -> str | None:
    """The flexible-extract filter's answer (None where lm-eval has ``[invalid]``)."""
    return _extracted(regex_filter(text, FLEXIBLE_RE, group_select=-1))


def is_correct(extracted: str | None, gold: str) -> bool:
    """lm-eval's exact_match of a filtered answer against ``gold`` (a :func:`reference_answer`)."""
    return exact_match_key(FALLBACK if extracted is None else extracted) == gold


def reference_answer(answer_field: str) -> str:
    """The reference as lm-eval's exact_match sees it: the ``answer`` field (worked solution
    ending in ``#### N``) through the ignored regexes, i.e. ``N`` without commas or ``$``."""
    if "#### " not in answer_field:
        raise ValueError(f"answer has no '#### ' marker: {answer_field[-80:]!r}")
    gold = exact_match_key(answer_field)
    if not gold.strip():
        raise ValueError(f"answer has nothing after '#### ': {answer_field[-80:]!r}")
    return gold


def normalize_number(text: str | None) -> str | None:
    """Canonical form of a numeric answer (no commas, dollar signs, trailing dot or zeros), for
    the ``lenient`` figure only: ``48.0``, ``048`` and ``$48.00`` all read ``48``."""
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


def is_lenient_correct(extracted: str | None, gold: str) -> bool:
    """The strict answer equal to the gold one as a number."""
    return extracted is not None and normalize_number(extracted) == normalize_number(gold)
