"""A scenario's inputs as host paths: the base model, the visible train folder and the hidden
split files (outside every folder mounted into a sandbox). Each task family resolves its own
(:meth:`autorl_gym.core.family.TaskFamily.resolve_assets`); the base model is resolved here."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from autorl_gym.core.registry import Registry
from autorl_gym.core.sandbox import UnixBridge
from autorl_gym.core.scenario import ScenarioError


class ScenarioAssets(BaseModel):
    base_model_dir: Path
    train_dir: Path                  # mounted read-only as data/ in the workspace
    hidden_splits: dict[str, Path]   # dev, test: never mounted
    # interactive scenarios: what data/ holds, more read-only mounts, and sandbox variables
    train_data: Path | None = None
    extra_mounts: list[Path] = []
    sandbox_env: dict[str, str] = {}
    bridges: list[UnixBridge] = []   # host services reachable inside (a search bridge)

    @property
    def train_data_path(self) -> Path:
        """What the API's ``train_data_path`` names: the visible training file, or folder of games."""
        return self.train_data or self.train_dir / "train.jsonl"


class ModelSource(Protocol):
    """Where base models named ``<source>:<name>`` come from (``micro:arith``: the micro models
    that :mod:`autorl_gym.micro` builds)."""

    def resolve(self, name: str, progress: bool) -> Path:
        """The model's folder, built or fetched if need be; ScenarioError if there is none."""
        ...

    def present(self, name: str) -> bool:
        """Whether the model is on disk already (nothing is built or fetched)."""
        ...


#: base-model sources by prefix; a spec with no registered prefix is a local path or a hub id
MODEL_SOURCES: Registry[ModelSource] = Registry("model source",
                                               builtin_modules=("autorl_gym.micro.sources",))


def model_source(spec: str) -> tuple[ModelSource, str] | None:
    """(source, name) for ``<source>:<name>`` with a registered source, else None."""
    prefix, sep, name = spec.partition(":")
    if not sep or not MODEL_SOURCES.name_re.match(prefix) or prefix not in MODEL_SOURCES:
        return None
    return MODEL_SOURCES.get(prefix), name


def resolve_base_model(spec: str, progress: bool = True) -> Path:
    """A registered source's model (``micro:<name>``), a local path, or a Hugging Face hub id
    (downloaded to the HF cache)."""
    source = model_source(spec)
    if source is not None:
        return source[0].resolve(source[1], progress)
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ScenarioError(f"base model {path} has no config.json")
        return path.resolve()
    if spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise ScenarioError(f"base model {spec!r}: no such local path, and not a hub id (org/name)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, allow_patterns=[
            "*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]))
    except Exception as e:  # noqa: BLE001 - any hub failure becomes one clear message
        raise ScenarioError(
            f"base model {spec!r} could not be loaded from the Hugging Face hub ({e.__class__.__name__}: "
            f"{str(e)[:200]}); pass a local path with base_model=... instead"
        ) from e


def base_model_present(spec: str) -> bool:
    """Whether the base model is on disk already (a micro model built, or a local path)."""
    source = model_source(spec)
    if source is not None:
        return source[0].present(source[1])
    return Path(spec).expanduser().exists()
