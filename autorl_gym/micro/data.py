"""Deterministic generator of small GSM8K-style arithmetic word problems.

Every record is ``{"question": str, "answer": str}``; the answer is one reasoning line and the
result after ``#### ``, e.g. ``"12 + 7 = 19\\n#### 19"``. The splits are drawn from disjoint
seeds and deduplicated on the question text: dev holds no train question, test holds no train
or dev question. The pre-training corpus of the micro model (see :mod:`autorl_gym.micro.build`)
excludes all three.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

# Bump whenever the data, tokenizer, model or pre-training change: it names the shipped artifact
# (arith-v1) and its cache folder; a new version is a new scenario id, never a change of -v0.
MICRO_VERSION = 1
DATA_SEED = 20240611
SPLIT_SIZES: dict[str, int] = {"train": 4000, "dev": 200, "test": 400}
SPLIT_ORDER = ("train", "dev", "test")

NAMES: tuple[tuple[str, str], ...] = (
    ("Sam", "He"), ("Mia", "She"), ("Tom", "He"), ("Ava", "She"), ("Leo", "He"),
    ("Zoe", "She"), ("Ben", "He"), ("Ivy", "She"), ("Max", "He"), ("Lily", "She"),
    ("Jack", "He"), ("Emma", "She"), ("Noah", "He"), ("Ella", "She"), ("Liam", "He"),
    ("Nora", "She"), ("Owen", "He"), ("Ruby", "She"), ("Ryan", "He"), ("Anna", "She"),
)
OBJECTS: tuple[str, ...] = (
    "apples", "pencils", "marbles", "stickers", "cookies", "books", "cards", "coins",
    "shells", "stamps", "candies", "toys", "balls", "flowers", "eggs", "oranges",
)
PLACES: tuple[str, ...] = ("box", "basket", "jar", "bag")


class Problem(BaseModel):
    """One arithmetic word problem, as written to the jsonl splits."""

    question: str
    answer: str


@dataclass(frozen=True)
class Draw:
    kind: str
    question: str
    a: int
    b: int
    op: str
    result: int


def _fill(rng: random.Random, template: str, a: int, b: int) -> str:
    (name, pron), (name2, _) = rng.sample(NAMES, 2)
    obj = rng.choice(OBJECTS)
    place = rng.choice(PLACES)
    return template.format(
        name=name, pron=pron, name2=name2, obj=obj, place=place, a=a, b=b,
        pron_obj="him" if pron == "He" else "her",
    )


ADD_TEMPLATES = (
    "{name} has {a} {obj}. {pron} buys {b} more. How many {obj} does {name} have now?",
    "{name} had {a} {obj}. {name2} gave {pron_obj} {b} more. How many {obj} does {name} have?",
    "There are {a} {obj} in a {place}. {name} puts {b} more {obj} in the {place}. "
    "How many {obj} are in the {place} now?",
)
SUB_TEMPLATES = (
    "{name} has {a} {obj}. {pron} gives {b} to {name2}. How many {obj} does {name} have left?",
    "{name} had {a} {obj}. {pron} lost {b} of them. How many {obj} does {name} have now?",
    "There are {a} {obj} in a {place}. {name} takes {b} of them. "
    "How many {obj} are left in the {place}?",
)
MUL_TEMPLATES = (
    "{name} has {a} bags. Each bag has {b} {obj}. How many {obj} does {name} have in total?",
    "{name} buys {a} boxes of {obj}. Each box holds {b} {obj}. How many {obj} did {name} buy?",
)
TEMPLATES: dict[str, tuple[str, ...]] = {
    "add": ADD_TEMPLATES,
    "sub": SUB_TEMPLATES,
    "mul": MUL_TEMPLATES,
}
KIND_WEIGHTS: tuple[tuple[str, int], ...] = (("add", 2), ("sub", 2), ("mul", 1))
# Operand ranges (inclusive): small enough for a tiny transformer to learn in a minute.
ADD_RANGE = (1, 9)
SUB_RANGE = (1, 9)  # subtrahend and difference; the minuend is their sum
MUL_RANGE = (2, 9)


def _operands(rng: random.Random, kind: str) -> tuple[int, int, str, int]:
    if kind == "add":
        a, b = rng.randint(*ADD_RANGE), rng.randint(*ADD_RANGE)
        return a, b, "+", a + b
    if kind == "sub":
        b, c = rng.randint(*SUB_RANGE), rng.randint(*SUB_RANGE)
        return b + c, b, "-", c
    if kind == "mul":
        a, b = rng.randint(*MUL_RANGE), rng.randint(*MUL_RANGE)
        return a, b, "*", a * b
    raise ValueError(f"unknown problem kind {kind!r}")


def _draw(rng: random.Random) -> Draw:
    kinds = [k for k, w in KIND_WEIGHTS for _ in range(w)]
    kind = rng.choice(kinds)
    template = rng.choice(TEMPLATES[kind])
    a, b, op, result = _operands(rng, kind)
    return Draw(kind, _fill(rng, template, a, b), a, b, op, result)


def equation(a: int, op: str, b: int) -> tuple[str, int]:
    """The reasoning line of a problem and its result, e.g. ``("12 + 7 = 19", 19)``."""
    result = {"+": a + b, "-": a - b, "*": a * b}[op]
    return f"{a} {op} {b} = {result}", result


def format_answer(a: int, op: str, b: int) -> str:
    line, result = equation(a, op, b)
    return f"{line}\n#### {result}"


def _split_rng(split: str, seed: int) -> random.Random:
    # One independent stream per split: distinct string seeds, never shared state.
    return random.Random(f"autorl-gym/micro/arith/{seed}/{split}")


def iter_draws(stream: str, seed: int = DATA_SEED) -> Iterator[Draw]:
    """An endless deterministic stream of problems for one named seed stream."""
    rng = _split_rng(stream, seed)
    while True:
        yield _draw(rng)


def _take(stream: str, n: int, exclude: set[str], seed: int) -> list[Draw]:
    out: list[Draw] = []
    seen: set[str] = set()
    for draw in iter_draws(stream, seed):
        if draw.question in exclude or draw.question in seen:
            continue
        seen.add(draw.question)
        out.append(draw)
        if len(out) == n:
            return out
    raise AssertionError("unreachable")  # pragma: no cover


def _record(d: Draw) -> Problem:
    return Problem(question=d.question, answer=format_answer(d.a, d.op, d.b))


def make_splits(
    sizes: dict[str, int] | None = None, seed: int = DATA_SEED
) -> dict[str, list[Problem]]:
    """The train / dev / test splits: disjoint seeds, no question text in two splits."""
    sizes = {**SPLIT_SIZES, **(sizes or {})}
    used: set[str] = set()
    splits: dict[str, list[Problem]] = {}
    for split in SPLIT_ORDER:
        draws = _take(split, sizes[split], used, seed)
        used.update(d.question for d in draws)
        splits[split] = [_record(d) for d in draws]
    return splits


def decoy_problems(n: int, exclude: Iterable[str], seed: int = DATA_SEED) -> list[Problem]:
    """Problems drawn like the splits from a stream of their own, in no split (``exclude``):
    the contamination audit's control set (:meth:`TaskFamily.audit_decoys`)."""
    return [_record(d) for d in _take("audit-decoy", n, set(exclude), seed)]


def pretrain_draws(n: int, exclude: Iterable[str], seed: int = DATA_SEED) -> list[Draw]:
    """Problems for the micro model's pre-training corpus, disjoint from every split."""
    return _take("pretrain", n, set(exclude), seed)


def write_jsonl(path: Path, records: Iterable[Problem]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec.model_dump(), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> list[Problem]:
    with path.open(encoding="utf-8") as f:
        return [Problem.model_validate_json(line) for line in f if line.strip()]
