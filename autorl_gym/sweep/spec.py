"""``SWEEP.yaml``: the grid of a sweep (scenarios × agents × driver models × budgets × seeds) and
how its cells run (sandbox, retries, resources). Every error names the field it is about."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SweepError(ValueError):
    """A sweep file that cannot be run, with the file and the field in the message."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentEntry(_Strict):
    """One agent of the grid: a registered agent (agents/<name>/agent.yaml) with options."""

    name: str = Field(description="a registered agent (autorl-gym agents list)")
    label: str | None = Field(None, description="the agent's name in cell ids and the leaderboard "
                                                "(default: name); two entries need two labels")
    options: dict[str, Any] = Field(default_factory=dict, description="as --agent-option KEY=VALUE")
    drivers: list[str] | None = Field(
        None, description="this agent's driver models (default: the sweep's drivers, for agents "
                          "that take one)")

    @field_validator("label")
    @classmethod
    def _label_form(cls, v: str | None) -> str | None:
        if v is not None and not NAME_RE.match(v):
            raise ValueError(f"{v!r}: letters, digits, '.', '_' and '-' only")
        return v

    @property
    def key(self) -> str:
        return self.label or self.name


class BudgetOverride(_Strict):
    """A budget of the grid; a field left unset is the scenario's."""

    seconds: float | None = Field(None, gt=0)
    max_steps: int | None = Field(None, gt=0)

    @property
    def tag(self) -> str:
        parts = ([f"{self.seconds:g}s"] if self.seconds else []) + \
            ([f"{self.max_steps}steps"] if self.max_steps else [])
        return "-".join(parts) or "default"


class LLMSettings(_Strict):
    """The LLM endpoint and caps of LLM and CLI agents (autorl-gym run's --llm-* options)."""

    base_url: str | None = None
    max_requests: int | None = Field(None, gt=0)
    max_tokens: int | None = Field(None, gt=0)
    max_cost_usd: float | None = Field(None, gt=0)


class CellResources(_Strict):
    """What one cell asks of the Ray scheduler; unset: taken from the scenario."""

    cpus: float | None = Field(None, gt=0)
    gpus: float | None = Field(None, ge=0)
    memory_mb: int | None = Field(None, gt=0)


class SweepSpec(_Strict):
    name: str = Field(description="the sweep's name (its results folder by default)")
    scenarios: list[str] = Field(min_length=1, description="scenario ids or scenario YAML paths")
    agents: list[AgentEntry] = Field(min_length=1)
    drivers: list[str] = Field(default_factory=list,
                               description="driver models, crossed with every agent that takes one")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    budgets: list[BudgetOverride] = Field(default_factory=lambda: [BudgetOverride()], min_length=1)
    base_model: str | None = Field(None, description="overrides every scenario's base model")
    sandbox: str = Field("local", description="a registered sandbox kind")
    llm: LLMSettings = Field(default_factory=LLMSettings)
    resources: CellResources = Field(default_factory=CellResources)
    max_attempts: int = Field(3, ge=1, le=20, description="tries of a cell whose worker dies")
    results_dir: Path | None = Field(None, description="default: sweeps/<name> beside SWEEP.yaml")
    workspace_root: Path | None = Field(None, description="default: <results_dir>/.workspace")
    env: dict[str, str] = Field(default_factory=dict,
                                description="environment variables of every cell's worker")

    @field_validator("name")
    @classmethod
    def _name_form(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"{v!r}: letters, digits, '.', '_' and '-' only")
        return v

    @field_validator("sandbox")
    @classmethod
    def _sandbox_kind(cls, v: str) -> str:
        from autorl_gym.sandbox.registry import check_sandbox_kind

        return check_sandbox_kind(v)

    @field_validator("scenarios", "drivers", "seeds", "budgets")
    @classmethod
    def _distinct(cls, v: list[Any]) -> list[Any]:
        dupes = sorted({repr(x) for x in v if v.count(x) > 1})
        if dupes:
            raise ValueError(f"listed twice: {', '.join(dupes)}")
        return v

    @model_validator(mode="after")
    def _distinct_agents(self) -> SweepSpec:
        keys = [a.key for a in self.agents]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"agents: {', '.join(dupes)} listed twice; give each entry its own "
                             "'label'")
        return self


def _field_errors(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(top level)"
        msg = err.get("msg", "")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_sweep(data: Any, source: str = "sweep") -> SweepSpec:
    if not isinstance(data, dict):
        raise SweepError(f"{source}: expected a mapping of sweep fields, not {type(data).__name__}")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as e:
        raise SweepError(f"{source}: invalid sweep:\n{_field_errors(e)}") from None


def load_sweep(path: Path) -> SweepSpec:
    """Read SWEEP.yaml; relative paths in it (results_dir, workspace_root, scenario YAMLs) are
    taken from the file's folder."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SweepError(f"{path}: cannot be read ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise SweepError(f"{path}: not valid YAML ({e})") from None
    spec = parse_sweep(data, str(path))
    here = path.resolve().parent
    scenarios = [str(here / s) if s.endswith((".yaml", ".yml")) and not Path(s).is_absolute() else s
                 for s in spec.scenarios]
    results = here / (spec.results_dir or Path("sweeps") / spec.name)
    return spec.model_copy(update={
        "scenarios": scenarios, "results_dir": results,
        "workspace_root": here / spec.workspace_root if spec.workspace_root else None})
