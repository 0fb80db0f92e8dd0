"""What an episode leaves behind in ``results/{scenario}_{timestamp}/``, written outside the
sandbox and atomically: run.json, trajectory.jsonl, submissions.jsonl, feedback.json, the
final test items of the chosen submission (test_items.json) and of the base model
(baseline_test_items.json), and the agent's code history (code_history.git, one commit per
step that changed ``code/``)."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autorl_gym.core.durable import append_jsonl, atomic_write_json
from autorl_gym.core.integrity import IntegrityEvent, record_event
from autorl_gym.core.records import EvalResult, Feedback, SubmissionRecord
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.episode.code_history import GIT_DIR_NAME, CodeHistory, CodeHistoryError
from autorl_gym.runtime.safe_walk import Refusal

log = logging.getLogger(__name__)

#: the tools after which ``code/`` is snapshotted into the code history
SNAPSHOT_TOOLS = ("write_file", "run", "submit")
#: where accepted submissions are pinned, in the results folder (never mounted in a sandbox)
SUBMISSIONS_DIR = RunFolder.SUBMISSION_SNAPSHOTS


class EpisodeRecorder:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=False)
        self._history: CodeHistory | None = None
        self.history_error: str | None = None
        self._refusals: set[tuple[str, str]] = set()
        #: the agent's turn the next steps belong to (a reprompted external agent's), else None
        self.turn: int | None = None

    def refused(self, refusal: Refusal, source: str = "recorder") -> None:
        """Record a workspace refusal (a link not followed, a name not read) as an integrity
        event, once per kind and path."""
        key = (refusal.kind, refusal.path)
        if key in self._refusals:
            return
        self._refusals.add(key)
        record_event(self.root, IntegrityEvent(kind=refusal.kind, source=source,
                                               detail=refusal.detail, data={"path": refusal.path}))

    def integrity(self, kind: str, source: str, detail: str, **data: Any) -> None:
        """Record an integrity event (a refusal that protects a score) in integrity.jsonl."""
        record_event(self.root, IntegrityEvent(kind=kind, source=source, detail=detail, data=data))

    def track_code(self, code_dir: Path, *, resumed_at_step: int | None = None) -> None:
        """Start the code history of ``code_dir`` (with a first commit of what it holds), or take
        it up again after a restart (a commit only if ``code/`` changed meanwhile)."""
        try:
            self._history = CodeHistory(self.root / GIT_DIR_NAME, code_dir,
                                        on_refused=lambda r: self.refused(r, "code_history"))
            if resumed_at_step is None:
                self._history.snapshot(0, "episode start", allow_empty=True)
            else:
                self._history.snapshot(resumed_at_step, "episode resumed after a restart")
        except (CodeHistoryError, OSError, ValueError) as e:
            self._code_history_failed(e)

    def snapshot_code(self, step: int, message: str) -> str | None:
        """Commit ``code/`` if it changed; returns the commit id, or None (unchanged or failed)."""
        if self._history is None:
            return None
        try:
            rev = self._history.snapshot(step, message)
        except (CodeHistoryError, OSError, ValueError) as e:
            self._code_history_failed(e)
            return None
        return rev.commit if rev else None

    def _code_history_failed(self, e: Exception) -> None:
        log.warning("code history disabled: %s", e)
        self.history_error = str(e)
        self._history = None
        append_jsonl(self.root / RunFolder.RECORDING_ERRORS,
                     {"time": datetime.now(UTC).isoformat(), "what": "code_history", "error": str(e)})

    @classmethod
    def reopen(cls, root: Path) -> EpisodeRecorder:
        """Append to an existing results folder (an episode taken up after a restart)."""
        if not root.is_dir():
            raise FileNotFoundError(f"results folder {root} does not exist")
        rec = cls.__new__(cls)
        rec.root = root
        rec._history = None
        rec.history_error = None
        rec._refusals = set()
        rec.turn = None
        return rec

    def started_at(self) -> datetime:
        """When the episode started, from run.json (outside the sandbox, so the agent cannot
        move it, unlike the workspace's run_meta.json)."""
        path = self.root / RunFolder.RUN
        try:
            return datetime.fromisoformat(json.loads(path.read_text())["started_at"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: no start time recorded ({e})") from e

    def recorded_steps(self) -> int:
        """The index of the last step in trajectory.jsonl (0 before the first): where an
        episode taken up after a restart goes on counting. A line cut off by a crash is skipped."""
        last = 0
        for line in _lines(self.root / RunFolder.TRAJECTORY):
            last = max(last, int(line.get("step", 0)))
        return last

    def recorded_submissions(self) -> list[SubmissionRecord]:
        """The submissions in submissions.jsonl, in order (the last record of each id wins)."""
        records = {}
        for line in _lines(self.root / RunFolder.SUBMISSIONS):
            rec = SubmissionRecord.model_validate(line)
            records[rec.id] = rec
        return [records[k] for k in sorted(records)]

    def run_info(self, info: dict[str, Any]) -> None:
        atomic_write_json(self.root / RunFolder.RUN, info)

    def step(self, index: int, elapsed_s: float, call: Any, observation: str, duration_s: float,
             reward: float, exit_code: int | None, budget: dict[str, Any],
             code_commit: str | None = None) -> None:
        append_jsonl(self.root / RunFolder.TRAJECTORY, {
            "step": index,
            "time": datetime.now(UTC).isoformat(),
            "elapsed_s": round(elapsed_s, 3),
            "call": call,
            "observation": observation,
            "observation_chars": len(observation),
            "observation_sha256": hashlib.sha256(observation.encode()).hexdigest(),
            "exit_code": exit_code,
            "duration_s": round(duration_s, 3),
            "reward": reward,
            "budget": budget,
            "code_commit": code_commit,
            **({"turn": self.turn} if self.turn is not None else {}),
        })

    def submission(self, record: SubmissionRecord) -> None:
        append_jsonl(self.root / RunFolder.SUBMISSIONS, record.model_dump(mode="json"))

    def final(self, feedback: Feedback, test_result: EvalResult | None,
              baseline_test: EvalResult | None = None) -> None:
        if baseline_test is not None and baseline_test.items:
            atomic_write_json(self.root / RunFolder.BASELINE_TEST_ITEMS,
                              [i.model_dump() for i in baseline_test.items])
        if test_result is not None:
            atomic_write_json(self.root / RunFolder.TEST_ITEMS,
                              [i.model_dump() for i in test_result.items])
        atomic_write_json(self.root / RunFolder.FEEDBACK, feedback.model_dump(mode="json"))


def _lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a jsonl file; a torn last line (a crash mid-write) is skipped."""
    if not path.is_file():
        return []
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            value = json.loads(raw)
        except ValueError:
            log.warning("%s: skipping a line that is not JSON (cut off by a crash?)", path)
            continue
        if isinstance(value, dict):
            out.append(value)
    return out
