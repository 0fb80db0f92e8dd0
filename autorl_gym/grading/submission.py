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


# --------------------------------------------------------------------------- compatibility
def _read_json(path: Path) -> dict:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SubmissionError(f"{path.parent.name}/{path.name} is not readable JSON ({e})") from e
    if not isinstance(data, dict):
        raise SubmissionError(f"{path.parent.name}/{path.name} must hold a JSON object")
    return data


def _base_shapes(base_dir: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the base model's weights, read from file headers only."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for f in inspect_submission(base_dir).weight_files:
        if f.suffix != ".safetensors":
            return {}
        with safe_open(str(f), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                shapes[key] = tuple(fh.get_slice(key).get_shape())
    return shapes


def _adapter_shapes(info: SubmissionInfo) -> dict[str, tuple[int, ...]]:
    f = info.weight_files[0]
    try:
        if f.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(f), framework="pt") as fh:
                return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
        import torch

        state = torch.load(str(f), map_location="cpu", weights_only=True)
        return {k: tuple(v.shape) for k, v in state.items()}
    except Exception as e:  # noqa: BLE001 - an unreadable adapter is the submitter's
        raise SubmissionError(
            f"{info.path.name}/{f.name}: cannot read the adapter weights ({e.__class__.__name__}: "
            f"{str(e)[:200]}); save them with save_pretrained on the PeftModel") from e


def check_adapter_matches_base(info: SubmissionInfo, base_dir: Path) -> None:
    """Refuse an adapter trained on another base model: every LoRA module must exist in the
    base with matching input and output sizes."""
    cfg = _read_json(info.path / "adapter_config.json")
    named = cfg.get("base_model_name_or_path")
    base = _base_shapes(base_dir)
    if not base:
        return
    mismatches: list[str] = []
    for key, shape in sorted(_adapter_shapes(info).items()):
        for part, dim in ((".lora_A.", 1), (".lora_B.", 0)):
            if part not in key:
                continue
            module = key.split(part)[0].removeprefix("base_model.model.")
            target = base.get(f"{module}.weight")
            if target is None:
                mismatches.append(f"{module} is not a module of the base model")
            elif len(target) != 2 or target[dim] != shape[dim]:
                mismatches.append(f"{module}: adapter {part.strip('.')} has shape {list(shape)}, "
                                  f"the base weight {list(target)}")
        if len(mismatches) >= 3:
            break
    if mismatches:
        raise SubmissionError(
            f"{info.path.name}: this LoRA adapter was trained for another base model"
            f"{f' ({named})' if named else ''}: " + "; ".join(mismatches)
            + ". Train the adapter on the scenario's base model (the folder model/ in the "
            "workspace, $MODEL_PATH) and submit that.")


def check_tokenizer(info: SubmissionInfo, base_dir: Path) -> None:
    """Refuse a tokenizer that cannot load, and a full model without one whose vocabulary
    differs from the base model's."""
    cfg_path = info.path / "tokenizer_config.json"
    if cfg_path.is_file():
        cfg = _read_json(cfg_path)
        extra = cfg.get("extra_special_tokens")
        if isinstance(extra, list):
            raise SubmissionError(
                f"{info.path.name}/tokenizer_config.json stores 'extra_special_tokens' as a list "
                f"({len(extra)} entries; some TRL versions save it so): vLLM and transformers 4 "
                "cannot load it, and transformers 5 adds its tokens again as new ids past the "
                "model's vocabulary. It must be a mapping of name to token. Delete the key (or set it to {}) "
                "and keep the tokens in 'additional_special_tokens', or save the tokenizer again "
                "with tokenizer.save_pretrained(dir) from a tokenizer loaded from model/.")
    if info.kind == "full" and not info.has_tokenizer:
        vocab = _read_json(info.path / "config.json").get("vocab_size")
        base_vocab = _read_json(base_dir / "config.json").get("vocab_size")
        if vocab is not None and base_vocab is not None and vocab != base_vocab:
            raise SubmissionError(
                f"{info.path.name}: tokenizer missing: the model's vocabulary ({vocab} tokens) "
                f"differs from the base model's ({base_vocab}), so the base tokenizer cannot stand "
                "in for it. Save the tokenizer next to the weights: tokenizer.save_pretrained(dir) "
                "(tokenizer.json and tokenizer_config.json).")


def check_submission(info: SubmissionInfo, base_dir: Path) -> None:
    """Every refusal that can be decided before loading the model."""
    if info.kind == "lora":
        check_adapter_matches_base(info, base_dir)
    check_tokenizer(info, base_dir)


class CheckedModel(BaseModel):
    """A submission that passed the checks every submission passes before it is accepted."""

    path: Path
    info: SubmissionInfo
    weights_hash: str


def check_model(model_path: str, workspace: Path) -> CheckedModel:
    """Resolve ``model_path`` inside ``workspace``, classify it, and hash its weights;
    SubmissionError says what is wrong. Used alike by the episode and the grading server."""
    try:
        path = resolve_in_workspace(model_path, workspace)
        info = inspect_submission(path)
        return CheckedModel(path=path, info=info, weights_hash=weights_hash(info.weight_files))
    except SubmissionError:
        raise
    except (OSError, ValueError) as e:
        raise SubmissionError(f"model_path {model_path!r}: {e}") from e
