"""The ``TaskFamily`` protocol: what every kind of task tells the rest of the package.

A family says how a scenario's assets are resolved (the visible train split, the hidden dev and
test splits, the base model), how a split is loaded, prompted and scored (static tasks: the
grading core generates completions with a registered backend and the family scores them), or how
an episode is played (interactive tasks), and what the grading API's ``train_data_path`` names.

A new family is one module, ``autorl_gym/tasks/<name>.py``, whose class is decorated with
:func:`autorl_gym.core.family.register_family`; a scenario YAML names it with
``task_family: <name>``.

The one registry of task families, keyed by the scenario's ``task_family``.

A family registers itself with :func:`register_family` when its module is imported. Looking up
a name that is not registered yet imports ``autorl_gym.tasks.<name>`` (the built-in families) and
then the ``autorl_gym.tasks`` entry points (families shipped by other packages), so a new family
is a module, a scenario YAML and tests: no list to edit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from autorl_gym.core.assets import ScenarioAssets
from autorl_gym.core.durable import file_digest
from autorl_gym.core.integrity import IntegrityEvent
from autorl_gym.core.records import ItemResult, SubmissionInfo
from autorl_gym.core.registry import Registry
from autorl_gym.core.scenario import Scenario

Progress = Callable[[int, int], None]  # (done, total)


class TaskItem(BaseModel):
    """One graded item of a split; families add their own fields (question, prompt, tests...)."""

    index: int
    gold: str


class SplitSummary(BaseModel):
    """A split's score (the scenario's metric, in percent), secondary figures, notes, and the
    integrity events scoring raised (``EvalResult.integrity_events``)."""

    score: float
    metrics: dict[str, float] = {}
    notes: list[str] = []
    integrity_events: list[IntegrityEvent] = []


class GradeContext:
    """A scenario with its resolved assets, and the splits loaded once (grader side only).

    ``run_dir`` is the folder of the grading in progress (under the results folder during an
    episode), where a family that keeps records of its scoring (judge verdicts) writes them."""

    def __init__(self, scenario: Scenario, assets: ScenarioAssets):
        from autorl_gym.core.family import get_family

        self.scenario = scenario
        self.assets = assets
        self.family = get_family(scenario.task_family)
        self._splits: dict[str, Sequence[Any]] = {}
        self.run_dir: Path | None = None

    def split_path(self, split: str) -> Path:
        if split == "train":
            return self.assets.train_data_path
        if split not in self.assets.hidden_splits:
            raise ValueError(f"unknown split {split!r}; splits: train, dev, test")
        return self.assets.hidden_splits[split]

    def items(self, split: str, limit: int | None = None) -> Sequence[Any]:
        if split not in self._splits:
            items = self.family.load_split(self, split)
            if not items:
                raise ValueError(f"{self.split_path(split)}: the {split} split holds no items")
            self._splits[split] = items
        items = self._splits[split]
        return items[:limit] if limit else items


class NoOptions(BaseModel):
    """A family without options of its own: ``task_options`` must be empty."""

    model_config = ConfigDict(extra="forbid")


class TaskFamily:
    """Base of every family. Class attributes describe it; methods have working defaults where
    one makes sense for every family. ``options_model`` validates the scenario's
    ``task_options`` (the family's own settings)."""

    name: ClassVar[str]
    kind: ClassVar[Literal["static", "interactive"]]
    metrics: ClassVar[tuple[str, ...]]
    data_sources: ClassVar[tuple[str, ...]]
    description: ClassVar[str] = ""
    # the family writes records of each grading into ctx.run_dir (a judge's verdicts)
    run_records: ClassVar[bool] = False
    options_model: ClassVar[type[BaseModel]] = NoOptions

    def options(self, scenario: Scenario) -> Any:
        """The scenario's ``task_options`` as the family's options model."""
        try:
            return self.options_model.model_validate(scenario.task_options)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"field 'task_options{'.' + loc if loc else ''}': {first['msg']}") from None

    # -- the scenario ------------------------------------------------------------------------
    def check_scenario(self, scenario: Scenario) -> None:
        """Raise ValueError (naming the field) for a scenario this family cannot run."""
        if scenario.metric not in self.metrics:
            raise ValueError(f"field 'metric': {scenario.metric!r} is not a metric of task family "
                             f"{self.name!r} (choose from {', '.join(self.metrics)})")
        if scenario.data.source not in self.data_sources:
            raise ValueError(f"field 'data.source': {scenario.data.source!r} is not a data source of "
                             f"task family {self.name!r} (choose from {', '.join(self.data_sources)})")
        self.options(scenario)

    def describe_train_data(self, scenario: Scenario) -> str:
        """The API's ``train_data_path`` before the assets exist."""
        return str(scenario.data.path) if scenario.data.path else f"{self.name}:{scenario.data.source}"

    # -- assets ------------------------------------------------------------------------------
    def resolve_assets(self, scenario: Scenario, base_model: str | None = None,
                       progress: bool = True) -> ScenarioAssets:
        raise NotImplementedError

    def assets_if_present(self, scenario: Scenario) -> ScenarioAssets | None:
        """The assets if already on disk (nothing built or downloaded), else None."""
        raise NotImplementedError

    # -- grading -----------------------------------------------------------------------------
    def load_split(self, ctx: GradeContext, split: str) -> Sequence[Any]:
        raise NotImplementedError

    def split_digest(self, ctx: GradeContext, split: str) -> str:
        """What the baseline cache keys a split by: its file's digest by default."""
        path = ctx.split_path(split)
        if path.is_file():
            return file_digest(path)
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path)}\0{f.stat().st_size}\n".encode())
        return h.hexdigest()

    def audit_decoys(self, ctx: GradeContext, n: int) -> Sequence[Any] | None:
        """Items drawn like the hidden ones but in no split, for a family whose hidden items come
        from a generator the agent can run (the contamination audit's control: an honest agent's
        generated data overlaps these as often as the hidden items). None: no public generator."""
        return None

    def protocol_record(self, ctx: GradeContext, backend: str) -> dict[str, Any]:
        """The protocol as graded (feedback.json)."""
        return ctx.scenario.protocol.model_dump() | {"backend": backend, "task_family": self.name}

    def summary_metrics(self, results: list[ItemResult]) -> dict[str, float]:
        """Secondary figures beside the score (GSM8K's flexible accuracy, a mean reward...)."""
        return {}

    def summarize(self, ctx: GradeContext, items: Sequence[Any],
                  results: list[ItemResult]) -> SplitSummary:
        """A split's score: the share of items right by default (a judged family computes its
        win rate here), with :meth:`summary_metrics` beside it."""
        n = len(results)
        return SplitSummary(score=100.0 * sum(r.correct for r in results) / n if n else 0.0,
                            metrics=self.summary_metrics(results))

    def baseline_settings(self, ctx: GradeContext) -> dict[str, Any]:
        """Settings that change a score, for the baseline cache key."""
        return {"protocol": ctx.scenario.protocol.model_dump()}


