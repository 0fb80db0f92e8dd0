"""Multi-step arithmetic word problems whose visible answers show only the result.

The headroom scenario (``AutoRL-Micro-Arith-Multistep-v0``): each problem chains two or three
additions and subtractions, and every single step is an arithmetic fact the ``micro:arith`` base
model was pre-trained on (a one-digit sum, or a difference of at most 18 minus a digit with a
one-digit result). The train split's answers are ``#### N`` alone, with no working: plain SFT on
them must learn to compute the whole chain in one token, which a model this small does badly,
while a recipe that writes the steps out (``a + b = s`` lines before ``#### N``; the numbers and
their order are in the question, the operations follow from its verbs and from the result) turns
each problem into facts the model already knows.

Pure-Python seeded generation: the same bytes on every machine (the splits are checked against
their published content hash when installed, see :mod:`autorl_gym.micro.shipped`). Splits are
drawn from disjoint seed streams and deduplicated on the question text.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from autorl_gym.micro.data import NAMES, OBJECTS, PLACES, Problem, write_jsonl

# Bump whenever the generated data changes: it names the asset (arith_multistep-v1).
MULTISTEP_VERSION = 1
MULTISTEP_SEED = 20261202
MULTISTEP_SIZES: dict[str, int] = {"train": 4000, "dev": 200, "test": 400}
STEP_CHOICES = (2, 3)        # operations per problem

# Sentences, by setting: the opening (the start value), one per operation, the question.
OWNER = {
    "start": ("{name} has {a} {obj}.", "{name} had {a} {obj}."),
    "+": ("{pron} buys {n} more.", "{other} gave {pron_obj} {n} more."),
    "-": ("{pron} gives {n} to {other}.", "{pron} lost {n} of them."),
    "ask": "How many {obj} does {name} have now?",
}
PLACE = {
    "start": ("There are {a} {obj} in a {place}.",),
    "+": ("{other} puts {n} more {obj} in the {place}.",),
    "-": ("{other} takes {n} of them.",),
    "ask": "How many {obj} are in the {place} now?",
}


@dataclass(frozen=True)
class Chain:
    question: str
    start: int
    steps: tuple[tuple[str, int], ...]   # (op, operand) in order

    @property
    def result(self) -> int:
        return self.values[-1]

    @property
    def values(self) -> list[int]:
        vals = [self.start]
        for op, n in self.steps:
            vals.append(vals[-1] + n if op == "+" else vals[-1] - n)
        return vals


def is_fact(x: int, op: str, n: int) -> bool:
    """Whether ``x op n`` is one of the facts the micro model was pre-trained on."""
    if op == "+":
        return 1 <= x <= 9 and 1 <= n <= 9
    return 1 <= n <= 9 and 1 <= x - n <= 9 and x <= 18


def _step(rng: random.Random, x: int) -> tuple[str, int]:
    ops = [op for op in "+-" if any(is_fact(x, op, n) for n in range(1, 10))]
    op = rng.choice(ops)
    return op, rng.choice([n for n in range(1, 10) if is_fact(x, op, n)])


def _draw(rng: random.Random) -> Chain:
    k = rng.choice(STEP_CHOICES)
    start = rng.randint(2, 9) if rng.random() < 0.75 else rng.randint(10, 18)
    steps, x = [], start
    for _ in range(k):
        op, n = _step(rng, x)
        steps.append((op, n))
        x = x + n if op == "+" else x - n
    setting = OWNER if rng.random() < 0.7 else PLACE
    (name, pron), *_ = rng.sample(NAMES, 1)
    others = [n for n, _ in NAMES if n != name]
    fields = {"name": name, "pron": pron, "pron_obj": "him" if pron == "He" else "her",
              "obj": rng.choice(OBJECTS), "place": rng.choice(PLACES)}
    parts = [rng.choice(setting["start"]).format(a=start, **fields)]
    for op, n in steps:
        parts.append(rng.choice(setting[op]).format(n=n, other=rng.choice(others), **fields))
    parts.append(setting["ask"].format(**fields))
    return Chain(" ".join(parts), start, tuple(steps))


def working(chain: Chain) -> str:
    """The written-out steps and the result (what a scratchpad recipe teaches; never shipped)."""
    lines, x = [], chain.start
    for op, n in chain.steps:
        y = x + n if op == "+" else x - n
        lines.append(f"{x} {op} {n} = {y}")
        x = y
    return "\n".join(lines) + f"\n#### {x}"


def iter_chains(stream: str, seed: int = MULTISTEP_SEED) -> Iterator[Chain]:
    rng = random.Random(f"autorl-gym/micro/arith_multistep/{seed}/{stream}")
    while True:
        yield _draw(rng)


def make_chains(seed: int = MULTISTEP_SEED,
                sizes: dict[str, int] | None = None) -> dict[str, list[Chain]]:
    """train / dev / test chains: disjoint seed streams, no question text in two splits."""
    sizes = {**MULTISTEP_SIZES, **(sizes or {})}
    used: set[str] = set()
    out: dict[str, list[Chain]] = {}
    for split in ("train", "dev", "test"):
        chains: list[Chain] = []
        for c in iter_chains(split, seed):
            if c.question in used:
                continue
            used.add(c.question)
            chains.append(c)
            if len(chains) == sizes[split]:
                break
        out[split] = chains
    return out


def decoy_problems(n: int, exclude: set[str], seed: int = MULTISTEP_SEED) -> list[Problem]:
    """Chains drawn like the splits from a stream of their own, in no split (``exclude``): the
    contamination audit's control set, written as the splits are."""
    out: list[Problem] = []
    seen = set(exclude)
    for c in iter_chains("audit-decoy", seed):
        if c.question in seen:
            continue
        seen.add(c.question)
        out.append(Problem(question=c.question, answer=f"#### {c.result}"))
        if len(out) == n:
            return out
    raise AssertionError("unreachable")  # pragma: no cover


def make_splits(seed: int = MULTISTEP_SEED) -> dict[str, list[Problem]]:
    """The records as written: ``#### N`` answers only, in every split (the grader reads N)."""
    return {split: [Problem(question=c.question, answer=f"#### {c.result}") for c in chains]
            for split, chains in make_chains(seed).items()}


def write_multistep_data(dest: Path, seed: int = MULTISTEP_SEED) -> None:
    """The train, dev and test splits (seeded, pure Python: the same bytes on every machine)."""
    splits = make_splits(seed)
    write_jsonl(dest / "train" / "train.jsonl", splits["train"])
    write_jsonl(dest / "hidden" / "dev.jsonl", splits["dev"])
    write_jsonl(dest / "hidden" / "test.jsonl", splits["test"])


def build_multistep(dest: Path, progress: bool = True) -> None:
    """The full build (``autorl-gym micro build arith_multistep``): data only; the base model is
    the shipped ``micro:arith``."""
    write_multistep_data(dest)
