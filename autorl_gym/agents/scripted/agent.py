"""The scripted agent: fixed training pipelines, no LLM. The smoke baseline every scenario is
checked with (``recipe=sft``, the default) and the reference recipes a good agent must beat.

A recipe is a ``+``-joined sequence of stages (``sft``, ``sft+grpo``). Each stage is one
standalone training script for the task's kind, registered in ``STAGES``: the agent writes it into
``code/``, runs it in the sandbox with ``MODEL_PATH`` set to the previous stage's output (the base
model for the first stage) and ``OUTPUT_NAME`` to ``v1``, ``v2``, ... in stage order, submits
``output/v<i>`` for feedback, and finishes with the last stage's model.

Static tasks: ``train_sft.py`` (SFT on the train split); ``train_scratchpad.py`` (stage
``scratchpad``: the working of answers that show only ``#### N`` derived from their questions,
then SFT on it with ``train_sft.py``, which is written beside it); ``train_grpo.py`` (stage
``grpo``: TRL's GRPO on the train prompts, the reward the strict answer check). Interactive tasks
(every family of kind ``interactive``): ``train_interactive.py`` (collects expert demonstrations
with the rollout API, then SFT); ``train_interactive_grpo.py`` (stage ``grpo``: GRPO on online
rollouts of the training games, in the evaluator's prompt format and choice mode).

Time: the agent reads the episode's time left at ``reset`` (``info["budget"]["seconds_left"]``,
the clock the episode ends by) and gives each stage a share of it: the time left less
``reserve_s`` (kept for the last submission's grading), split evenly over the stages still to run,
at most ``train_timeout_s``. The stage's script gets that share less a margin as
``TRAIN_SECONDS`` (``deadline.py``, written beside it: it stops collecting and training in time to
save the model it has) and the ``run`` gets the share as its timeout. A stage whose run saved no
model is not submitted and ends the recipe; the agent finishes with the last model it submitted
(or with none, the baseline, when none was saved).
"""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

from autorl_gym.agents.spec import AgentError
from autorl_gym.runtime.process import shell_exports

HERE = Path(__file__).parent
TRAIN_SCRIPT = HERE / "train_sft.py"

# stage name -> task kind -> the script that runs it (a file in this folder)
STAGES: dict[str, dict[str, str]] = {
    "sft": {"static": "train_sft.py", "interactive": "train_interactive.py"},
    "scratchpad": {"static": "train_scratchpad.py"},
    "grpo": {"static": "train_grpo.py", "interactive": "train_interactive_grpo.py"},
}
# script -> the files it needs beside it in code/ (written before it): this folder's, and the
# package's one answer check (core/answers.py: stdlib only), so a reward reads answers as the grader
ANSWERS = HERE.parents[1] / "core" / "answers.py"
SUPPORT: dict[str, tuple[Path, ...]] = {"train_scratchpad.py": (HERE / "train_sft.py",),
                                        "train_grpo.py": (ANSWERS,)}
# the time limit every script keeps to (TRAIN_SECONDS), written beside each one
DEADLINE = HERE / "deadline.py"
DEFAULT_RECIPE = "sft"


def parse_recipe(recipe: str) -> list[str]:
    """``"sft+grpo"`` -> ``["sft", "grpo"]``, every stage known, none twice."""
    if not isinstance(recipe, str) or not recipe.strip():
        raise ValueError(f"recipe must be a non-empty string such as 'sft' or 'sft+grpo', "
                         f"not {recipe!r}")
    stages = [s.strip() for s in recipe.split("+")]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"recipe {recipe!r}: unknown stage(s) {', '.join(map(repr, unknown))}; "
                         f"stages: {', '.join(sorted(STAGES))} (join them with '+')")
    if len(set(stages)) != len(stages):
        raise ValueError(f"recipe {recipe!r} names a stage twice")
    return stages


def stage_script(stage: str, kind: str) -> Path:
    scripts = STAGES[stage]
    if kind not in scripts:  # known only once the episode has started: the run stops cleanly
        raise AgentError(f"stage {stage!r} has no script for {kind} tasks; it runs on: "
                         f"{', '.join(sorted(scripts))}")
    return HERE / scripts[kind]


def stage_seconds(seconds_left: float, stages_left: int, reserve_s: float, cap_s: float) -> float:
    """A stage's share of the time left: ``seconds_left`` less ``reserve_s``, split over the
    ``stages_left`` stages still to run (time a stage does not use goes to the next), at most
    ``cap_s``; 0 when nothing is left."""
    return max(0.0, min(cap_s, (seconds_left - reserve_s) / max(1, stages_left)))


def script_seconds(run_s: float) -> int:
    """``TRAIN_SECONDS`` for a run whose timeout is ``run_s``: the script ends (model saved) a
    margin before the run would be killed (startup, interpreter exit, a slow last step)."""
    return max(1, int(run_s - max(5.0, 0.05 * run_s)))


def _exit_ok(obs: str) -> bool:
    return obs.startswith("exit code: 0 ")


def _lists_a_model(obs: str) -> bool:
    return "config.json" in obs and ".safetensors" in obs


