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
"""

from __future__ import annotations

import shlex
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


class ScriptedAgent:
    def __init__(self, train_timeout_s: float = 900, script: str | Path | None = None,
                 train_env: dict[str, Any] | None = None, recipe: str = DEFAULT_RECIPE):
        """``train_env``: environment variables for the training scripts (their documented knobs,
        e.g. ``{"SFT_EPOCHS": 1}``), set on their command lines in the sandbox. ``script``: one
        training script of your own instead of the recipe's stages. ``train_timeout_s``: per
        stage."""
        self.train_timeout_s = train_timeout_s
        self.script = Path(script) if script else None
        if not isinstance(train_env, dict | None):
            raise ValueError(f"train_env must be a mapping of NAME: value, not {train_env!r}")
        self.exports = shell_exports(train_env or {}, "train_env")
        self.recipe = recipe
        self.stages = parse_recipe(recipe)
        if self.script is not None and self.stages != [DEFAULT_RECIPE]:
            raise ValueError("give either script (one script of your own) or recipe, not both")
        self._plan: list[dict[str, Any]] = []

    def _scripts(self, kind: str) -> list[Path]:
        if self.script is not None:
            return [self.script]
        return [stage_script(stage, kind) for stage in self.stages]

    def reset(self, obs: str, info: dict[str, Any]) -> None:
        kind = (info.get("scenario") or {}).get("task_kind", "static")
        self._plan = [{"tool": "list_files", "path": "."}]
        model_in = ""  # the first stage trains the base model ($MODEL_PATH as the sandbox sets it)
        for i, script in enumerate(self._scripts(kind), 1):
            name = f"v{i}"
            code = f"code/{script.name}"
            self._plan += [{"tool": "write_file", "path": f"code/{dep.name}",
                            "content": dep.read_text()}
                           for dep in SUPPORT.get(script.name, ())]
            self._plan += [
                {"tool": "write_file", "path": code, "content": script.read_text()},
                {"tool": "run", "timeout_s": self.train_timeout_s,
                 "command": f"{self.exports}{model_in}OUTPUT_NAME={name} python {code}"},
                {"tool": "submit", "model_path": f"output/{name}"},
            ]
            model_in = f"MODEL_PATH={shlex.quote(f'output/{name}')} "
        self._plan.append({"tool": "finish", "model_path": f"output/{name}"})

    def act(self, obs: str) -> dict[str, Any]:
        if not self._plan:
            return {"tool": "finish"}
        return self._plan.pop(0)
