"""The cells of a sweep: the grid expanded (one episode each) with a stable id, what each asks
of the scheduler, and the folder layout that makes a sweep resumable.

A cell's results folder ``cells/<id>/`` appears in one rename when its episode has ended, with
``cell.json`` in it; an attempt runs in ``cells/.partial/<id>.a<N>/`` and one that died or failed
is kept in ``cells/.failed/``. Hidden folders are never read by the leaderboard."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autorl_gym.core.run_folder import RunFolder
from autorl_gym.sweep.spec import BudgetOverride, CellResources, SweepError, SweepSpec

CELL_FILE = "cell.json"
_SLUG_RE = re.compile(r"[^A-Za-z0-9._-]+")


def _slug(text: str) -> str:
    return _SLUG_RE.sub("-", text).strip("-")[:60] or "x"


class Resources(BaseModel):
    model_config = ConfigDict(frozen=True)

    cpus: float
    gpus: float
    memory_mb: int


class Cell(BaseModel):
    """One episode of the grid."""

    model_config = ConfigDict(frozen=True)

    scenario: str = Field(description="the scenario's id")
    scenario_source: str = Field(description="as the sweep names it: an id or a YAML path")
    agent: str
    agent_label: str
    options: dict[str, Any] = Field(default_factory=dict)
    driver: str | None = None
    seed: int
    budget: BudgetOverride = Field(default_factory=BudgetOverride)
    base_model: str | None = None
    sandbox: str = "local"
    resources: Resources

    def identity(self) -> dict[str, Any]:
        """What makes a cell this cell (not how it is scheduled)."""
        return self.model_dump(mode="json", exclude={"scenario_source", "resources"})

    @property
    def id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()
        parts = [self.scenario, self.agent_label, self.driver or "nodriver", self.budget.tag,
                 f"s{self.seed}"]
        return "__".join(_slug(p) for p in parts) + f"__{digest[:8]}"


def scenario_resources(scenario: Any, override: CellResources) -> Resources:
    """A cell's demand: the sandbox's CPU cap (1 when uncapped), its GPUs (1 for 'all'; at least 1
    for a vllm or cuda grader) and the larger of the sandbox's and the grader's memory caps; the
    sweep's ``resources`` win. Ray hides the GPUs from a task that asks for none, so a sweep
    whose agents should train on a GPU sets ``resources.gpus``."""
    from autorl_gym.sandbox.docker.gpus import parse_gpus

    req = parse_gpus(scenario.sandbox.gpus)
    gpus = 0.0 if req is None else float(len(req.device_ids) if req.device_ids else max(req.count, 1))
    g = scenario.grader
    if g.backend == "vllm" or (g.backend == "lm_eval" and g.lm_eval_model == "vllm") or \
            g.device.startswith("cuda"):
        gpus = max(gpus, 1.0)  # the grader's own GPU (device "auto" asks for none)
    return Resources(
        cpus=override.cpus or scenario.sandbox.cpus or 1.0,
        gpus=override.gpus if override.gpus is not None else gpus,
        memory_mb=override.memory_mb or max(scenario.sandbox.memory_mb, scenario.grader.memory_mb))


def _drivers(spec: SweepSpec, n: int, agent_options: dict[str, Any]) -> list[str | None]:
    entry = spec.agents[n]
    takes_driver = "llm_model" in agent_options
    if entry.drivers is not None:
        if not takes_driver:
            raise SweepError(f"agents.{n}.drivers: agent {entry.name!r} takes no driver model "
                             "(its agent.yaml has no llm_model option)")
        return list(entry.drivers)
    if not takes_driver:
        return [None]
    return list(spec.drivers) or [agent_options["llm_model"]]


def expand(spec: SweepSpec) -> list[Cell]:
    """Every cell of the grid, in a stable order; a SweepError names the field that is wrong."""
    import autorl_gym  # noqa: F401 - registers the scenarios
    from autorl_gym.agents.spec import AgentError, load_agent_spec
    from autorl_gym.core.scenario import ScenarioError
    from autorl_gym.scenarios.catalog import get_scenario

    scenarios = []
    for n, source in enumerate(spec.scenarios):
        try:
            scenarios.append((source, get_scenario(source)))
        except (ScenarioError, ValueError, OSError) as e:
            raise SweepError(f"scenarios.{n}: {e}") from None
    agents = []
    for n, entry in enumerate(spec.agents):
        try:
            agent_spec, _folder = load_agent_spec(entry.name)
        except AgentError as e:
            raise SweepError(f"agents.{n}.name: {e}") from None
        agents.append((entry, _drivers(spec, n, agent_spec.options)))
    cells = [Cell(scenario=sc.id, scenario_source=source, agent=entry.name, agent_label=entry.key,
                  options=entry.options, driver=driver, seed=seed, budget=budget,
                  base_model=spec.base_model, sandbox=spec.sandbox,
                  resources=scenario_resources(sc, spec.resources))
             for source, sc in scenarios for entry, drivers in agents for driver in drivers
             for budget in spec.budgets for seed in spec.seeds]
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):  # two scenario sources with one id
        raise SweepError("scenarios: two entries are the same scenario (one id)")
    return cells


# ---------------------------------------------------------------------------- on disk

class CellRecord(BaseModel):
    """``cell.json``: the cell, how its last attempt went, where its run folder is."""

    cell: Cell
    cell_id: str
    status: Literal["running", "done", "error", "died"]
    attempt: int
    started_at: datetime
    ended_at: datetime | None = None
    seconds: float | None = None
    run_dir: str | None = Field(None, description="the episode's results folder, relative")
    episode_status: str | None = None
    reason: str | None = None
    host: str | None = None


class SweepLayout:
    """Where a sweep's files are."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.cells = self.root / "cells"
        self.partial = self.cells / ".partial"
        self.failed = self.cells / ".failed"
        self.events = self.root / "events.jsonl"
        self.lock = self.root / ".sweep.lock"

    def final(self, cell_id: str) -> Path:
        return self.cells / cell_id

    def attempt_dir(self, cell_id: str, attempt: int) -> Path:
        return self.partial / f"{cell_id}.a{attempt}"

    def make(self) -> None:
        for d in (self.partial, self.failed):
            d.mkdir(parents=True, exist_ok=True)

    def record(self, folder: Path) -> CellRecord | None:
        try:
            return CellRecord.model_validate_json((folder / CELL_FILE).read_bytes())
        except (OSError, ValidationError, ValueError):
            return None

    def is_complete(self, cell_id: str) -> bool:
        """A cell is done when its final folder holds a done cell.json whose run folder has the
        episode's feedback.json (anything less runs again)."""
        folder = self.final(cell_id)
        rec = self.record(folder)
        return bool(rec and rec.status == "done" and rec.cell_id == cell_id and rec.run_dir
                    and (folder / rec.run_dir / RunFolder.FEEDBACK).is_file())

    def log_event(self, **fields: Any) -> None:
        line = json.dumps({"time": datetime.now(UTC).isoformat(), **fields}, default=str)
        with self.events.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def events_of(self, cell_id: str) -> list[dict[str, Any]]:
        if not self.events.exists():
            return []
        out = []
        for line in self.events.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("cell_id") == cell_id:
                out.append(ev)
        return out
