"""The hidden dev and test items of a scenario as patterns to look for: each item's 13-grams
(:mod:`autorl_gym.audit.normalise`), its answer where the answer is distinctive, and each split's
canary. A pattern that also occurs in the visible train split is dropped: text the agent was given
cannot evidence a leak (templated tasks share phrases between splits).

An answer is *distinctive* (:func:`distinctive`) when, normalised, it is not a number, has at
least two tokens or one token of at least :data:`MIN_ANSWER_CHARS` characters, and does not occur
in the train split. A bare number or a yes/no is never evidence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autorl_gym.audit import canary as canaries
from autorl_gym.audit.matcher import Pattern, Patterns, Stream
from autorl_gym.audit.normalise import MIN_WHOLE_ITEM, NGRAM, covered, item_grams, normalise, tokens

MIN_ANSWER_CHARS = 6
HIDDEN_SPLITS = ("dev", "test")
DECOY = "decoy"      # the split name of the control items (keys ``decoy:N``)
DECOY_FACTOR = 4     # control items per hidden item, for a family with a public generator
_TRAIN_READ_CAP = 256 << 20  # bytes of the train split read to find its public patterns
# "KB" and "grammar": the game logic TextWorld writes identically into every game file
# "answer", "gold": an item's answer is checked on its own (distinctive answers only)
_SKIP_FIELDS = {"index", "gold", "answer", "name", "path", "kind", "id", "KB", "grammar"}


@dataclass
class HiddenItem:
    split: str
    id: str          # the item's index or name within its split
    text: str        # its strings, for a reader
    answer: str | None
    segments: list[list[str]] = field(default_factory=list)  # the token lists matched

    @property
    def key(self) -> str:
        return f"{self.split}:{self.id}"


@dataclass
class HiddenIndex:
    scenario: str
    items: dict[str, HiddenItem]
    patterns: Patterns
    canaries: dict[str, str]                 # split -> canary
    split_digests: dict[str, str]
    dropped_public: int = 0                  # n-grams and answers also in the train split
    short_items: list[str] = field(default_factory=list)  # too short for an n-gram
    build_s: float = 0.0
    # (item, segment) -> the windows left after the public ones were dropped (long segments)
    windows: dict[tuple[str, int], set[int]] = field(default_factory=dict)
    # control items drawn from the public generator the hidden ones come from (none: no generator)
    decoys: dict[str, HiddenItem] = field(default_factory=dict)

    def coverage(self, key: str, segment: int, found: set[int]) -> float:
        """The share of a segment's checkable tokens that the windows ``found`` cover (1.0 for
        a segment matched as a whole)."""
        left = self.windows.get((key, segment))
        if left is None:
            return 1.0
        total = covered(left, NGRAM)
        return len(covered(found & left, NGRAM)) / len(total) if total else 0.0

    def counts(self) -> dict[str, int]:
        per: dict[str, int] = {}
        for it in self.items.values():
            per[it.split] = per.get(it.split, 0) + 1
        return per


def distinctive(answer: str | None) -> str | None:
    """The normalised answer if it is distinctive enough to evidence a leak on its own."""
    if not answer:
        return None
    norm = normalise(answer)
    toks = norm.split()
    if not toks or all(t.replace(".", "").isdigit() for t in toks):
        return None
    if len(toks) >= 2 or len(toks[0]) >= MIN_ANSWER_CHARS:
        return norm
    return None


def _strings(value: Any, skip: set[str]) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in skip:
                yield from _strings(v, skip)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, skip)


def _item_record(item: Any) -> tuple[str, dict[str, Any]]:
    """(id, fields) of a loaded item: a pydantic item's fields, or the JSON file a game refers to."""
    data = item.model_dump() if hasattr(item, "model_dump") else dict(vars(item))
    ident = str(data.get("index", data.get("name", "?")))
    path = data.get("path")
    if isinstance(path, Path):
        json_file = path if path.suffix == ".json" else path.with_suffix(".json")
        try:
            loaded = json.loads(json_file.read_text(encoding="utf-8"))
            data = loaded if isinstance(loaded, dict) else {"items": loaded}
        except (OSError, ValueError):
            data = {}
    return ident, data


