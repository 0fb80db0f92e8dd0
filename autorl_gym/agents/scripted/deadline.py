"""The time a training script has, and how it keeps to it: written beside each stage script in
``code/`` by the scripted agent (like ``answers.py``), stdlib only but for the trainer callback.

The agent sets ``TRAIN_SECONDS`` on the stage's command line: the wall-clock seconds the script
has from its start, its model saved included, sized from the episode's time left (the run's
timeout is a little longer, so a script that keeps to it is never killed). Unset or ``0``: no
limit (the script trains its full recipe, as a user running it by hand expects).

A script that keeps to it: stops collecting data when its share is spent
(:meth:`Deadline.share_spent`), stops training when the next step (the slowest of the last few,
with a margin) would not leave time to save (:class:`StopAtDeadline`, for TRL/transformers
trainers; :meth:`Deadline.fits` for a loop of its own), then saves what it has trained
(:func:`save_model`: into a sibling folder renamed into place, so a model folder is never half
written). ``TRAIN_SAVE_S`` overrides the seconds kept back for the save (default: 5 % of the
limit, at least 10 s).
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import time
from collections import deque
from pathlib import Path
from typing import Any


class Deadline:
    def __init__(self, seconds: float | None, save_s: float | None = None,
                 t0: float | None = None):
        self.seconds = seconds if seconds and seconds > 0 else None
        default_save = max(10.0, 0.05 * self.seconds) if self.seconds else 0.0
        self.save_s = default_save if save_s is None else save_s
        self.t0 = time.monotonic() if t0 is None else t0

    @classmethod
    def from_env(cls, t0: float | None = None) -> Deadline:
        """From ``TRAIN_SECONDS`` and ``TRAIN_SAVE_S`` (SystemExit naming a bad value), counted
        from ``t0`` (default: the process's start, so its imports count too)."""
        def number(name: str, raw: str) -> float | None:
            raw = raw.strip()
            if not raw:
                return None
            try:
                value = float(raw)
            except ValueError:
                raise SystemExit(f"{name}={raw!r} is not a number of seconds") from None
            if value < 0 or not math.isfinite(value):
                raise SystemExit(f"{name}={raw!r} must be a finite number of seconds, not negative")
            return value
        if t0 is None:
            t0 = time.monotonic() - process_age()
        return cls(number("TRAIN_SECONDS", os.environ.get("TRAIN_SECONDS", "")),
                   number("TRAIN_SAVE_S", os.environ.get("TRAIN_SAVE_S", "")), t0)

    @property
    def limited(self) -> bool:
        return self.seconds is not None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        """Seconds left before the model must be saved (infinite without a limit)."""
        if self.seconds is None:
            return math.inf
        return self.seconds - self.save_s - self.elapsed()

    def fits(self, seconds: float) -> bool:
        """Whether ``seconds`` more of work still leaves the time to save."""
        return self.left() >= seconds

    def share_spent(self, share: float, next_s: float = 0.0) -> bool:
        """Whether ``share`` of the limit is spent, counting ``next_s`` of work about to start
        (a data-collection phase that must leave the rest to training)."""
        return self.seconds is not None and self.elapsed() + next_s > share * self.seconds

    def describe(self) -> str:
        if self.seconds is None:
            return "no time limit (TRAIN_SECONDS unset)"
        return f"time limit {self.seconds:.0f}s, {self.save_s:.0f}s of it kept to save the model"


def process_age() -> float:
    """Seconds since this process started (Linux's /proc; 0 where it cannot be read)."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def stop_at_deadline(deadline: Deadline, window: int = 5, margin: float = 1.5) -> Any:
    """A transformers ``TrainerCallback`` that keeps training to the time limit.

    After ``window`` steps it sizes the run to the steps that fit at their measured pace (the
    slowest of them, times ``margin``): when fewer than planned, the learning-rate schedule is
    rescaled to end there (a schedule built with ``num_training_steps``, as transformers' warmup,
    linear and cosine ones are) and training stops there, so the schedule anneals as planned in
    the time there is. Whatever the plan, it stops when the slowest of the last ``window`` steps,
    times ``margin``, no longer fits; the script then saves the model as it stands."""
    from transformers import TrainerCallback

    class StopAtDeadline(TrainerCallback):
        def __init__(self) -> None:
            self.last = time.monotonic()
            self.recent: deque[float] = deque(maxlen=window)
            self.planned: int | None = None

        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            if not self.recent:
                self.last = time.monotonic()  # the first step's time, not the setup's

        def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):  # noqa: ANN001, ANN201
            now = time.monotonic()
            self.recent.append(now - self.last)
            self.last = now
            if not deadline.limited:
                return control
            step_s = margin * max(self.recent)
            if self.planned is None and len(self.recent) == window:
                fit = state.global_step + int(deadline.left() // step_s)
                self.planned = fit if fit < state.max_steps else state.max_steps
                if fit < state.max_steps:
                    resized = rescale_schedule(lr_scheduler, fit)
                    print(f"time limit: {fit} of the {state.max_steps} planned steps fit "
                          f"({deadline.left():.0f}s left, a step takes up to {max(self.recent):.1f}s); "
                          f"{'the learning-rate schedule ends there' if resized else 'schedule kept'}",
                          flush=True)
            if not deadline.fits(step_s) or (self.planned is not None
                                             and state.global_step >= self.planned):
                control.should_training_stop = True
                print(f"time limit: stopping after step {state.global_step}/{state.max_steps} "
                      f"({deadline.elapsed():.0f}s spent of {deadline.seconds:.0f}s, a step takes "
                      f"up to {max(self.recent):.1f}s); saving the model as trained so far",
                      flush=True)
            return control

    return StopAtDeadline()


def rescale_schedule(scheduler: Any, steps: int) -> bool:
    """Make a ``LambdaLR`` whose factors are ``functools.partial``s taking ``num_training_steps``
    (transformers' schedules) end at ``steps``; False (nothing changed) for any other."""
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if not lambdas or not all(isinstance(f, functools.partial)
                              and "num_training_steps" in f.keywords for f in lambdas):
        return False
    steps = max(steps, max(f.keywords.get("num_warmup_steps", 0) for f in lambdas) + 1)
    scheduler.lr_lambdas = [functools.partial(f.func, *f.args, **{**f.keywords,
                                                                   "num_training_steps": steps})
                            for f in lambdas]
    return True


def save_model(model: Any, tokenizer: Any, out_dir: Path) -> None:
    """Save into ``<out_dir>.partial`` and rename it into place: ``out_dir`` is whole or absent."""
    out_dir = Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(str(partial), safe_serialization=True)
    tokenizer.save_pretrained(str(partial))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
