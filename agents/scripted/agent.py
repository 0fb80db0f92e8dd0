"""The scripted agent: a fixed SFT pipeline, the smoke baseline every scenario is checked with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRAIN_SCRIPT = Path(__file__).with_name("train_sft.py")


class ScriptedAgent:
    def __init__(self, train_timeout_s: float = 900, script: str | Path | None = None):
        self.train_timeout_s = train_timeout_s
        self.script = Path(script) if script else TRAIN_SCRIPT
        self._plan: list[dict[str, Any]] = []

    def reset(self, obs: str, info: dict[str, Any]) -> None:
        self._plan = [
            {"tool": "list_files", "path": "."},
            {"tool": "write_file", "path": "code/train.py", "content": self.script.read_text()},
            {"tool": "run", "command": "python code/train.py", "timeout_s": self.train_timeout_s},
            {"tool": "submit", "model_path": "output/v1"},
            {"tool": "finish", "model_path": "output/v1"},
        ]

    def act(self, obs: str) -> dict[str, Any]:
        if not self._plan:
            return {"tool": "finish"}
        return self._plan.pop(0)
