"""Question/answer splits stored as JSON lines (``question``, ``answer`` ending in ``#### N``):
the format of GSM8K and of the micro arithmetic task."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel

from autorl_gym.tasks.answers import reference_answer


class Problem(BaseModel):
    index: int
    question: str
    answer: str
    gold: str


class SplitLoadError(ValueError):
    """A split file is missing or malformed; the message names the path and the line."""


def load_jsonl_split(path: Path, limit: int | None = None) -> list[Problem]:
    if not path.is_file():
        raise SplitLoadError(f"{path}: split file not found")
    problems: list[Problem] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise SplitLoadError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("question"), str) \
                    or not isinstance(rec.get("answer"), str):
                raise SplitLoadError(
                    f"{path}:{lineno}: expected an object with string fields 'question' and 'answer'"
                )
            try:
                gold = reference_answer(rec["answer"])
            except ValueError as e:
                raise SplitLoadError(f"{path}:{lineno}: {e}") from None
            problems.append(Problem(index=len(problems), question=rec["question"],
                                    answer=rec["answer"], gold=gold))
            if limit is not None and len(problems) >= limit:
                break
    if not problems:
        raise SplitLoadError(f"{path}: split file holds no problems")
    return problems


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
