"""HumanEval's 164 problems: loading, the split rule, and the splits materialized in the cache.

Sources, in order:

* ``$AUTORL_GYM_DATA_DIR/humaneval/HumanEval.jsonl.gz`` when ``AUTORL_GYM_DATA_DIR`` is set (the
  file of the openai/human-eval release: one object per line with ``task_id``, ``prompt``,
  ``canonical_solution``, ``test`` and ``entry_point``);
* otherwise the hub dataset (``openai/openai_humaneval``, split ``test``) through ``datasets``.

The split rule: problems sorted by task number; the last half (``HumanEval/82`` to
``HumanEval/163``) is the hidden test split; ``dev_size`` problems of the first half, drawn with
``random.Random(dev_seed).sample``, are the hidden dev split; the rest of the first half is
visible to the agent, with prompts, tests and canonical solutions.

Layout of ``$AUTORL_GYM_CACHE/humaneval/{key}/`` (``key`` hashes the data, the dev size and
seed, and the format version)::

    train/train.jsonl   the visible problems (mounted read-only as data/)
    hidden/dev.jsonl    the dev split (feedback during an episode; never mounted)
    hidden/test.jsonl   the test split (graded once, at the end; never mounted)
    manifest.json       source, sizes, task ids per split, and the digest of every file
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from autorl_gym.core.durable import atomic_write_json, atomic_write_text, exclusive, file_digest
from autorl_gym.core.paths import cache_dir
from autorl_gym.tasks.qa import SplitLoadError, jsonl_records

DATA_DIR_ENV = "AUTORL_GYM_DATA_DIR"
LOCAL_FILE = "humaneval/HumanEval.jsonl.gz"
HUB_ID = "openai/openai_humaneval"
FORMAT_VERSION = 1  # bump when the materialized layout or the split rule changes
SPLITS = ("train", "dev", "test")
TASK_ID_RE = re.compile(r"^HumanEval/(\d+)$")
FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


class HumanEvalProblem(BaseModel):
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str

    @property
    def number(self) -> int:
        m = TASK_ID_RE.match(self.task_id)
        assert m, self.task_id  # checked on load
        return int(m.group(1))


class HumanEvalManifest(BaseModel):
    source: str
    content_digest: str
    dev_size: int
    dev_seed: int
    sizes: dict[str, int]
    task_ids: dict[str, list[str]]   # split -> task ids, in file order
    file_digests: dict[str, str]     # path relative to the folder -> sha256


class HumanEvalAssets(BaseModel):
    root: Path
    train_dir: Path
    hidden_dir: Path
    manifest: HumanEvalManifest

    def split_path(self, split: str) -> Path:
        if split == "train":
            return self.train_dir / "train.jsonl"
        if split in ("dev", "test"):
            return self.hidden_dir / f"{split}.jsonl"
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")


def _problem(rec: object, where: str) -> HumanEvalProblem:
    if not isinstance(rec, dict):
        raise SplitLoadError(f"{where}: expected an object with fields {', '.join(FIELDS)}")
    bad = [f for f in FIELDS if not isinstance(rec.get(f), str) or not rec.get(f)]
    if bad:
        raise SplitLoadError(f"{where}: missing or non-string fields: {', '.join(bad)}")
    if not TASK_ID_RE.match(rec["task_id"]):
        raise SplitLoadError(f"{where}: task_id {rec['task_id']!r} is not like 'HumanEval/N'")
    if not rec["entry_point"].isidentifier():
        raise SplitLoadError(f"{where}: entry_point {rec['entry_point']!r} is not a Python name")
    return HumanEvalProblem(**{f: rec[f] for f in FIELDS})


def _check_unique(problems: list[HumanEvalProblem], where: str) -> None:
    seen: set[str] = set()
    for p in problems:
        if p.task_id in seen:
            raise SplitLoadError(f"{where}: task_id {p.task_id} appears twice")
        seen.add(p.task_id)
    if not problems:
        raise SplitLoadError(f"{where}: holds no problems")


def read_jsonl(path: Path) -> list[HumanEvalProblem]:
    """Problems from a ``.jsonl`` or ``.jsonl.gz`` file; errors name the path and the line."""
    if not path.is_file():
        raise SplitLoadError(f"{path}: HumanEval file not found")
    problems = [_problem(rec, where) for where, rec in jsonl_records(path)]
    _check_unique(problems, str(path))
    return problems


def local_file() -> Path | None:
    """``$AUTORL_GYM_DATA_DIR/humaneval/HumanEval.jsonl.gz`` when the variable is set."""
    root = os.environ.get(DATA_DIR_ENV)
    return Path(root).expanduser().resolve() / LOCAL_FILE if root else None


def load_hub(hub_id: str = HUB_ID) -> list[HumanEvalProblem]:
    """The problems from the Hugging Face hub (cached by ``datasets``)."""
    try:
        from datasets import load_dataset

        ds = load_dataset(hub_id, split="test")
    except Exception as e:  # noqa: BLE001 - any hub failure becomes one clear message
        raise SplitLoadError(
            f"HumanEval could not be loaded from the hub ({hub_id}): {e.__class__.__name__}: "
            f"{str(e)[:200]}; set {DATA_DIR_ENV} to a folder holding {LOCAL_FILE} instead") from e
    problems = [_problem(dict(rec), f"hub {hub_id} split test row {row}")
                for row, rec in enumerate(ds)]
    _check_unique(problems, f"hub {hub_id}")
    return problems


def load_problems(hub_id: str = HUB_ID) -> tuple[list[HumanEvalProblem], str]:
    """(problems sorted by task number, source description)."""
    path = local_file()
    if path is not None:
        problems, source = read_jsonl(path), str(path)
    else:
        problems, source = load_hub(hub_id), f"hub:{hub_id}"
    return sorted(problems, key=lambda p: p.number), source


def split_problems(problems: list[HumanEvalProblem], dev_size: int,
                   dev_seed: int) -> dict[str, list[HumanEvalProblem]]:
    """train / dev / test by the split rule of the module docstring (input sorted by number)."""
    half = len(problems) // 2
    first, test = problems[:half], problems[half:]
    if not 0 < dev_size < len(first):
        raise ValueError(f"dev_size must be between 1 and {len(first) - 1} (the first half holds "
                         f"{len(first)} problems), got {dev_size}")
    dev_idx = set(random.Random(dev_seed).sample(range(len(first)), dev_size))
    return {"train": [p for i, p in enumerate(first) if i not in dev_idx],
            "dev": [p for i, p in enumerate(first) if i in dev_idx],
            "test": test}


def _jsonl(problems: Iterable[HumanEvalProblem]) -> str:
    return "".join(json.dumps(p.model_dump()) + "\n" for p in problems)


def _content_digest(problems: list[HumanEvalProblem]) -> str:
    h = hashlib.sha256()
    for p in problems:
        h.update(json.dumps(p.model_dump(), sort_keys=True).encode())
    return h.hexdigest()


def _assets(out: Path, manifest: HumanEvalManifest) -> HumanEvalAssets:
    return HumanEvalAssets(root=out, train_dir=out / "train", hidden_dir=out / "hidden",
                           manifest=manifest)


def _intact(assets: HumanEvalAssets) -> bool:
    """Every split file is there with the digest its manifest records."""
    for rel, digest in assets.manifest.file_digests.items():
        path = assets.root / rel
        if not path.is_file() or file_digest(path) != digest:
            return False
    return set(assets.manifest.file_digests) == {
        str(assets.split_path(s).relative_to(assets.root)) for s in SPLITS}


def ensure_humaneval(dev_size: int, dev_seed: int, hub_id: str = HUB_ID,
                     root: Path | None = None) -> HumanEvalAssets:
    """Load HumanEval and write the three splits once (file-locked, atomic, with a manifest)."""
    problems, source = load_problems(hub_id)
    digest = _content_digest(problems)
    key = hashlib.sha256(f"{FORMAT_VERSION}|{digest}|{dev_size}|{dev_seed}".encode()).hexdigest()
    base = (root or cache_dir()) / "humaneval"
    out = base / key[:16]
    manifest_path = out / "manifest.json"
    base.mkdir(parents=True, exist_ok=True)
    with exclusive(base / f".{out.name}.lock"):
        if manifest_path.is_file():
            try:
                found = _assets(out, HumanEvalManifest.model_validate_json(
                    manifest_path.read_text()))
                if _intact(found):
                    return found
            except ValidationError:
                pass  # damaged: written again below
        splits = split_problems(problems, dev_size, dev_seed)
        assets = _assets(out, HumanEvalManifest(
            source=source, content_digest=digest, dev_size=dev_size, dev_seed=dev_seed,
            sizes={}, task_ids={}, file_digests={}))
        for split, items in splits.items():
            atomic_write_text(assets.split_path(split), _jsonl(items))
        assets.manifest.sizes = {s: len(v) for s, v in splits.items()}
        assets.manifest.task_ids = {s: [p.task_id for p in v] for s, v in splits.items()}
        assets.manifest.file_digests = {
            str(assets.split_path(s).relative_to(out)): file_digest(assets.split_path(s))
            for s in SPLITS}
        atomic_write_json(manifest_path, assets.manifest.model_dump(mode="json"))
        return assets


def humaneval_if_materialized(dev_size: int, dev_seed: int, hub_id: str = HUB_ID,
                              root: Path | None = None) -> HumanEvalAssets | None:
    """The materialized splits for this source and dev slice, if any (nothing loaded or written)."""
    base = (root or cache_dir()) / "humaneval"
    path = local_file()
    source = str(path) if path is not None else f"hub:{hub_id}"
    for manifest_path in sorted(base.glob("*/manifest.json")):
        try:
            m = HumanEvalManifest.model_validate_json(manifest_path.read_text())
        except (OSError, ValueError):
            continue
        if m.source == source and m.dev_size == dev_size and m.dev_seed == dev_seed:
            return _assets(manifest_path.parent, m)
    return None


def load_split(path: Path) -> list[HumanEvalProblem]:
    """One materialized split file (errors name path and line)."""
    return read_jsonl(path)
