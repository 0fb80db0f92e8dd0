"""Read a results folder leniently: whatever is readable is loaded, and every damaged or
missing part becomes a plain-language problem instead of an exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autorl_gym.core.records import Feedback, SubmissionRecord
from autorl_gym.core.run_folder import RunFolder, is_run_folder
from autorl_gym.core.turns import TurnRecord
from autorl_gym.episode.code_history import GIT_DIR_NAME, CodeHistoryError, read_history
from autorl_gym.gateway.records import LLMCall

#: files any results folder holds; a folder with none of them is not a run
RUN_MARKERS = RunFolder.MARKERS


class ReportError(ValueError):
    """The folder cannot be reported at all (it is not a results folder)."""


class Step(BaseModel):
    """One trajectory.jsonl record (extra fields are kept)."""

    model_config = ConfigDict(extra="allow")

    step: int
    elapsed_s: float
    call: Any = None
    observation: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    reward: float = 0.0
    budget: dict[str, Any] = Field(default_factory=dict)
    time: str | None = None
    code_commit: str | None = None

    @property
    def tool(self) -> str:
        if isinstance(self.call, dict) and isinstance(self.call.get("tool"), str):
            return self.call["tool"]
        return "invalid"


class ItemOutcome(BaseModel):
    model_config = ConfigDict(extra="ignore")

    index: int
    correct: bool


class RunData(BaseModel):
    root: Path
    run: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    submissions: list[SubmissionRecord] = Field(default_factory=list)
    feedback: Feedback | None = None
    test_items: list[ItemOutcome] | None = None
    baseline_test_items: list[ItemOutcome] | None = None
    code_history: list[dict[str, str]] | None = None
    llm_calls: list[LLMCall] | None = None
    """the LLM gateway's log (a CLI agent's run), None when there was no gateway"""
    llm_usage: dict[str, Any] | None = None
    turns: list[TurnRecord] | None = None
    """a reprompted agent's turns (turns.jsonl), None when it was not reprompted"""
    problems: list[str] = Field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.feedback is not None

    @property
    def name(self) -> str:
        return self.root.name


def _read_json(path: Path, problems: list[str]) -> Any:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as e:
        problems.append(f"{path.name}: not readable JSON ({e}); left out")
        return None


def _read_jsonl(path: Path, model: type[BaseModel], problems: list[str]) -> list[Any]:
    out: list[Any] = []
    if not path.exists():
        return out
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        problems.append(f"{path.name}: not readable ({e}); left out")
        return out
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(model.model_validate_json(line))
        except ValidationError as e:
            kind = "truncated or not JSON" if "json_invalid" in str(e) or "EOF" in str(e) else \
                f"unexpected fields: {_first_error(e)}"
            problems.append(f"{path.name} line {n}: {kind}; that line is left out")
    return out


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()))
    return f"{loc}: {err.get('msg')}" if loc else str(err.get("msg"))


def _items(path: Path, problems: list[str]) -> list[ItemOutcome] | None:
    data = _read_json(path, problems)
    if data is None:
        return None
    try:
        if not isinstance(data, list):
            raise ValueError("expected a list of items")
        return [ItemOutcome.model_validate(x) for x in data]
    except (ValidationError, ValueError) as e:
        problems.append(f"{path.name}: unexpected content ({str(e).splitlines()[0]}); left out")
        return None


def load_run(root: Path) -> RunData:
    """Load everything readable in a results folder; raises :class:`ReportError` only when the
    folder does not exist or holds none of the files of a run."""
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"{root}: no such folder")
    if not is_run_folder(root):
        raise ReportError(f"{root}: not a results folder (none of {', '.join(RUN_MARKERS)} is there)")
    problems: list[str] = []
    run = _read_json(root / RunFolder.RUN, problems)
    if run is None and not (root / RunFolder.RUN).exists():
        problems.append("run.json is missing: scenario, agent and budget are unknown")
    if run is not None and not isinstance(run, dict):
        problems.append("run.json: expected a JSON object; left out")
        run = None
    steps = _read_jsonl(root / RunFolder.TRAJECTORY, Step, problems)
    if not (root / RunFolder.TRAJECTORY).exists():
        problems.append("trajectory.jsonl is missing: no step is known")
    subs = _read_jsonl(root / RunFolder.SUBMISSIONS, SubmissionRecord, problems)
    feedback = None
    fb = _read_json(root / RunFolder.FEEDBACK, problems)
    if fb is None and not (root / RunFolder.FEEDBACK).exists():
        problems.append("feedback.json is missing: the episode did not end (or its end was lost); "
                        "no final test score")
    elif fb is not None:
        try:
            feedback = Feedback.model_validate(fb)
        except ValidationError as e:
            problems.append(f"feedback.json: unexpected content ({_first_error(e)}); left out")
    errors = root / RunFolder.RECORDING_ERRORS
    if errors.exists():
        for line in errors.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                e = json.loads(line)
                problems.append(f"while recording: {e.get('what')} failed: {e.get('error')}")
            except (ValueError, AttributeError):
                problems.append(f"recording_errors.jsonl: unreadable line {line[:100]!r}")
    history = None
    git_dir = root / GIT_DIR_NAME
    if git_dir.exists():
        try:
            history = read_history(git_dir)
        except (CodeHistoryError, OSError) as e:
            problems.append(f"{GIT_DIR_NAME}: not readable ({e})")
    llm_calls = (_read_jsonl(root / RunFolder.LLM_CALLS, LLMCall, problems)
                 if (root / RunFolder.LLM_CALLS).exists() else None)
    llm_usage = (_read_json(root / RunFolder.LLM_USAGE, problems)
                 if (root / RunFolder.LLM_USAGE).exists() else None)
    turns = (_read_jsonl(root / RunFolder.TURNS, TurnRecord, problems)
             if (root / RunFolder.TURNS).exists() else None)
    return RunData(root=root, run=run or {}, steps=steps, submissions=subs, feedback=feedback, turns=turns,
                   test_items=_items(root / RunFolder.TEST_ITEMS, problems),
                   baseline_test_items=_items(root / RunFolder.BASELINE_TEST_ITEMS, problems),
                   code_history=history, llm_calls=llm_calls,
                   llm_usage=llm_usage if isinstance(llm_usage, dict) else None, problems=problems)
