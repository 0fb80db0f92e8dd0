"""Scratchpad SFT: derive the working of every train answer from its question, then SFT on it.

Standalone stage script of the scripted agent (``recipe=scratchpad``); it runs ``train_sft.py``
(written beside it in ``code/``) on the derived data. For question/answer records whose answer is
only ``#### N``, the working is reconstructed from the data alone:

1. the numbers of the question, in order, are the operands of a chain of additions and
   subtractions; every sign pattern whose running values stay >= 0 and end at N is a candidate;
2. a problem with one candidate is labelled with it; each operand's sentence (its lowercase
   words: "buys more", "gives to", ...) votes for the operation it got, and a problem with several
   candidates takes the one its sentences vote for most (dropped on a tie or no candidate);
3. the answer becomes the steps, one ``a + b = c`` line each, then ``#### N``.

Records whose answer already shows its working are kept as they are. Environment: that of
``train_sft.py`` (``MODEL_PATH``, ``DATA_PATH``, ``OUTPUT_DIR``, ``OUTPUT_NAME``, ``SFT_*``); the
derived split is written to ``$OUTPUT_DIR/scratchpad_data/train.jsonl``.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

NUMBER = re.compile(r"\d+")
RESULT = re.compile(r"####\s*(-?\d+)")


def sentence_keys(question: str) -> list[str]:
    """One key per number of the question: the lowercase words of the sentence holding it."""
    keys = []
    for sentence in re.split(r"(?<=[.?!])\s+", question):
        words = " ".join(w for w in re.findall(r"[A-Za-z]+", sentence) if w.islower())
        keys += [words] * len(NUMBER.findall(sentence))
    return keys


def candidates(numbers: list[int], result: int) -> list[tuple[str, ...]]:
    """Every sign pattern for numbers[1:] whose running values stay >= 0 and end at result."""
    out = []
    for signs in itertools.product("+-", repeat=len(numbers) - 1):
        x, ok = numbers[0], True
        for op, n in zip(signs, numbers[1:], strict=True):
            x = x + n if op == "+" else x - n
            ok = ok and x >= 0
        if ok and x == result:
            out.append(signs)
    return out


def working(numbers: list[int], signs: tuple[str, ...]) -> str:
    lines, x = [], numbers[0]
    for op, n in zip(signs, numbers[1:], strict=True):
        y = x + n if op == "+" else x - n
        lines.append(f"{x} {op} {n} = {y}")
        x = y
    return "\n".join(lines) + f"\n#### {x}"


def derive(records: list[dict]) -> tuple[list[dict], Counter]:
    """The records with their working written out, and counts of what happened to them."""
    stats: Counter = Counter()
    pending = []
    votes: dict[str, Counter] = defaultdict(Counter)
    out: list[dict | None] = []
    for rec in records:
        answer = rec["answer"].strip()
        m = RESULT.search(answer)
        if "question" not in rec or m is None or not answer.startswith("####"):
            stats["kept as given"] += 1
            out.append(rec)
            continue
        numbers = [int(n) for n in NUMBER.findall(rec["question"])]
        cands = candidates(numbers, int(m.group(1))) if len(numbers) >= 2 else []
        keys = sentence_keys(rec["question"])[1:]
        if len(cands) == 1:
            stats["derived"] += 1
            for key, op in zip(keys, cands[0], strict=False):
                votes[key][op] += 1
            out.append({**rec, "answer": working(numbers, cands[0])})
        else:
            pending.append((len(out), rec, numbers, cands, keys))
            out.append(None)
    for i, rec, numbers, cands, keys in pending:
        scores = [sum(votes[k][op] for k, op in zip(keys, signs, strict=False)) for signs in cands]
        best = max(scores, default=0)
        if not cands or scores.count(best) > 1:
            stats["dropped (no single working)"] += 1
            continue
        stats["derived by the sentence votes"] += 1
        out[i] = {**rec, "answer": working(numbers, cands[scores.index(best)])}
    return [r for r in out if r is not None], stats


def main() -> None:
    data = os.environ.get("DATA_PATH")
    out_root = os.environ.get("OUTPUT_DIR")
    if not data or not out_root:
        sys.exit("train_scratchpad.py: DATA_PATH and OUTPUT_DIR must be set")
    with (Path(data) / "train.jsonl").open(encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    derived, stats = derive(records)
    if not derived:
        sys.exit("train_scratchpad.py: no record could be given a working")
    print("scratchpad: " + ", ".join(f"{n} {what}" for what, n in stats.items()), flush=True)
    print("example:\n" + derived[0]["answer"], flush=True)
    dest = Path(out_root) / "scratchpad_data"
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / "train.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in derived)
    os.environ["DATA_PATH"] = str(dest)
    spec = importlib.util.spec_from_file_location("train_sft", Path(__file__).with_name("train_sft.py"))
    if spec is None or spec.loader is None:
        sys.exit("train_scratchpad.py: train_sft.py must be beside this script")
    sft = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sft)
    sft.main()


if __name__ == "__main__":
    main()