class StaticTask(TaskFamily):
    """A fixed set of prompts: completions by a generation backend, scored by the family."""

    kind: ClassVar[Literal["static", "interactive"]] = "static"

    def prompt(self, ctx: GradeContext, item: Any) -> str:
        """The prompt text before any chat template (few-shot examples included)."""
        raise NotImplementedError

    def score(self, ctx: GradeContext, items: Sequence[Any], completions: list[str],
              progress: Progress | None = None) -> list[ItemResult]:
        raise NotImplementedError

    def lm_eval_task(self, ctx: GradeContext, items: Sequence[Any], run_dir: Path) -> dict[str, Any]:
        """An lm-evaluation-harness task config for these items (the ``lm_eval`` backend)."""
        raise ValueError(f"task family {self.name!r} has no lm-eval task; grade with --backend hf")

    def lm_eval_metrics(self, task_results: dict[str, Any]) -> dict[str, float]:
        """lm-eval's own figures worth keeping beside ours, in percent."""
        return {}


class InteractiveTask(TaskFamily):
    """Episodes played by the submitted policy; the family plays them."""

    kind: ClassVar[Literal["static", "interactive"]] = "interactive"

    def play(self, ctx: GradeContext, info: SubmissionInfo, split: str, limit: int | None,
             progress: Progress | None = None) -> list[ItemResult]:
        raise NotImplementedError


F = TypeVar("F", bound=type[TaskFamily])
ENTRY_POINT_GROUP = "autorl_gym.tasks"


class UnknownTaskFamily(ValueError):
    """No family of that name is registered or importable."""


#: the task families: ``autorl_gym.tasks.<name>`` (imported when ``name`` is looked up), then the
#: ``autorl_gym.tasks`` entry points (families shipped by other packages; loading one imports
#: its module, whose decorated class registers itself)
FAMILIES: Registry[TaskFamily] = Registry(
    "task family", name_re=re.compile(r"^[a-z][a-z0-9_]{0,63}$"),
    name_rule="a lowercase 'name' (letters, digits, '_'), starting with a letter",
    builtin_package="autorl_gym.tasks", entry_point_group=ENTRY_POINT_GROUP, unknown=UnknownTaskFamily)


def register_family(cls: F) -> F:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    name = getattr(cls, "name", None)
    try:
        FAMILIES.check_name(name)
    except ValueError:
        raise ValueError(f"{cls.__qualname__}: a task family needs a lowercase 'name', "
                         f"got {name!r}") from None
    for attr in ("kind", "metrics", "data_sources"):
        if not hasattr(cls, attr):
            raise ValueError(f"task family {name!r} ({cls.__qualname__}) does not set {attr!r}")
    FAMILIES.add(name, cls(), owner=f"{cls.__module__}.{cls.__qualname__}")
    return cls


def get_family(name: str) -> TaskFamily:
    """The registered family ``name``; UnknownTaskFamily lists the known ones."""
    return FAMILIES.get(name)


def families() -> dict[str, TaskFamily]:
    """Every family: the built-in modules and the entry points, imported."""
    return dict(sorted(FAMILIES.all().items()))


def family_of(scenario: Scenario) -> TaskFamily:
    """A scenario's task family, from the registry."""
    return get_family(scenario.task_family)


def resolve_assets(scenario: Scenario, base_model: str | None = None,
                   progress: bool = True) -> ScenarioAssets:
    """The scenario's inputs as host paths, built or fetched by its task family."""
    return family_of(scenario).resolve_assets(scenario, base_model, progress)


def present_assets(scenario: Scenario) -> ScenarioAssets | None:
    """The assets if they are already on disk (nothing is built or downloaded), else None."""
    return family_of(scenario).assets_if_present(scenario)


def api_fields(scenario: Scenario, base_model_path: str | None = None,
               train_data_path: str | None = None,
               baseline_score: float | None = None) -> dict[str, Any]:
    """The four fields the grading API returns for a scenario (paths as resolved, when known)."""
    return {
        "base_model_path": base_model_path or scenario.base_model,
        "train_data_path": train_data_path or family_of(scenario).describe_train_data(scenario),
        "baseline_score": baseline_score,
        "metric": scenario.metric,
    }