def _as_hidden(split: str, item: Any, ident: str | None = None) -> HiddenItem:
    found, data = _item_record(item)
    answer = data.get("gold") if "gold" in data else data.get("answer")
    strings = list(_strings(data, _SKIP_FIELDS))
    segments = [t for t in (tokens(s) for s in strings) if len(t) >= MIN_WHOLE_ITEM]
    return HiddenItem(split, ident or found, "\n".join(strings),
                      answer if isinstance(answer, str) else None, segments)


def hidden_items(ctx: Any, split: str) -> list[HiddenItem]:
    """The items of one hidden split, as text and answer (``ctx``: a GradeContext)."""
    return [_as_hidden(split, item) for item in ctx.items(split)]


def decoy_items(ctx: Any, n: int) -> list[HiddenItem]:
    """The family's control items (:meth:`TaskFamily.audit_decoys`), or none."""
    drawn = ctx.family.audit_decoys(ctx, n)
    return [_as_hidden(DECOY, item, str(i)) for i, item in enumerate(drawn or [])]


def _train_files(ctx: Any) -> Iterator[Path]:
    assets = ctx.assets
    roots = [assets.train_dir]
    if assets.train_data is not None and assets.train_data != assets.train_dir:
        roots.append(assets.train_data)
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
                              and not _binary(p))


def _binary(path: Path) -> bool:
    """A file whose first 8 KiB hold a NUL byte (a game image, weights): no public text."""
    try:
        with path.open("rb") as fh:
            return b"\0" in fh.read(8192)
    except OSError:
        return True


def _public(ctx: Any, patterns: Patterns) -> set[str]:
    """The pattern texts that occur in the visible train split (read up to a cap)."""
    stream = Stream(patterns, keep_texts=True)
    left = _TRAIN_READ_CAP
    for path in _train_files(ctx):
        with path.open("rb") as fh:
            while left > 0 and (chunk := fh.read(min(1 << 22, left))):
                left -= len(chunk)
                stream.feed_bytes(chunk)
        stream.feed("\n")  # files do not run into each other
    stream.close()
    return stream.texts or set()


def _add_grams(patterns: Patterns, windows: dict[tuple[str, int], set[int]], it: HiddenItem) -> None:
    for seg, toks in enumerate(it.segments):
        grams = item_grams(toks)
        for w, g in enumerate(grams):
            patterns.add(g, Pattern("ngram", it.key, seg, w))
        if len(grams) > 1:
            windows[(it.key, seg)] = set(range(len(grams)))


def build_index(scenario: Any, assets: Any, plant: bool = True) -> HiddenIndex:
    """The hidden items of ``scenario`` (dev and test) as patterns; plants each split's canary
    beside it when ``plant`` (best effort)."""
    from autorl_gym.core.family import GradeContext

    t0 = time.monotonic()
    ctx = GradeContext(scenario, assets)
    items: dict[str, HiddenItem] = {}
    patterns = Patterns()
    cans, digests, short = {}, {}, []
    windows: dict[tuple[str, int], set[int]] = {}
    for split in HIDDEN_SPLITS:
        if split not in assets.hidden_splits:
            continue
        digests[split] = ctx.family.split_digest(ctx, split)
        cans[split] = canaries.canary(scenario.id, split, digests[split])
        if plant:
            canaries.plant(assets.hidden_splits[split], split, cans[split])
        for it in hidden_items(ctx, split):
            items[it.key] = it
            if not it.segments:
                short.append(it.key)
            _add_grams(patterns, windows, it)
            ans = distinctive(it.answer)
            if ans:
                patterns.add(ans, Pattern("answer", it.key))
    decoys = {d.key: d for d in decoy_items(ctx, DECOY_FACTOR * len(items))} if items else {}
    for d in decoys.values():  # n-grams only: the control is for item text
        _add_grams(patterns, windows, d)
    public = _public(ctx, patterns)
    for text in public:
        for p in patterns.by_text.get(text, []):
            if (p.key, p.segment) in windows:
                windows[(p.key, p.segment)].discard(p.window)
    patterns.remove(public)
    for split, value in cans.items():  # added after: a canary is never "public"
        patterns.add(canaries.normalised(value), Pattern("canary", f"canary:{split}"))
    return HiddenIndex(scenario.id, items, patterns, cans, digests, len(public), short,
                       time.monotonic() - t0, windows, decoys)
