"""AutoRL-Bench agents, unmodified: a folder with AutoRL-Bench's ``config.yaml``.

AutoRL-Bench (microsoft/RD-Agent, ``rdagent/scenarios/rl/autorl_bench``) describes an agent as
``agents/<id>/config.yaml`` with ``name``, ``start`` (a script in the folder, default
``start.sh``) and ``env_vars``, and runs it as ``bash <agent dir>/<start>`` with
``{**env_vars, **os.environ, TASK, BASE_MODEL, WORKSPACE, MODEL_PATH, DATA_PATH, OUTPUT_DIR,
GRADING_SERVER_URL}``: the run's own variables always win over the agent's.

Here such a folder is found where ``agent.yaml`` folders are (``AUTORL_GYM_AGENTS``,
``./agents``, the shipped agents) or given as a path, and becomes an external agent
(:mod:`autorl_gym.agents.external`): the folder is copied into the workspace's ``code/``, and
``bash code/<start>`` runs in the sandbox with the workspace as its working folder (AutoRL-Bench's
instructions: "the current directory is the workspace"), ``env_vars`` exported first and the run's
variables kept. The agent reaches ``POST $GRADING_SERVER_URL/submit``, ``GET /time`` and
``GET /health`` without a token: the bridge knows which run a sandbox belongs to
(:mod:`autorl_gym.server.autorl_bench`), so an isolating sandbox is required.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
#: the variables AutoRL-Bench's runner sets after the agent's ``env_vars`` (they win), plus ours
RUN_VARIABLES = frozenset({"TASK", "BASE_MODEL", "WORKSPACE", "MODEL_PATH", "DATA_PATH", "OUTPUT_DIR",
                           "GRADING_SERVER_URL", "RUN_ID", "RUN_TOKEN"})
#: how submissions are scored: ours (dev feedback, test graded once at the end) or AutoRL-Bench's
#: (each submission scored on the benchmark's test split, the run keeping the best)
CompatScoring = Literal["autorl-gym", "autorl-bench"]


class AutoRLBenchError(ValueError):
    pass


class AutoRLBenchConfig(BaseModel):
    """AutoRL-Bench's ``config.yaml`` (its registry reads ``name``, ``start``, ``env_vars``;
    other keys, such as ``description``, are kept for show and otherwise ignored, as there)."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    description: str = ""
    start: str = "start.sh"
    env_vars: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @field_validator("start")
    @classmethod
    def _inside_folder(cls, v: str) -> str:
        p = PurePosixPath(v)
        if not v or p.is_absolute() or ".." in p.parts or "\\" in v or "\x00" in v:
            raise ValueError(f"start {v!r} must be a relative path inside the agent folder")
        return v

    @field_validator("env_vars", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v


def is_autorl_bench_folder(folder: Path) -> bool:
    """A folder with AutoRL-Bench's config.yaml and no agent.yaml of ours."""
    return (folder / CONFIG_FILE).is_file() and not (folder / "agent.yaml").is_file()


def find_autorl_bench_agents(dirs: list[Path]) -> dict[str, Path]:
    """``<name>: <folder>`` for each AutoRL-Bench agent folder in ``dirs`` (first one wins)."""
    found: dict[str, Path] = {}
    for d in dirs:
        if d.is_dir():
            for cfg in sorted(d.glob(f"*/{CONFIG_FILE}")):
                if is_autorl_bench_folder(cfg.parent):
                    found.setdefault(cfg.parent.name, cfg.parent)
    return found


def load_config(folder: Path) -> AutoRLBenchConfig:
    path = folder / CONFIG_FILE
    try:
        cfg = AutoRLBenchConfig.model_validate(yaml.safe_load(path.read_text()) or {})
    except (OSError, yaml.YAMLError, ValidationError) as e:
        raise AutoRLBenchError(f"{path}: not an AutoRL-Bench agent config: {e}") from e
    if not (folder / cfg.start).is_file():
        raise AutoRLBenchError(f"{path}: start script {cfg.start!r} is not a file in {folder}")
    return cfg


def agent_fields(folder: Path) -> dict[str, Any]:
    """The fields of the :class:`~autorl_gym.agents.spec.AgentSpec` that runs the AutoRL-Bench
    agent in ``folder`` as AutoRL-Bench runs it."""
    cfg = load_config(folder)
    env: dict[str, str] = {}
    for k, v in cfg.env_vars.items():
        if k in RUN_VARIABLES:  # AutoRL-Bench's runner sets these after env_vars: the run's win
            log.warning("%s: env_vars.%s is ignored (the run sets it)", folder / CONFIG_FILE, k)
            continue
        env[str(k)] = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
    return {"name": folder.name, "description": cfg.description or (cfg.name or ""),
            "start": f"bash {shlex.quote('code/' + cfg.start)}", "options": env,
            "protocol": "autorl-bench"}
