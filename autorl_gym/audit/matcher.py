"""Matching normalised token streams against the patterns of the hidden splits: item n-grams,
distinctive answers and canaries, found by their first token and compared as joined strings.
Text arrives in chunks (a file read piece by piece); a word cut by a chunk boundary is held
back, and the last tokens of a chunk are carried into the next, so no match is lost between two
chunks and memory stays bounded whatever the file's size."""

from __future__ import annotations

import codecs
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from autorl_gym.audit.normalise import normalise

_MAX_CARRY = 4096  # characters of an unfinished word held back; a longer "word" is cut there


@dataclass(frozen=True)
class Pattern:
    kind: str      # "ngram", "answer" or "canary"
    key: str       # the item ("test:17") or the canary's split ("canary:test")
    segment: int = 0  # which string of the item
    window: int = 0   # which 13-token window of that string (0 for a whole string)


@dataclass
class Patterns:
    """Normalised token runs and what each one evidences."""

    by_text: dict[str, list[Pattern]] = field(default_factory=lambda: defaultdict(list))
    lengths: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    def add(self, text: str, pattern: Pattern) -> None:
        toks = text.split()
        if not toks:
            return
        joined = " ".join(toks)
        if pattern not in self.by_text[joined]:
            self.by_text[joined].append(pattern)
        self.lengths[toks[0]].add(len(toks))

    def remove(self, texts: Iterable[str]) -> None:
        for t in texts:
            self.by_text.pop(t, None)

    @property
    def longest(self) -> int:
        return max((max(v) for v in self.lengths.values()), default=1)

    def find(self, toks: list[str], seen: int = 0) -> Iterable[tuple[str, list[Pattern]]]:
        """Every (matched text, patterns) in the token list, except those lying wholly within
        its first ``seen`` tokens (found before, in the previous chunk)."""
        lengths, by_text, n = self.lengths, self.by_text, len(toks)
        present = lengths.keys() & set(toks)  # most chunks hold no first token at all
        if not present:
            return
        for i, t in enumerate(toks):
            if t not in present:
                continue
            ls = lengths[t]
            for size in ls:
                if seen < i + size <= n:
                    g = " ".join(toks[i:i + size])
                    hit = by_text.get(g)
                    if hit:
                        yield g, hit


class Stream:
    """Feed bytes or text in pieces; collects (matched text, pattern) pairs."""

    def __init__(self, patterns: Patterns, keep_texts: bool = False):
        self.patterns = patterns
        self.texts: set[str] | None = set() if keep_texts else None  # every text matched
        self._tail: list[str] = []
        self._carry = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.found: dict[Pattern, tuple[str, int]] = {}  # pattern -> (first text, count)

    def feed_bytes(self, data: bytes) -> None:
        self.feed(self._decoder.decode(data))

    def feed(self, text: str, final: bool = False) -> None:
        text = self._carry + text
        self._carry = ""
        if not final:
            cut = len(text)
            while cut > 0 and text[cut - 1].isalnum():
                cut -= 1
            if len(text) - cut < _MAX_CARRY:
                text, self._carry = text[:cut], text[cut:]
        toks = self._tail + normalise(text).split()
        for g, pats in self.patterns.find(toks, len(self._tail)):
            if self.texts is not None:
                self.texts.add(g)
            for p in pats:
                first, count = self.found.get(p, (g, 0))
                self.found[p] = (first, count + 1)
        keep = self.patterns.longest - 1
        self._tail = toks[-keep:] if keep > 0 else []

    def close(self) -> dict[Pattern, tuple[str, int]]:
        self.feed(self._decoder.decode(b"", final=True), final=True)
        return self.found
