"""The episode as a TRL environment: ``GRPOTrainer(environment_factory=AutoRLToolEnv, ...)``.

TRL (>= 1.0) turns each public method of the class into a tool (its name, type hints and
Google-style docstring become the JSON schema in the prompt), calls ``reset(**row)`` before each
rollout with the dataset row's columns, runs the tool calls the model makes against the instance,
and scores the finished rollout with ``get_reward()``. Here one instance is one Gymnasium episode
(:class:`autorl_gym.envs.autorl_env.AutoRLEnv`) at a time: its own workspace, sandbox and results
folder; ``reset`` abandons the previous episode and starts a fresh one on the row's scenario, and
``get_reward`` ends an episode that the model left open (as ``finish`` without a name would) and
returns the env's reward: final test score minus the baseline.

    from trl import GRPOConfig, GRPOTrainer
    from autorl_gym.integrations.trl import AutoRLToolEnv, scenario_dataset

    trainer = GRPOTrainer(model=..., args=GRPOConfig(...),
                          train_dataset=scenario_dataset(["AutoRL-Micro-Arith-v0"], repeats=8),
                          environment_factory=AutoRLToolEnv)
"""

from __future__ import annotations

import contextlib
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autorl_gym.envs.autorl_env import AutoRLEnv
from autorl_gym.episode.workspace import task_text
from autorl_gym.scenarios.catalog import get_scenario

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["AutoRLToolEnv", "scenario_dataset", "scenario_prompt", "tool_env_factory"]

DEFAULT_SCENARIO = "AutoRL-Micro-Arith-v0"
TOOLS_NOTE = ("You work in a sandboxed workspace through the tools write_file, read_file, list_files, "
              "run, submit and finish. Save models under output/, submit them for feedback, and call "
              "finish when you are done.")


def scenario_prompt(scenario_id: str) -> str:
    """The user message that opens an episode on ``scenario_id``: the scenario's task text and a
    note on the tools (the same task text the env's first observation starts with)."""
    return task_text(get_scenario(scenario_id)) + "\n\n" + TOOLS_NOTE


def scenario_dataset(scenarios: list[str] | None = None, repeats: int = 1) -> Dataset:
    """A conversational prompt dataset for ``GRPOTrainer``: one row per scenario and repeat, with
    columns ``prompt`` (one user message) and ``scenario`` (the id, which TRL hands to
    :meth:`AutoRLToolEnv.reset`)."""
    from datasets import Dataset

    ids = scenarios or [DEFAULT_SCENARIO]
    rows = [{"prompt": [{"role": "user", "content": scenario_prompt(sid)}], "scenario": sid}
            for _ in range(repeats) for sid in ids]
    return Dataset.from_list(rows)


def tool_env_factory(**env_kwargs: Any) -> partial[AutoRLToolEnv]:
    """An ``environment_factory`` whose instances pass ``env_kwargs`` to every episode's
    :class:`AutoRLEnv` (``sandbox=``, ``workspace_root=``, ``results_dir=``, budgets...)."""
    return partial(AutoRLToolEnv, **env_kwargs)


class AutoRLToolEnv:
    """One autorl-gym episode at a time, its tools as methods (see the module's docstring).

    Args:
        scenario: the scenario played when the dataset row names none.
        **env_kwargs: passed to :class:`AutoRLEnv` (``sandbox``, ``workspace_root``,
            ``results_dir``, ``budget_seconds``, ``max_steps``, ...).
    """

    def __init__(self, scenario: str = DEFAULT_SCENARIO, **env_kwargs: Any):
        self._default_scenario = scenario
        self._env_kwargs = {"agent_name": "trl", **env_kwargs}
        self._env: AutoRLEnv | None = None
        self._reward: float | None = None
        self.tool_calls: list[str] = []  # the tools called in the current episode, in order

    # ------------------------------------------------------------------ TRL's hooks
    def reset(self, scenario: str | None = None, **row: Any) -> None:
        """Start a fresh episode on ``scenario`` (the dataset row's column; other columns are
        ignored). The prompt already holds the task, so nothing is appended to it."""
        sid = scenario or self._default_scenario
        if self._env is None or self._env.scenario.id != sid:
            self._close()
            self._env = AutoRLEnv(sid, **self._env_kwargs)
        self._env.reset()
        self._reward, self.tool_calls = None, []

    def get_reward(self) -> float:
        """The episode's reward (final test score minus baseline, in score points); an episode
        still open is finished first, grading its best submission (or none: reward 0)."""
        if self._reward is None:
            self._step({"tool": "finish"})
        return float(self._reward or 0.0)

    # ------------------------------------------------------------------ the tools
    def write_file(self, path: str, content: str) -> str:
        """Write a text file in the workspace (parent folders are created, an existing file is replaced).

        Args:
            path: The file's path relative to the workspace, e.g. code/train.py.
            content: The whole text of the file.

        Returns:
            How many bytes were written, or what was wrong.
        """
        return self._step({"tool": "write_file", "path": path, "content": content})

    def read_file(self, path: str, offset: int = 0, limit: int | None = None) -> str:
        """Read a text file from the workspace, including model/ and data/.

        Args:
            path: The file's path relative to the workspace.
            offset: The first character to return.
            limit: How many characters to return (default: all).

        Returns:
            The text read, or what was wrong.
        """
        return self._step({"tool": "read_file", "path": path, "offset": offset, "limit": limit})

    def list_files(self, path: str = ".") -> str:
        """List a folder of the workspace as a tree.

        Args:
            path: The folder relative to the workspace (default: the workspace itself).

        Returns:
            The tree of files and folders.
        """
        return self._step({"tool": "list_files", "path": path})

    def run(self, command: str, timeout_s: float | None = None) -> str:
        """Run a shell command in the sandbox, in the workspace folder.

        Args:
            command: The shell command, e.g. python code/train.py.
            timeout_s: Seconds before the command is killed (default: the scenario's limit).

        Returns:
            The exit code, the head and tail of stdout and stderr, and the seconds it took.
        """
        return self._step({"tool": "run", "command": command, "timeout_s": timeout_s})

    def submit(self, model_path: str) -> str:
        """Submit a model folder (a full model or a LoRA adapter) for grading on the feedback split.

        Args:
            model_path: The model's folder relative to the workspace, e.g. output/v1.

        Returns:
            The grader's feedback: the submission's id, its score, the baseline and the best so far.
        """
        return self._step({"tool": "submit", "model_path": model_path})

    def finish(self, model_path: str | None = None) -> str:
        """End the episode: the named submission (default: the best so far) is graded on the test split.

        Args:
            model_path: The submitted model to be graded (default: the best one so far).

        Returns:
            The final score, the baseline and the improvement.
        """
        return self._step({"tool": "finish", "model_path": model_path})

    # ------------------------------------------------------------------ inside
    @property
    def env(self) -> AutoRLEnv:
        """The current episode's Gymnasium env (after the first :meth:`reset`)."""
        if self._env is None:
            raise RuntimeError("reset() first: no episode has started")
        return self._env

    @property
    def results_dir(self) -> Path | None:
        """The current episode's results folder."""
        rec = self._env.episode.recorder if self._env is not None else None
        return rec.root if rec is not None else None

    def _step(self, action: dict[str, Any]) -> str:
        self.tool_calls.append(action["tool"])
        action = {k: v for k, v in action.items() if v is not None}
        obs, reward, terminated, truncated, _ = self.env.step(action)
        if (terminated or truncated) and self._reward is None:
            self._reward = reward
        return obs

    def _close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # best effort, at interpreter shutdown too
            self._close()
