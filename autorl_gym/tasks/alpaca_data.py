"""AlpacaEval's data: the visible instruction-tuning set and the hidden evaluation set.

Sources, in order:

* ``data.path`` (a local folder) or, when both folders exist, ``$AUTORL_GYM_DATA_DIR``, holding
  ``alpaca/alpaca_data.json`` (the Stanford Alpaca release: a JSON list of ``instruction``,
  ``input``, ``output``) and ``alpaca_eval/{config}.json`` (a file of the ``tatsu-lab/alpaca_eval``
  dataset repository: a JSON list of ``instruction``, ``output``, ``generator``, ``dataset``),
  optionally with ``alpaca_eval/df_gamed.csv`` (what the published LC GLM needs);
* otherwise the hub: ``tatsu-lab/alpaca`` (split train, through ``datasets``) and the files of the
  ``tatsu-lab/alpaca_eval`` dataset repository (through ``huggingface_hub``; its loading script
  is not run).

Layout of ``$AUTORL_GYM_CACHE/alpacaeval/{key}/`` (``key`` hashes the contents, the reference
config, the dev size and seed)::

    train/train.jsonl   the first 2,000 Alpaca rows minus any whose instruction is an evaluation
                        prompt (mounted read-only as data/)
    hidden/dev.jsonl    a seeded slice of the evaluation prompts with their reference outputs
    hidden/test.jsonl   the rest, graded once at the end
    hidden/df_gamed.csv when the source has it
    manifest.json       source, sizes, digests, the dev indices, the train rows dropped
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path

from pydantic import BaseModel, ValidationError

from autorl_gym.core.durable import atomic_write_json, atomic_write_text, exclusive
from autorl_gym.core.paths import cache_dir

TRAIN_HUB = "tatsu-lab/alpaca"
TRAIN_ROWS = 2000   # the original's visible train data: the first 2,000 rows
EVAL_HUB = "tatsu-lab/alpaca_eval"
EVAL_CONFIG = "alpaca_eval_gpt4_baseline"   # AlpacaEval 2.0: GPT-4 Turbo's reference outputs
GAMED_FILE = "df_gamed.csv"
DATA_DIR_ENV = "AUTORL_GYM_DATA_DIR"
FORMAT_VERSION = 1


class DataError(ValueError):
    """Data missing or malformed; the message names the file or hub dataset and the row."""


class TrainRow(BaseModel):
    instruction: str
    input: str = ""
    output: str


class EvalRow(BaseModel):
    index: int          # position in the evaluation set (what instruction difficulty is keyed by)
    instruction: str
    output: str         # the reference output
    generator: str = "reference"
    dataset: str = ""


class AlpacaManifest(BaseModel):
    source: str
    reference_config: str
    content_digest: str
    dev_size: int
    dev_seed: int
    sizes: dict[str, int]
    dev_indices: list[int]
    dropped_from_train: list[int]
    has_gamed_table: bool


class Sources(BaseModel):
    label: str
    train: list[TrainRow]
    evaluation: list[EvalRow]
    gamed_csv: bytes | None = None


def _rows(data: object, where: str, model: type[BaseModel], with_index: bool = False) -> list:
    if not isinstance(data, list):
        raise DataError(f"{where}: expected a JSON list of records")
    out = []
    for i, rec in enumerate(data):
        try:
            if not isinstance(rec, dict):
                raise TypeError("not an object")
            fields = {k: rec[k] for k in model.model_fields if k in rec}
            if with_index:
                fields["index"] = i
            out.append(model.model_validate(fields))
        except (ValidationError, TypeError) as e:
            need = ", ".join(k for k in model.model_fields if k != "index")
            raise DataError(f"{where} row {i}: expected an object with string fields {need} "
                            f"({str(e).splitlines()[0][:120]})") from None
    if not out:
        raise DataError(f"{where}: holds no records")
    return out


def _read_json(path: Path) -> object:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None


def local_folder(data_path: Path | None) -> Path | None:
    """``data.path``, else ``$AUTORL_GYM_DATA_DIR`` when it holds both folders, else None."""
    if data_path is not None:
        return data_path
    root = os.environ.get(DATA_DIR_ENV)
    if root:
        folder = Path(root).expanduser().resolve()
        if (folder / "alpaca").is_dir() and (folder / "alpaca_eval").is_dir():
            return folder
    return None


def load_local(folder: Path, config: str) -> Sources:
    train = _rows(_read_json(folder / "alpaca" / "alpaca_data.json"),
                  str(folder / "alpaca" / "alpaca_data.json"), TrainRow)[:TRAIN_ROWS]
    eval_path = folder / "alpaca_eval" / f"{config}.json"
    evaluation = _rows(_read_json(eval_path), str(eval_path), EvalRow, with_index=True)
    gamed = folder / "alpaca_eval" / GAMED_FILE
    return Sources(label=str(folder), train=train, evaluation=evaluation,
                   gamed_csv=gamed.read_bytes() if gamed.is_file() else None)


def load_hub(train_hub: str, eval_hub: str, config: str) -> Sources:
    hint = (f"; set data.path (or {DATA_DIR_ENV}) to a folder holding alpaca/alpaca_data.json "
            f"and alpaca_eval/{config}.json instead")
    try:
        from datasets import load_dataset

        ds = load_dataset(train_hub, split=f"train[:{TRAIN_ROWS}]")
        train = _rows(list(ds), f"hub {train_hub} split train", TrainRow)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - any hub failure becomes one clear message
        raise DataError(f"the Alpaca train data could not be loaded from the hub ({train_hub}): "
                        f"{e.__class__.__name__}: {str(e)[:200]}{hint}") from e
    try:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(eval_hub, f"{config}.json", repo_type="dataset"))
    except Exception as e:  # noqa: BLE001
        raise DataError(f"the AlpacaEval set could not be loaded from the hub ({eval_hub}, "
                        f"{config}.json): {e.__class__.__name__}: {str(e)[:200]}{hint}") from e
    evaluation = _rows(_read_json(path), f"hub {eval_hub} {config}.json", EvalRow, with_index=True)
    try:
        gamed = Path(hf_hub_download(eval_hub, GAMED_FILE, repo_type="dataset")).read_bytes()
    except Exception:  # noqa: BLE001 - optional: without it the LC GLM is the minimal one
        gamed = None
    return Sources(label=f"hub:{train_hub}+{eval_hub}:{config}", train=train, evaluation=evaluation,
                   gamed_csv=gamed)


def instruction_key(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _digest(src: Sources) -> str:
    h = hashlib.sha256()
    for r in src.train:
        h.update(json.dumps(["t", r.instruction, r.input, r.output]).encode())
    for e in src.evaluation:
        h.update(json.dumps(["e", e.instruction, e.output, e.generator]).encode())
    h.update(src.gamed_csv or b"")
    return h.hexdigest()


def _jsonl(rows: list[BaseModel]) -> str:
    return "".join(r.model_dump_json() + "\n" for r in rows)


def materialize(src: Sources, config: str, dev_size: int, dev_seed: int,
                root: Path | None = None) -> tuple[Path, AlpacaManifest]:
    """Write the visible and hidden splits once (file-locked, atomic); their folder and manifest."""
    n = len(src.evaluation)
    if not 0 < dev_size < n:
        raise DataError(f"data.dev_size {dev_size} must be between 1 and the evaluation set's "
                        f"size minus one ({n - 1})")
    digest = _digest(src)
    key = hashlib.sha256(f"{FORMAT_VERSION}|{digest}|{config}|{dev_size}|{dev_seed}".encode())
    base = (root or cache_dir()) / "alpacaeval"
    out = base / key.hexdigest()[:16]
    manifest_path = out / "manifest.json"
    base.mkdir(parents=True, exist_ok=True)
    with exclusive(base / f".{out.name}.lock"):
        if manifest_path.is_file():
            return out, AlpacaManifest.model_validate_json(manifest_path.read_text())
        shutil.rmtree(out, ignore_errors=True)  # a partial leftover; we hold the lock
        dev_idx = sorted(random.Random(dev_seed).sample(range(n), dev_size))
        dev_set = set(dev_idx)
        dev = [src.evaluation[i] for i in dev_idx]
        test = [e for e in src.evaluation if e.index not in dev_set]
        hidden = {instruction_key(e.instruction) for e in src.evaluation}
        train, dropped = [], []
        for i, r in enumerate(src.train):
            text = r.instruction + ("\n\n" + r.input if r.input else "")
            if instruction_key(text) in hidden or instruction_key(r.instruction) in hidden:
                dropped.append(i)
            else:
                train.append(r)
        atomic_write_text(out / "train" / "train.jsonl", _jsonl(train))
        (out / "train").chmod(0o755)  # the sandbox may run as another user
        (out / "train" / "train.jsonl").chmod(0o644)
        atomic_write_text(out / "hidden" / "dev.jsonl", _jsonl(dev))
        atomic_write_text(out / "hidden" / "test.jsonl", _jsonl(test))
        if src.gamed_csv is not None:
            (out / "hidden" / GAMED_FILE).write_bytes(src.gamed_csv)
        manifest = AlpacaManifest(
            source=src.label, reference_config=config, content_digest=digest, dev_size=dev_size,
            dev_seed=dev_seed, sizes={"train": len(train), "dev": len(dev), "test": len(test)},
            dev_indices=dev_idx, dropped_from_train=dropped, has_gamed_table=src.gamed_csv is not None)
        atomic_write_json(manifest_path, manifest.model_dump(mode="json"))
        return out, manifest


def find_materialized(source: str, config: str, dev_size: int, dev_seed: int,
                      root: Path | None = None) -> Path | None:
    """A folder already written for this source and split rule (nothing loaded or written)."""
    for manifest_path in sorted(((root or cache_dir()) / "alpacaeval").glob("*/manifest.json")):
        try:
            m = AlpacaManifest.model_validate_json(manifest_path.read_text())
        except ValueError:
            continue
        if (m.source, m.reference_config, m.dev_size, m.dev_seed) == (source, config, dev_size,
                                                                      dev_seed):
            return manifest_path.parent
    return None


def read_eval_split(path: Path) -> list[EvalRow]:
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(EvalRow.model_validate_json(line))
            except ValidationError as e:
                raise DataError(f"{path}:{lineno}: {str(e).splitlines()[0]}") from None
    return rows