def _accepted(obs: str) -> bool:
    return obs.startswith("submission graded")


class ScriptedAgent:
    def __init__(self, train_timeout_s: float = 900, script: str | Path | None = None,
                 train_env: dict[str, Any] | None = None, recipe: str = DEFAULT_RECIPE,
                 reserve_s: float | None = None, min_stage_s: float = 30):
        """``train_env``: environment variables for the training scripts (their documented knobs,
        e.g. ``{"SFT_EPOCHS": 1}``), set on their command lines in the sandbox. ``script``: one
        training script of your own instead of the recipe's stages. ``train_timeout_s``: the most
        a stage may take (the command cap). ``reserve_s``: seconds of the episode's time kept
        for the last submission's grading (default: 10 % of the time left at reset, between 20
        and 300 s). ``min_stage_s``: a later stage whose share is shorter is not started."""
        if train_timeout_s <= 0 or (reserve_s is not None and reserve_s < 0) or min_stage_s < 0:
            raise ValueError("train_timeout_s must be positive, reserve_s and min_stage_s not negative")
        self.train_timeout_s = train_timeout_s
        self.reserve_s_option = reserve_s
        self.min_stage_s = min_stage_s
        self.script = Path(script) if script else None
        if not isinstance(train_env, dict | None):
            raise ValueError(f"train_env must be a mapping of NAME: value, not {train_env!r}")
        self.exports = shell_exports(train_env or {}, "train_env")
        self.recipe = recipe
        self.stages = parse_recipe(recipe)
        if self.script is not None and self.stages != [DEFAULT_RECIPE]:
            raise ValueError("give either script (one script of your own) or recipe, not both")
        self._plan: Generator[dict[str, Any], str, None] | None = None
        self._started = False

    def _scripts(self, kind: str) -> list[Path]:
        if self.script is not None:
            return [self.script]
        return [stage_script(stage, kind) for stage in self.stages]

    def reset(self, obs: str, info: dict[str, Any]) -> None:
        kind = (info.get("scenario") or {}).get("task_kind", "static")
        scripts = self._scripts(kind)  # AgentError before anything runs for a stage with no script
        left = float((info.get("budget") or {}).get("seconds_left", math.inf))
        self.deadline = time.monotonic() + left
        self.reserve_s = (self.reserve_s_option if self.reserve_s_option is not None
                          else min(300.0, max(20.0, 0.1 * left)) if math.isfinite(left) else 0.0)
        self.log: list[str] = []  # what the agent decided, and why (read by tests and users)
        self._plan = self._episode(scripts)
        self._started = False

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def _episode(self, scripts: list[Path]) -> Generator[dict[str, Any], str, None]:
        """The tool calls, each sent the observation of the one before."""
        yield {"tool": "list_files", "path": "."}
        model_in = ""  # the first stage trains the base model ($MODEL_PATH as the sandbox sets it)
        submitted: str | None = None
        for i, script in enumerate(scripts, 1):
            name, code = f"v{i}", f"code/{script.name}"
            if i > 1 and stage_seconds(self.seconds_left(), len(scripts) - i + 1, self.reserve_s,
                                       self.train_timeout_s) < self.min_stage_s:
                self.log.append(f"stage {i} not started: its share of the "
                                f"{self.seconds_left():.0f}s left is under {self.min_stage_s:.0f}s")
                break
            for dep in (DEADLINE, *SUPPORT.get(script.name, ())):
                yield {"tool": "write_file", "path": f"code/{dep.name}", "content": dep.read_text()}
            yield {"tool": "write_file", "path": code, "content": script.read_text()}
            run_s = stage_seconds(self.seconds_left(), len(scripts) - i + 1, self.reserve_s,
                                  self.train_timeout_s)
            train_s = script_seconds(run_s)
            self.log.append(f"stage {i} ({script.name}): run timeout {run_s:.0f}s, "
                            f"TRAIN_SECONDS={train_s}")
            obs = yield {"tool": "run", "timeout_s": max(1.0, run_s),
                         "command": f"export TRAIN_SECONDS={train_s}; {self.exports}{model_in}"
                                    f"OUTPUT_NAME={name} python {code}"}
            if not _exit_ok(obs):
                listing = yield {"tool": "list_files", "path": f"output/{name}"}
                if not _lists_a_model(listing):
                    self.log.append(f"stage {i} saved no model: {obs.splitlines()[0]}")
                    break
            obs = yield {"tool": "submit", "model_path": f"output/{name}"}
            if not _accepted(obs):
                self.log.append(f"stage {i}'s model was not accepted: {obs.splitlines()[0][:200]}")
                break
            submitted = f"output/{name}"
            model_in = f"MODEL_PATH={shlex.quote(submitted)} "
        yield {"tool": "finish", "model_path": submitted} if submitted else {"tool": "finish"}

    def act(self, obs: str) -> dict[str, Any]:
        if self._plan is None:
            raise RuntimeError("reset() first")
        try:
            if not self._started:
                self._started = True
                return next(self._plan)
            return self._plan.send(obs)
        except StopIteration:
            return {"tool": "finish"}
