"""The scripted agent: a fixed SFT pipeline, the smoke baseline every scenario is checked with.

Static tasks: ``train_sft.py`` (SFT on the train split). Interactive tasks (every family of kind
``interactive``): ``train_interactive.py`` (collects expert demonstrations with the rollout API,
then SFT).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autorl_gym.tools.process import shell_exports

HERE = Path(__file__).parent
TRAIN_SCRIPT = HERE / "train_sft.py"
SCRIPTS = {"static": TRAIN_SCRIPT, "interactive": HERE / "train_interactive.py"}  # by task kind


class ScriptedAgent:
    def __init__(self, train_timeout_s: float = 900, script: str | Path | None = None,
                 train_env: dict[str, Any] | None = None):
        """``train_env``: environment variables for the training script (its documented knobs,
        e.g. ``{"SFT_EPOCHS": 1}``), set on its command line in the sandbox."""
        self.train_timeout_s = train_timeout_s
        self.script = Path(script) if script else None
        if not isinstance(train_env, dict | None):
            raise ValueError(f"train_env must be a mapping of NAME: value, not {train_env!r}")
        self.exports = shell_exports(train_env or {}, "train_env")
        self._plan: list[dict[str, Any]] = []

    def reset(self, obs: str, info: dict[str, Any]) -> None:
        kind = (info.get("scenario") or {}).get("task_kind", "static")
        script = self.script or SCRIPTS.get(kind, TRAIN_SCRIPT)
        self._plan = [
            {"tool": "list_files", "path": "."},
            {"tool": "write_file", "path": "code/train.py", "content": script.read_text()},
            {"tool": "run", "command": f"{self.exports}python code/train.py",
             "timeout_s": self.train_timeout_s},
            {"tool": "submit", "model_path": "output/v1"},
            {"tool": "finish", "model_path": "output/v1"},
        ]

    def act(self, obs: str) -> dict[str, Any]:
        if not self._plan:
            return {"tool": "finish"}
        return self._plan.pop(0)
