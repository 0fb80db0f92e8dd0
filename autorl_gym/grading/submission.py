"""What a submission is: a full model directory or a LoRA adapter, resolved inside the
workspace only, and identified by a hash of its weights' contents."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel


class SubmissionError(ValueError):
    """The submission is refused; the message says what is missing or wrong."""


class SubmissionInfo(BaseModel):
    path: Path
    kind: Literal["full", "lora"]
    weight_files: list[Path]
    has_tokenizer: bool


SAFETENSORS_FULL = ("model.safetensors", "model.safetensors.index.json")
BIN_FULL = ("pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def resolve_in_workspace(model_path: str, workspace: Path) -> Path:
    """The real path of ``model_path``; refused if it, or anything in it, points out."""
    ws = workspace.resolve()
    raw = Path(model_path)
    candidate = raw if raw.is_absolute() else ws / raw
    real = Path(os.path.realpath(candidate))
    if not real.is_relative_to(ws):
        raise SubmissionError(
            f"model_path {model_path!r} resolves to {real}, outside the workspace; "
            "save your model under output/ (links pointing out of the workspace are refused)"
        )
    if not real.exists():
        raise SubmissionError(f"model_path {model_path!r} does not exist in the workspace")
    if not real.is_dir():
        raise SubmissionError(f"model_path {model_path!r} is a file; submit the model's directory")
    for dirpath, dirnames, filenames in os.walk(real):
        for name in filenames + dirnames:
            p = Path(dirpath) / name
            if p.is_symlink() and not Path(os.path.realpath(p)).is_relative_to(ws):
                raise SubmissionError(
                    f"{p.relative_to(ws)} is a link pointing outside the workspace "
                    f"({os.readlink(p)}); copy the file in instead"
                )
    return real


def _weights(d: Path, names: tuple[str, str], shard_glob: str) -> list[Path]:
    single, index = d / names[0], d / names[1]
    if single.is_file():
        return [single]
    if index.is_file():
        return sorted(d.glob(shard_glob))
    return []


def inspect_submission(path: Path) -> SubmissionInfo:
    """Classify a directory as a full model or a LoRA adapter, or refuse it."""
    has_tok = any((path / f).is_file() for f in TOKENIZER_FILES)
    if (path / "adapter_config.json").is_file():
        files = [p for p in (path / "adapter_model.safetensors", path / "adapter_model.bin")
                 if p.is_file()]
        if not files:
            raise SubmissionError(
                f"{path.name}: LoRA adapter has adapter_config.json but no weights: "
                "expected adapter_model.safetensors or adapter_model.bin (save with "
                "model.save_pretrained(dir) on the PeftModel)"
            )
        return SubmissionInfo(path=path, kind="lora", weight_files=files[:1], has_tokenizer=has_tok)
    if (path / "config.json").is_file():
        files = _weights(path, SAFETENSORS_FULL, "model-*.safetensors") or _weights(
            path, BIN_FULL, "pytorch_model-*.bin")
        if not files:
            raise SubmissionError(
                f"{path.name}: has config.json but no weights: expected model.safetensors, "
                "sharded model-*.safetensors with model.safetensors.index.json, or pytorch_model.bin"
            )
        return SubmissionInfo(path=path, kind="full", weight_files=files, has_tokenizer=has_tok)
    present = sorted(p.name for p in path.iterdir())[:12]
    raise SubmissionError(
        f"{path.name}: not a model: a full model needs config.json plus model.safetensors "
        "(or pytorch_model.bin); a LoRA adapter needs adapter_config.json plus "
        f"adapter_model.safetensors (or .bin). Found: {present or 'an empty directory'}"
    )


def _tensor_items(file: Path):
    import torch

    if file.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                yield key, f.get_tensor(key)
    else:
        state = torch.load(str(file), map_location="cpu", weights_only=True)
        yield from state.items()


@lru_cache(maxsize=64)
def _hash_cached(files: tuple[tuple[str, int, int], ...]) -> str:
    import torch

    digests: list[tuple[str, str]] = []
    for name, _size, _mtime in files:
        try:
            for key, t in _tensor_items(Path(name)):
                h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
                h.update(t.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
                digests.append((key, h.hexdigest()))
        except Exception as e:  # noqa: BLE001 - any unreadable weight file is the submitter's
            raise SubmissionError(
                f"{Path(name).name}: cannot read the weights ({e.__class__.__name__}: "
                f"{str(e)[:200]}); save them with save_pretrained"
            ) from e
    # A tensor stored twice (tied embeddings: lm_head.weight written out by one saver, dropped
    # by another) counts once, under the last key in name order that holds those contents.
    total = hashlib.sha256()
    seen: set[str] = set()
    for key, digest in sorted(digests, reverse=True):
        if digest not in seen:
            seen.add(digest)
            total.update(f"{key}={digest}\n".encode())
    return total.hexdigest()


def weights_hash(files: list[Path]) -> str:
    """Hash of the tensors (names, dtypes, shapes, bytes), independent of file layout."""
    try:
        stat_key = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    except OSError as e:
        raise SubmissionError(f"cannot read the weights: {e}") from e
    return _hash_cached(stat_key)


def model_dir_hash(model_dir: Path) -> str:
    return weights_hash(inspect_submission(model_dir).weight_files)
