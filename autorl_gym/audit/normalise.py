"""The one text normalisation every overlap check uses, as the decontamination literature states
it (GPT-3's and the Pile's 13-gram checks): lowercase, every character that is not a letter or a
digit becomes a space (punctuation, underscores and markup stripped), whitespace collapsed. So a
test item re-cased, re-punctuated, or split across lines and spaces is still the same token run.

What counts as an item's overlap (the rule :mod:`autorl_gym.audit.hidden` applies): each string
of an item (its question, its instruction, its objective...) of at least :data:`MIN_WHOLE_ITEM`
tokens is a *segment*. A segment shorter than ``2 * NGRAM`` tokens is matched only as a whole: a
templated question that shares 13 tokens with another but differs in a number is another
question. A longer segment is matched by its 13-token windows and counts when the windows found
cover at least :data:`COVERAGE` of its tokens (the "contaminated" threshold of Touvron et al.,
2023); less is reported as a partial hit and not counted.
"""

from __future__ import annotations

import re

#: the n of the n-gram overlap (GPT-3, the Pile, the Llama-2 contamination study use 13)
NGRAM = 13
#: an item shorter than NGRAM tokens is matched as a whole when it has at least this many tokens;
#: shorter items are too generic to evidence a leak by overlap (their answers may still count)
MIN_WHOLE_ITEM = 8

#: share of a long segment's tokens the windows found must cover for the item to count
COVERAGE = 0.8

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Lowercase, non-alphanumerics to single spaces, trimmed."""
    return _NOT_WORD.sub(" ", text.lower()).strip()


def tokens(text: str) -> list[str]:
    return normalise(text).split()


def item_grams(toks: list[str], n: int = NGRAM, min_whole: int = MIN_WHOLE_ITEM) -> list[str]:
    """The texts a segment is matched by (joined by single spaces): the whole segment when it has
    ``min_whole`` to ``2n - 1`` tokens, every n-token window when longer, none when shorter."""
    if len(toks) >= 2 * n:
        return [" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    if len(toks) >= min_whole:
        return [" ".join(toks)]
    return []


def covered(windows: set[int], n: int) -> set[int]:
    """The token positions that the windows starting at ``windows`` cover."""
    return {i + k for i in windows for k in range(n)}
