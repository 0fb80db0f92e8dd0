"""The results folder of one run (``results/<run>/``): every file name in it, written once here.

Whoever writes or reads a run's files (the episode's recorder, the external and CLI agents, the
report, the leaderboard, the dashboard, the sweep, the export) names them through
:class:`RunFolder`, so a file cannot be renamed in one place and read under its old name in
another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class RunFolder:
    """One run's results folder; the class attributes are its file names."""

    root: Path

    RUN: ClassVar[str] = "run.json"                              # who ran what, at the start
    TRAJECTORY: ClassVar[str] = "trajectory.jsonl"               # one line per tool call
    SUBMISSIONS: ClassVar[str] = "submissions.jsonl"             # one line per submission
    FEEDBACK: ClassVar[str] = "feedback.json"                    # the final result
    TEST_ITEMS: ClassVar[str] = "test_items.json"                # the graded submission, per item
    BASELINE_TEST_ITEMS: ClassVar[str] = "baseline_test_items.json"  # the base model, per item
    CODE_HISTORY: ClassVar[str] = "code_history.git"             # the agent's code/, snapshotted
    SUBMISSION_SNAPSHOTS: ClassVar[str] = "submissions"          # pinned copies of submissions
    LLM_CALLS: ClassVar[str] = "llm_calls.jsonl"                 # every call through the gateway
    LLM_USAGE: ClassVar[str] = "llm_usage.json"                  # their totals
    AGENT_OUTPUT: ClassVar[str] = "agent_output.txt"             # an external agent's output
    TURNS: ClassVar[str] = "turns.jsonl"                         # a reprompted agent's turns
    METRICS: ClassVar[str] = "metrics.json"                      # the report's metrics
    INTEGRITY: ClassVar[str] = "integrity.jsonl"                 # what was refused, and why
    AUDIT: ClassVar[str] = "audit.json"                          # the contamination audit
    VERIFY: ClassVar[str] = "verify.json"                        # what autorl-gym verify found
    PROVENANCE: ClassVar[str] = "provenance.json"                # what measured the scores
    RECORDING_ERRORS: ClassVar[str] = "recording_errors.jsonl"   # what could not be recorded

    #: the files that make a folder a run's (any one of them)
    MARKERS: ClassVar[tuple[str, ...]] = (RUN, TRAJECTORY, SUBMISSIONS, FEEDBACK)

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def run(self) -> Path:
        return self.root / self.RUN

    @property
    def trajectory(self) -> Path:
        return self.root / self.TRAJECTORY

    @property
    def submissions(self) -> Path:
        return self.root / self.SUBMISSIONS

    @property
    def feedback(self) -> Path:
        return self.root / self.FEEDBACK

    @property
    def llm_calls(self) -> Path:
        return self.root / self.LLM_CALLS

    @property
    def integrity(self) -> Path:
        return self.root / self.INTEGRITY


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` holds a run's results (any of :attr:`RunFolder.MARKERS`)."""
    return path.is_dir() and any((path / name).exists() for name in RunFolder.MARKERS)
