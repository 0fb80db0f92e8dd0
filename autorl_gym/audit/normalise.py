"""The one text normalisation every overlap check uses, as the decontamination literature states
it (GPT-3's and the Pile's 13-gram checks): lowercase, every character that is not a letter or a
digit becomes a space (punctuation, underscores and markup stripped), whitespace collapsed. So a
test item re-cased, re-punctuated, or split across lines and spaces is still the same token run.
"""

from __future__ import annotations

import re

#: the n of the n-gram overlap (GPT-3, the Pile, the Llama-2 contamination study use 13)
NGRAM = 13
#: an item shorter than NGRAM tokens is matched as a whole when it has at least this many tokens;
#: shorter items are too generic to evidence a leak by overlap (their answers may still count)
MIN_WHOLE_ITEM = 8

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Lowercase, non-alphanumerics to single spaces, trimmed."""
    return _NOT_WORD.sub(" ", text.lower()).strip()


def tokens(text: str) -> list[str]:
    return normalise(text).split()


def item_grams(toks: list[str], n: int = NGRAM, min_whole: int = MIN_WHOLE_ITEM) -> list[str]:
    """The n-grams an item is matched by (joined by single spaces): every n-token window, or the
    whole item when it is shorter than ``n`` but has at least ``min_whole`` tokens."""
    if len(toks) >= n:
        return [" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    if len(toks) >= min_whole:
        return [" ".join(toks)]
    return []
