"""Refusals decided before any weight is loaded: the model's config must load, declare nothing
its weight files do not hold, and not be far larger than the scenario allows.

The model is built on PyTorch's ``meta`` device from its config (no memory is allocated), so
its parameter names, shapes and count are known from the config alone; the weight files are
read by their headers only (safetensors; pickle weights are never read).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, NamedTuple

from autorl_gym.core.records import SubmissionError, SubmissionInfo
from autorl_gym.grading.submission import REFUSED
from autorl_gym.grading.warm import Memo, files_digest


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{e.__class__.__name__}: {text[0][:300]}" if text else e.__class__.__name__


def load_config(model_dir: Path) -> Any:
    """The model's ``transformers`` config; the real cause when it does not load."""
    from transformers import AutoConfig

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 - every config failure is the submitter's to fix
        raise SubmissionError(
            f"{model_dir.name}/config.json does not load as a transformers config ({_first_line(e)}); "
            "save the model with save_pretrained from a model loaded from model/") from e


class MetaModel(NamedTuple):
    """What a config describes, known without allocating it."""

    shapes: dict[str, tuple[int, ...]]  # tensor name -> shape
    tensors: list[list[str]]            # names sharing one tensor (tied embeddings are saved once)
    count: int                          # parameters
    prefix: str                         # the base model's prefix (``model``) weights may omit
    model_type: str = ""                # the config's ``model_type``


def meta_shapes(config: Any) -> MetaModel:
    """The model the config describes, built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 - an unbuildable config is the submitter's
        raise SubmissionError(f"config.json describes no model transformers can build "
                              f"({_first_line(e)})") from e
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    grouped = {n for names in groups.values() for n in names}
    tensors = [*groups.values(), *([k] for k in shapes if k not in grouped)]
    count = sum(p.numel() for p in model.parameters())
    return MetaModel(shapes, tensors, count, getattr(model, "base_model_prefix", "") or "",
                     getattr(config, "model_type", "") or "")


def meta_model(model_dir: Path) -> MetaModel:
    """The model ``model_dir/config.json`` describes (:func:`meta_shapes`), kept by the bytes of
    that file (the only file a config is loaded from): a submission whose config is byte for
    byte the base model's is not built again. A config that does not load is refused each time."""
    key = files_digest(model_dir, ["config.json"])
    return _META.get(key, lambda: meta_shapes(load_config(model_dir)))


_META = Memo()


def stored_shapes(info: SubmissionInfo) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape in the weight files, from their headers."""
    shapes: dict[str, tuple[int, ...]] = {}
    for f in info.weight_files:
        if f.suffix != ".safetensors":  # pickles are refused when a submission is taken
            raise SubmissionError(f"{info.path.name}/{f.name}: pickle weights are not read; save "
                                  "the model as safetensors", REFUSED)
        try:
            from safetensors import safe_open

            with safe_open(str(f), framework="pt") as fh:
                for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                    shapes[key] = tuple(fh.get_slice(key).get_shape())
        except Exception as e:  # noqa: BLE001 - an unreadable weight file is the submitter's
            raise SubmissionError(f"{info.path.name}/{f.name}: cannot read the weights "
                                  f"({_first_line(e)}); save them with save_pretrained") from e
    return shapes


def _normalise(names: dict[str, tuple[int, ...]], prefix: str) -> dict[str, tuple[int, ...]]:
    """Names without the model's base prefix (``model.``), as transformers matches them."""
    p = prefix + "." if prefix else ""
    return {k[len(p):] if p and k.startswith(p) else k: v for k, v in names.items()}


def check_weights_cover_config(info: SubmissionInfo, meta: MetaModel) -> None:
    """Refuse a full model whose config declares parameters its weight files do not hold (they
    would be initialised at random and graded) or holds with another shape."""
    expected, tensors, prefix = meta.shapes, meta.tensors, meta.prefix + "."

    def bare(name: str) -> str:
        return name.removeprefix(prefix)

    have = {bare(k): v for k, v in stored_shapes(info).items()}
    missing = [names[0] for names in tensors if not any(bare(n) in have for n in names)]
    wrong = [k for k, shape in expected.items() if bare(k) in have and have[bare(k)] != shape]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise SubmissionError(
            f"{info.path.name}: config.json declares {len(missing)} parameter tensor"
            f"{'s' if len(missing) != 1 else ''} that the weight files do not hold ({shown}); they "
            "would be initialised at random. Save the weights and config together with "
            "model.save_pretrained(dir)")
    if wrong:
        k = wrong[0]
        raise SubmissionError(
            f"{info.path.name}: {len(wrong)} weight tensor(s) do not have the shape config.json "
            f"gives them (e.g. {k}: stored {list(have[bare(k)])}, config {list(expected[k])})")


def param_count(model_dir: Path) -> int:
    """Parameters of the model in ``model_dir``, from its config alone (kept by its bytes)."""
    return meta_model(model_dir).count


def _adapter_params(info: SubmissionInfo) -> int:
    import math

    from autorl_gym.grading.submission import _adapter_shapes

    return sum(math.prod(s) for s in _adapter_shapes(info).values())


def check_loadable(info: SubmissionInfo, base_dir: Path, max_params: int | None,
                   max_params_factor: float) -> int:
    """Every refusal that needs the config: returns the submission's parameter count."""
    base_count = param_count(base_dir)
    limit = max_params or int(base_count * max_params_factor)
    if info.kind == "full":
        meta = meta_model(info.path)
        count = meta.count
        if count > limit:
            why = (f"grader.max_params = {limit:,}" if max_params
                   else f"{max_params_factor:g} times the base model's {base_count:,}")
            raise SubmissionError(f"{info.path.name}: the model has {count:,} parameters, more than "
                                  f"this scenario allows ({why})")
        check_weights_cover_config(info, meta)
        return count
    cfg_path = info.path / "adapter_config.json"
    try:
        json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SubmissionError(f"{info.path.name}/adapter_config.json is not readable JSON ({e})") from e
    count = base_count + _adapter_params(info)
    if count > limit:
        raise SubmissionError(f"{info.path.name}: the base model with this adapter has {count:,} "
                              f"parameters, more than this scenario allows ({limit:,})")
    return count


__all__ = ["check_loadable", "load_config", "meta_model", "meta_shapes", "param_count", "stored_shapes"]
