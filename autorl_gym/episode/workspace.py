"""The episode workspace: ``workspace/{scenario}_{timestamp}/`` with code/, output/, data/,
model/, description.md, instructions.md and run_meta.json. Large inputs are linked, never
copied; the sandbox mounts their targets read-only."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from autorl_gym.core.assets import ScenarioAssets
from autorl_gym.core.durable import atomic_write_json
from autorl_gym.core.scenario import Scenario

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
# How this episode works

You work in this folder (the workspace). Everything you run executes in a sandbox with no
network access. Paths and environment variables available to your code:

| path | env var | what |
|---|---|---|
| `model/` | `MODEL_PATH` | the base model (read-only) |
| `data/` | `DATA_PATH` | the training data (read-only) |
| `output/` | `OUTPUT_DIR` | save models here, one folder per version (`output/v1`, ...) |
| `code/` |  | your code |
|  | `WORKSPACE` | this folder |

The Python environment has torch, transformers, peft, trl, datasets and accelerate.
`BASE_MODEL` names the base model's source, `TASK` the scenario. `/tmp` (and `HOME`, which is
inside it) is private to each command and emptied after it: keep what must last in the
workspace. Background processes do not outlive the command that started them.

Tools: `write_file`, `read_file`, `list_files`, `run` (a shell command, with a timeout),
`submit` (a model folder: a full model with config.json and model.safetensors, or a LoRA
adapter with adapter_config.json and adapter_model.safetensors; the tokenizer should be saved
with it), and `finish` (ends the episode).

Each `submit` is graded on a hidden feedback split and tells you the score, the baseline (the
untrained base model's score) and the best so far. When the episode ends, the submission you
name at `finish` (default: your best on the feedback split) is graded once on a hidden test
split; your result is its score minus the baseline. Submitting an unchanged copy of the base
model scores exactly the baseline. A submission is copied when you submit it (its weights as
safetensors, config and tokenizer files; links are not followed) and graded, on the feedback
split and at the end on test, from that copy: to have changed weights graded, submit again.

Budget: {seconds:.0f} seconds of wall-clock time, {steps} tool calls, {submissions} submissions.
"""


class WorkspaceInfo(BaseModel):
    root: Path
    code: Path
    output: Path
    data: Path
    model: Path
    started_at: datetime

    @classmethod
    def at(cls, root: Path, started_at: datetime) -> WorkspaceInfo:
        """The layout of the workspace folder ``root``."""
        return cls(root=root, code=root / "code", output=root / "output", data=root / "data",
                   model=root / "model", started_at=started_at)


def timestamp(now: datetime) -> str:
    return now.strftime("%Y%m%d-%H%M%S-%f")


def task_text(scenario: Scenario) -> str:
    """What the agent reads first; the same for every episode of a scenario."""
    return f"# {scenario.title} ({scenario.id})\n\n{scenario.task.strip()}\n"


def instructions_text(scenario: Scenario, seconds: float, steps: int, submissions: int) -> str:
    return INSTRUCTIONS.format(seconds=seconds, steps=steps, submissions=submissions)


def create_workspace(root: Path, scenario: Scenario, assets: ScenarioAssets, now: datetime,
                     seconds: float, steps: int, submissions: int) -> WorkspaceInfo:
    ws = (root / f"{scenario.id}_{timestamp(now)}").resolve()
    ws.mkdir(parents=True, exist_ok=False)
    for sub in ("code", "output"):
        (ws / sub).mkdir()
    (ws / "data").symlink_to(assets.train_dir, target_is_directory=True)
    (ws / "model").symlink_to(assets.base_model_dir, target_is_directory=True)
    (ws / "description.md").write_text(task_text(scenario), encoding="utf-8")
    (ws / "instructions.md").write_text(instructions_text(scenario, seconds, steps, submissions),
                                        encoding="utf-8")
    write_run_meta(ws, run_meta(scenario.id, now, seconds, steps, submissions))
    return WorkspaceInfo.at(ws, now)


def run_meta(scenario_id: str, now: datetime, seconds: float, steps: int, submissions: int,
             last_submit_time: int | None = None, end_time: int | None = None) -> dict[str, object]:
    """The workspace's ``run_meta.json``: AutoRL-Bench's fields (``start_time``, ``timeout_s``,
    ``last_submit_time``, ``end_time``: epoch seconds, integers) beside ours. The agent may
    rewrite the file; nothing on the host reads it back (the budget is the episode's)."""
    return {
        "start_time": int(now.timestamp()),
        "timeout_s": int(seconds),
        "last_submit_time": last_submit_time,
        "end_time": end_time,
        "scenario": scenario_id,
        "started_at": now.isoformat(),
        "start_timestamp": now.timestamp(),
        "budget_seconds": seconds,
        "deadline": datetime.fromtimestamp(now.timestamp() + seconds, UTC).isoformat(),
        "max_steps": steps,
        "max_submissions": submissions,
    }


def write_run_meta(ws: Path, meta: dict[str, object]) -> None:
    """Write ``run_meta.json`` in the agent's workspace without following what the agent put
    there: a fresh temp file renamed over the name (a link there is replaced, never followed).
    Something the agent put there that cannot be replaced (a folder) is left, with a warning."""
    try:
        atomic_write_json(ws / "run_meta.json", meta)
    except OSError as e:
        log.warning("run_meta.json in %s not updated: %s", ws, e)
