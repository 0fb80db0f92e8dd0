"""Drive the scripted agent's plan without an episode: each tool call answered with the
observation the episode gives when it succeeds (or fails, as a test asks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RUN_OK = "exit code: 0 (1.00 s)\n--- output ---\nsaved model and tokenizer"
RUN_KILLED = ("exit code: killed (900.00 s)\ntimed out: the command and all its processes were "
              "killed\n--- output ---\nstep 10/500")
MODEL_LISTING = "output/v1/\n├── config.json (1 KB)\n└── model.safetensors (2 MB)"
EMPTY_LISTING = "error: no such file or directory: output/v1"
GRADED = 'submission graded\n{"submission_id": 1}'

Answer = Callable[[dict[str, Any]], str]


def succeeding(call: dict[str, Any]) -> str:
    return {"run": RUN_OK, "submit": GRADED, "list_files": MODEL_LISTING}.get(call["tool"], "ok")


def drive(agent: Any, answer: Answer = succeeding, limit: int = 100) -> list[dict[str, Any]]:
    """The tool calls the agent makes, ``finish`` last (reset it first)."""
    calls: list[dict[str, Any]] = []
    obs = "the task"
    for _ in range(limit):
        call = agent.act(obs)
        calls.append(call)
        if call["tool"] == "finish":
            return calls
        obs = answer(call)
    raise AssertionError(f"no finish within {limit} calls: {calls}")
