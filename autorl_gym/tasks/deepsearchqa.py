"""DeepSearchQA (``google/deepsearchqa``): hard research questions answered by searching in several
steps, graded by normalised exact match and then an LLM judge.

Data: the scenario's ``data.path`` (a CSV / JSONL / Parquet file in the dataset's own format, or
a folder holding ``DSQA-full.csv``), else ``$AUTORL_GYM_DATA_DIR/deepsearchqa/DSQA-full.csv``, else
the hub's ``data.hub_id`` (default ``google/deepsearchqa``), all read with ``datasets``. Columns:
``problem``, ``answer`` (required), ``problem_category``, ``answer_type``.

Split, as the original benchmark: the rows are shuffled with ``datasets``' ``shuffle(seed=42)``;
the first 100 are the visible training questions (with their answers), the next 200 are held out.
Where this differs: the held-out 200 are split into a seeded dev slice (``data.dev_size``, drawn
with ``data.dev_seed``) that gives the feedback during the episode, and the test split (the other
held-out questions) graded once at the end, so no feedback score is ever a final one (the
original gives feedback on the same questions it grades). A file of fewer than 300 rows keeps the
proportions (a third visible, the rest held out).

Search: the scenario's ``task_options.search`` (:class:`DeepSearchOptions`, a
:class:`~autorl_gym.interactive.search.SearchSpec`). ``bm25`` (the default) indexes a folder of documents
(``search.documents``, else ``$AUTORL_GYM_DATA_DIR/deepsearchqa/docs``), mounted read-only into the
sandbox, where the agent's code searches the same index in-process. ``web`` calls a web search
API from the host (the key in the host's environment); the sandbox reaches it through a unix
socket bridge (``$AUTORL_SEARCH_URL``, backend ``remote``), every query recorded on the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from autorl_gym.core.durable import atomic_write_text
from autorl_gym.core.family import register_family
from autorl_gym.core.paths import cache_dir
from autorl_gym.core.scenario import ScenarioError
from autorl_gym.interactive.search import SearchSpec
from autorl_gym.tasks.interactive import games_assets
from autorl_gym.tasks.search_qa import SearchQATask, search_cache_dir

if TYPE_CHECKING:
    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.family import GradeContext
    from autorl_gym.core.scenario import Scenario

HUB_ID = "google/deepsearchqa"
FILE_NAME = "DSQA-full.csv"
SHUFFLE_SEED = 42
TRAIN_SIZE = 100
HELD_OUT_SIZE = 200
REQUIRED = ("problem", "answer")
SEARCH_BACKENDS = ("bm25", "web")   # what a scenario names; inside the sandbox web is 'remote'


class DeepSearchOptions(BaseModel):
    """``task_options`` of a DeepSearchQA scenario."""

    model_config = ConfigDict(extra="forbid")

    search: SearchSpec = Field(default_factory=SearchSpec,
                               description="the search backend answering search[...]")


def data_file(scenario: Scenario) -> Path | None:
    """The local file of questions, if one is configured or present (else the hub)."""
    if scenario.data.path is not None:
        p = Path(scenario.data.path).expanduser()
        if p.is_dir():
            p = p / FILE_NAME
        if not p.is_file():
            raise ScenarioError(f"{scenario.id}: data.path {p} is not a file of questions")
        return p
    if os.environ.get("AUTORL_GYM_DATA_DIR"):
        p = Path(os.environ["AUTORL_GYM_DATA_DIR"]) / "deepsearchqa" / FILE_NAME
        if p.is_file():
            return p
    return None


def _load_dataset(scenario: Scenario, path: Path | None) -> Any:
    import datasets

    try:
        if path is not None:
            kind = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(
                path.suffix)
            if kind is None:
                raise ScenarioError(f"{path}: expected a .csv, .jsonl, .json or .parquet file")
            return datasets.load_dataset(kind, data_files=str(path), split="train")
        loaded = datasets.load_dataset(scenario.data.hub_id or HUB_ID, scenario.data.hub_config)
    except ScenarioError:
        raise
    except Exception as e:  # noqa: BLE001 - any loading failure becomes one clear message
        where = str(path) if path else f"the hub's {scenario.data.hub_id or HUB_ID}"
        raise ScenarioError(f"{scenario.id}: DeepSearchQA could not be loaded from {where} "
                            f"({e.__class__.__name__}: {str(e)[:300]}); set data.path or "
                            "$AUTORL_GYM_DATA_DIR/deepsearchqa/DSQA-full.csv") from e
    return loaded["eval"] if "eval" in loaded else loaded[next(iter(loaded))]


def load_questions(scenario: Scenario) -> tuple[list[dict[str, Any]], str]:
    """Every row as ``{"id", "question", "answer", "answer_type", "category"}`` in the original's
    shuffled order (``shuffle(seed=42)``), and where the rows came from."""
    path = data_file(scenario)
    ds = _load_dataset(scenario, path)
    where = str(path) if path else (scenario.data.hub_id or HUB_ID)
    missing = [c for c in REQUIRED if c not in ds.column_names]
    if missing:
        raise ScenarioError(f"{where}: no column {', '.join(missing)} (columns: "
                            f"{', '.join(ds.column_names)}; DeepSearchQA has problem, "
                            "problem_category, answer, answer_type)")
    ds = ds.add_column("row", list(range(len(ds)))).shuffle(seed=SHUFFLE_SEED)
    rows = []
    for r in ds:
        if not str(r.get("problem") or "").strip() or not str(r.get("answer") or "").strip():
            raise ScenarioError(f"{where}: row {r['row'] + 1} has an empty problem or answer")
        rows.append({"id": f"dsqa_{r['row']:04d}", "question": str(r["problem"]).strip(),
                     "answer": str(r["answer"]).strip(), "answer_type": str(r.get("answer_type") or ""),
                     "category": str(r.get("problem_category") or "")})
    return rows, where


def split_rows(rows: list[dict[str, Any]], dev_size: int, dev_seed: int) -> dict[str, list[dict]]:
    """train (the first 100), dev (a seeded slice of the next 200) and test (the rest of them)."""
    n_train = min(TRAIN_SIZE, len(rows) // 3)
    held = rows[n_train:n_train + min(HELD_OUT_SIZE, len(rows) - n_train)]
    if n_train < 1 or len(held) < 2:
        raise ScenarioError(f"DeepSearchQA needs at least 6 questions, got {len(rows)}")
    k = min(dev_size, len(held) // 2)
    dev_idx = set(random.Random(dev_seed).sample(range(len(held)), k))
    return {"train": rows[:n_train], "dev": [r for i, r in enumerate(held) if i in dev_idx],
            "test": [r for i, r in enumerate(held) if i not in dev_idx]}


def documents_dir(scenario: Scenario, spec: SearchSpec) -> Path:
    if spec.documents:
        p = Path(spec.documents).expanduser()
        if not p.is_absolute() and scenario.source_file is not None:
            p = scenario.source_file.parent / p
    elif os.environ.get("AUTORL_GYM_DATA_DIR"):
        p = Path(os.environ["AUTORL_GYM_DATA_DIR"]) / "deepsearchqa" / "docs"
    else:
        raise ScenarioError(f"{scenario.id}: the bm25 search backend needs a folder of documents: "
                            "set task_options.search.documents (or "
                            "$AUTORL_GYM_DATA_DIR/deepsearchqa/docs), or use task_options.search."
                            "backend: web")
    if not p.is_dir():
        raise ScenarioError(f"{scenario.id}: task_options.search.documents {p} is not a folder")
    return p.resolve()


def _write_split(dest: Path, rows: list[dict[str, Any]], spec: SearchSpec) -> None:
    (dest / "questions").mkdir(parents=True, exist_ok=True)
    for r in rows:
        atomic_write_text(dest / "questions" / f"{r['id']}.json", json.dumps(r, indent=1) + "\n")
    atomic_write_text(dest / "search.json", spec.model_dump_json(indent=2, exclude_none=True) + "\n")


@register_family
class DeepSearchQATask(SearchQATask):
    name: ClassVar[str] = "deepsearchqa"
    data_sources: ClassVar[tuple[str, ...]] = ("deepsearchqa",)
    description: ClassVar[str] = "DeepSearchQA: multi-step search, exact match then an LLM judge"
    options_model: ClassVar[type[BaseModel]] = DeepSearchOptions

    def search_spec(self, scenario: Scenario) -> SearchSpec:
        return self.options(scenario).search

    def check_scenario(self, scenario: Scenario) -> None:
        super().check_scenario(scenario)
        spec = self.search_spec(scenario)
        if spec.backend not in SEARCH_BACKENDS:
            raise ValueError(f"field 'task_options.search.backend': {spec.backend!r} is not a search "
                             f"backend of this family (choose from {', '.join(SEARCH_BACKENDS)})")
        if spec.backend == "web":
            from autorl_gym.search.web import PROVIDERS

            if spec.provider not in PROVIDERS:
                raise ValueError(f"field 'task_options.search.provider': unknown web search provider "
                                 f"{spec.provider!r} (choose from {', '.join(PROVIDERS)})")

    def describe_train_data(self, scenario: Scenario) -> str:
        return str(scenario.data.path) if scenario.data.path else f"{HUB_ID} (100 visible questions)"

    def _specs(self, scenario: Scenario) -> tuple[SearchSpec, SearchSpec, list[Path]]:
        """The search of the sandbox's train split, of the grader's splits, and extra mounts."""
        spec = self.search_spec(scenario)
        if spec.backend == "bm25":
            docs = documents_dir(scenario, spec)
            host = spec.model_copy(update={"documents": str(docs), "cache_dir": None})
            return host, host, [docs]
        if spec.backend == "web":
            inside = spec.model_copy(update={"backend": "remote", "documents": None, "cache_dir": None})
            return inside, spec.model_copy(update={"cache_dir": None}), []
        raise ScenarioError(f"{scenario.id}: task_options.search.backend {spec.backend!r}: use "
                            f"{' or '.join(SEARCH_BACKENDS)}")

    def resolve_assets(self, scenario: Scenario, base_model: str | None = None,
                       progress: bool = True) -> ScenarioAssets:
        rows, where = load_questions(scenario)
        splits = split_rows(rows, scenario.data.dev_size or 40, scenario.data.dev_seed)
        inside, host, mounts = self._specs(scenario)
        key = hashlib.sha256(json.dumps([splits, inside.model_dump(), host.model_dump()],
                                        sort_keys=True).encode()).hexdigest()[:16]
        root = cache_dir() / "deepsearchqa" / key
        if not (root / "complete").is_file():
            _write_split(root / "train", splits["train"], inside)
            for split in ("dev", "test"):
                _write_split(root / "hidden" / split, splits[split], host)
            atomic_write_text(root / "complete", json.dumps({"source": where, **{
                k: len(v) for k, v in splits.items()}}) + "\n")
        assets = games_assets(scenario, root / "train", {s: root / "hidden" / s for s in ("dev", "test")},
                              "data", mounts, base_model, progress)
        if host.backend == "web":
            from autorl_gym.search.bridge import bridge_for

            bridge = bridge_for(host, search_cache_dir())
            assets.bridges.append(bridge.unix_bridge)
            assets.sandbox_env.update(bridge.sandbox_env)
        return assets

    def assets_if_present(self, scenario: Scenario) -> ScenarioAssets | None:
        from autorl_gym.core.assets import base_model_present

        if not base_model_present(scenario.base_model):
            return None
        try:
            if data_file(scenario) is None:
                return None
            return self.resolve_assets(scenario, progress=False)
        except (ScenarioError, OSError):
            return None

    def baseline_settings(self, ctx: GradeContext) -> dict[str, Any]:
        search = self.search_spec(ctx.scenario)
        return super().baseline_settings(ctx) | {
            "search": search.model_dump(exclude={"cache_dir", "timeout_s", "api_key_env"})}
