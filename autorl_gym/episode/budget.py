"""An episode's budget: wall-clock seconds, tool calls and submissions, and which one ended it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import BaseModel


class BudgetState(BaseModel):
    """What is left, as the agent sees it in ``info["budget"]`` and the trajectory."""

    seconds_left: float
    elapsed_s: float
    steps_left: int
    submissions_left: int


class Budget:
    """The clock and the counters of one episode.

    The clock is monotonic; an episode taken up after a restart starts it in the past, so the
    wall-clock budget keeps counting from the episode's real start.
    """

    def __init__(self, seconds: float, max_steps: int, max_submissions: int):
        self.seconds, self.max_steps, self.max_submissions = seconds, max_steps, max_submissions
        self.steps = 0
        self.submissions_used = 0
        self._t0: float | None = None
        self._t_end: float | None = None

    def start(self, started_at: datetime | None = None, steps: int = 0,
              submissions_used: int = 0) -> None:
        """Start the clock now, or at ``started_at`` (a resumed episode)."""
        ago = (datetime.now(UTC) - started_at).total_seconds() if started_at is not None else 0.0
        self._t0 = time.monotonic() - ago
        self._t_end = None
        self.steps, self.submissions_used = steps, submissions_used

    def stop(self) -> None:
        """Freeze the clock (the episode ended)."""
        if self._t0 is not None and self._t_end is None:
            self._t_end = time.monotonic()

    @property
    def elapsed(self) -> float:
        if self._t0 is None:
            return 0.0
        return (self._t_end if self._t_end is not None else time.monotonic()) - self._t0

    @property
    def seconds_left(self) -> float:
        return max(0.0, self.seconds - self.elapsed)

    @property
    def submissions_left(self) -> int:
        return self.max_submissions - self.submissions_used

    def state(self) -> BudgetState:
        return BudgetState(seconds_left=round(self.seconds_left, 1), elapsed_s=round(self.elapsed, 1),
                           steps_left=self.max_steps - self.steps,
                           submissions_left=self.submissions_left)

    def spent(self) -> str | None:
        """Why the episode must end now, or None."""
        state = self.state()
        if state.seconds_left <= 0:
            return "wall-clock budget spent"
        if state.steps_left <= 0:
            return "step limit reached"
        if state.submissions_left <= 0:
            return "submission limit reached"
        return None

    def command_timeout(self, asked: float | None, default: float, cap: float) -> float:
        """A ``run`` call's timeout: what was asked (or the default), capped by the sandbox's
        limit and by the seconds left, and at least one second."""
        timeout = min(asked or default, cap)
        return max(1.0, min(timeout, self.seconds_left))
