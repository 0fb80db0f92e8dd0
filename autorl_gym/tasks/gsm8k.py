"""GSM8K: load the train and test splits, carve the hidden dev slice out of train, and
materialize the three splits in the grader's cache.

Sources, in order:

* ``$AUTORL_GYM_DATA_DIR/gsm8k/{train,test}.jsonl`` when ``AUTORL_GYM_DATA_DIR`` is set (the
  layout of the original ``grade_school_math/data`` release: one object per line with
  ``question`` and ``answer`` ending in ``#### N``);
* otherwise the hub dataset (``openai/gsm8k``, config ``main``) through ``datasets``.

Layout of ``$AUTORL_GYM_CACHE/gsm8k/{key}/``, where ``key`` hashes the data's contents, the dev
size and the dev seed::

    train/train.jsonl   the visible train split: train minus the dev slice, minus any problem
                        whose question also appears in dev or test (mounted read-only as data/)
    hidden/dev.jsonl    the dev slice (feedback during an episode; never mounted)
    hidden/test.jsonl   the 1,319 test problems (graded once, at the end; never mounted)
    manifest.json       source, sizes, digests, and the problems dropped from train as duplicates
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from autorl_gym.core.answers import reference_answer
from autorl_gym.core.durable import atomic_write_json, atomic_write_text, exclusive
from autorl_gym.core.family import register_family
from autorl_gym.core.paths import cache_dir
from autorl_gym.tasks.qa import (
    Problem,
    QATask,
    SplitLoadError,
    hidden_jsonl_assets,
    jsonl_text,
    load_jsonl_split,
)

if TYPE_CHECKING:
    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.scenario import DataSpec, Scenario

HUB_ID = "openai/gsm8k"
HUB_CONFIG = "main"

DATA_DIR_ENV = "AUTORL_GYM_DATA_DIR"
FORMAT_VERSION = 1  # bump when the materialized layout or the split rule changes


class Gsm8kManifest(BaseModel):
    source: str
    content_digest: str
    dev_size: int
    dev_seed: int
    sizes: dict[str, int]
    dev_indices: list[int]            # indices into the original train split
    dropped_from_train: list[int]     # train problems whose question is also in dev or test


class Gsm8kAssets(BaseModel):
    root: Path
    train_dir: Path
    hidden_dir: Path
    manifest: Gsm8kManifest


def local_data_dir() -> Path | None:
    """``$AUTORL_GYM_DATA_DIR/gsm8k`` when the variable is set, else None (use the hub)."""
    root = os.environ.get(DATA_DIR_ENV)
    return Path(root).expanduser().resolve() / "gsm8k" if root else None


def load_local(folder: Path) -> dict[str, list[Problem]]:
    """train and test from a local folder; a missing or malformed file names path and line."""
    if not folder.is_dir():
        raise SplitLoadError(
            f"{folder}: GSM8K folder not found ({DATA_DIR_ENV} must hold gsm8k/train.jsonl and "
            "gsm8k/test.jsonl)")
    return {split: load_jsonl_split(folder / f"{split}.jsonl") for split in ("train", "test")}


def load_hub(hub_id: str, config: str) -> dict[str, list[Problem]]:
    """train and test from the Hugging Face hub (cached by ``datasets``)."""
    try:
        from datasets import load_dataset

        ds = load_dataset(hub_id, config)
    except Exception as e:  # noqa: BLE001 - any hub failure becomes one clear message
        raise SplitLoadError(
            f"GSM8K could not be loaded from the hub ({hub_id}, config {config}): "
            f"{e.__class__.__name__}: {str(e)[:200]}; set {DATA_DIR_ENV} to a folder holding "
            "gsm8k/train.jsonl and gsm8k/test.jsonl instead") from e
    out: dict[str, list[Problem]] = {}
    for split in ("train", "test"):
        if split not in ds:
            raise SplitLoadError(f"hub dataset {hub_id} ({config}) has no {split!r} split")
        problems = []
        for row, rec in enumerate(ds[split]):
            where = f"hub {hub_id}:{config} split {split} row {row}"
            if not isinstance(rec.get("question"), str) or not isinstance(rec.get("answer"), str):
                raise SplitLoadError(f"{where}: expected string fields 'question' and 'answer'")
            try:
                gold = reference_answer(rec["answer"])
            except ValueError as e:
                raise SplitLoadError(f"{where}: {e}") from None
            problems.append(Problem(index=row, question=rec["question"], answer=rec["answer"],
                                    gold=gold))
        out[split] = problems
    return out


def question_key(question: str) -> str:
    """Questions compared case- and whitespace-insensitively."""
    return re.sub(r"\s+", " ", question).strip().lower()


def split_dev(train: list[Problem], test: list[Problem], dev_size: int,
              seed: int) -> tuple[list[Problem], list[Problem], list[int], list[int]]:
    """(visible train, dev, dev indices, dropped train indices).

    The dev slice is ``dev_size`` train problems drawn with ``random.Random(seed)``; the visible
    train split is the rest, in the original order, without any problem whose question also
    appears in dev or test.
    """
    if dev_size >= len(train):
        raise ValueError(f"dev_size {dev_size} must be smaller than the train split ({len(train)})")
    dev_idx = sorted(random.Random(seed).sample(range(len(train)), dev_size))
    dev = [train[i] for i in dev_idx]
    hidden = {question_key(p.question) for p in dev + test}
    dev_set = set(dev_idx)
    visible, dropped = [], []
    for i, p in enumerate(train):
        if i in dev_set:
            continue
        if question_key(p.question) in hidden:
            dropped.append(i)
            continue
        visible.append(p)
    return visible, dev, dev_idx, dropped


def _digest(splits: dict[str, list[Problem]]) -> str:
    h = hashlib.sha256()
    for split in ("train", "test"):
        for p in splits[split]:
            h.update(json.dumps([split, p.question, p.answer]).encode())
    return h.hexdigest()


def ensure_gsm8k(spec: DataSpec, root: Path | None = None) -> Gsm8kAssets:
    """Load GSM8K and write the visible and hidden splits once (file-locked, atomic)."""
    folder = local_data_dir()
    if folder is not None:
        splits, source = load_local(folder), str(folder)
    else:
        hub_id, hub_config = spec.hub_id or HUB_ID, spec.hub_config or HUB_CONFIG
        splits, source = load_hub(hub_id, hub_config), f"hub:{hub_id}:{hub_config}"
    digest = _digest(splits)
    key = hashlib.sha256(f"{FORMAT_VERSION}|{digest}|{spec.dev_size}|{spec.dev_seed}".encode())
    base = (root or cache_dir()) / "gsm8k"
    out = base / key.hexdigest()[:16]
    assets = Gsm8kAssets(root=out, train_dir=out / "train", hidden_dir=out / "hidden",
                         manifest=Gsm8kManifest(source=source, content_digest=digest,
                                                dev_size=spec.dev_size, dev_seed=spec.dev_seed,
                                                sizes={}, dev_indices=[], dropped_from_train=[]))
    manifest_path = out / "manifest.json"
    base.mkdir(parents=True, exist_ok=True)
    with exclusive(base / f".{out.name}.lock"):
        if manifest_path.is_file():
            assets.manifest = Gsm8kManifest.model_validate_json(manifest_path.read_text())
            return assets
        visible, dev, dev_idx, dropped = split_dev(splits["train"], splits["test"],
                                                   spec.dev_size, spec.dev_seed)
        atomic_write_text(assets.train_dir / "train.jsonl", jsonl_text(visible))
        atomic_write_text(assets.hidden_dir / "dev.jsonl", jsonl_text(dev))
        atomic_write_text(assets.hidden_dir / "test.jsonl", jsonl_text(splits["test"]))
        assets.manifest = Gsm8kManifest(
            source=source, content_digest=digest, dev_size=spec.dev_size,
            dev_seed=spec.dev_seed,
            sizes={"train": len(visible), "dev": len(dev), "test": len(splits["test"])},
            dev_indices=dev_idx, dropped_from_train=dropped)
        atomic_write_json(manifest_path, assets.manifest.model_dump(mode="json"))
        return assets


def gsm8k_if_materialized(spec: DataSpec, root: Path | None = None) -> Gsm8kAssets | None:
    """The materialized splits if any exist for this spec (nothing is loaded or written)."""
    base = (root or cache_dir()) / "gsm8k"
    folder = local_data_dir()
    source = str(folder) if folder is not None else \
        f"hub:{spec.hub_id or HUB_ID}:{spec.hub_config or HUB_CONFIG}"
    for manifest_path in sorted(base.glob("*/manifest.json")):
        try:
            m = Gsm8kManifest.model_validate_json(manifest_path.read_text())
        except ValueError:
            continue
        if m.source == source and m.dev_size == spec.dev_size and m.dev_seed == spec.dev_seed:
            out = manifest_path.parent
            return Gsm8kAssets(root=out, train_dir=out / "train", hidden_dir=out / "hidden",
                               manifest=m)
    return None


@register_family
class Gsm8kTask(QATask):
    name: ClassVar[str] = "gsm8k"
    data_sources: ClassVar[tuple[str, ...]] = ("gsm8k",)
    description: ClassVar[str] = "GSM8K grade-school math, strict '#### N' answers"

    def describe_train_data(self, scenario: Scenario) -> str:
        d = scenario.data
        hub = f"{d.hub_id or HUB_ID}:{d.hub_config or HUB_CONFIG}"
        return f"{hub} (train minus a {d.dev_size}-problem dev slice)"

    def resolve_assets(self, scenario: Scenario, base_model: str | None = None,
                       progress: bool = True) -> ScenarioAssets:
        from autorl_gym.core.scenario import ScenarioError

        try:
            gsm = ensure_gsm8k(scenario.data)
        except (SplitLoadError, ValueError) as e:
            raise ScenarioError(f"{scenario.id}: {e}") from e
        return hidden_jsonl_assets(scenario, gsm.train_dir, gsm.hidden_dir, base_model, progress)

    def assets_if_present(self, scenario: Scenario) -> ScenarioAssets | None:
        from autorl_gym.core.assets import base_model_present
        from autorl_gym.core.scenario import ScenarioError

        if gsm8k_if_materialized(scenario.data) is None or not base_model_present(scenario.base_model):
            return None
        try:
            return self.resolve_assets(scenario, progress=False)
        except ScenarioError:
            return None
