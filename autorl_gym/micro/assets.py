"""Where an installed question/answer micro asset (``arith``, ``arith_multistep``) lies, without
importing torch or transformers: resolving a micro scenario's assets (every ``autorl-gym eval``,
every episode) needs only its paths and the published hashes (:mod:`autorl_gym.micro.shipped`).
Building a new version is :mod:`autorl_gym.micro.build`'s, which re-exports these names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from autorl_gym.micro.shipped import ensure_installed, installed_root, is_installed

if TYPE_CHECKING:
    from autorl_gym.micro.build import MicroManifest


class MicroAssets(BaseModel):
    """Paths of one built micro scenario."""

    name: str
    version: int
    root: Path
    model_dir: Path
    train_dir: Path
    hidden_dir: Path

    @property
    def train_file(self) -> Path:
        return self.train_dir / "train.jsonl"

    @property
    def dev_file(self) -> Path:
        return self.hidden_dir / "dev.jsonl"

    @property
    def test_file(self) -> Path:
        return self.hidden_dir / "test.jsonl"

    def manifest(self) -> MicroManifest:
        from autorl_gym.micro.build import MicroManifest

        return MicroManifest.model_validate_json((self.root / "manifest.json").read_text())


def asset_version(name: str) -> int:
    """The current version of a question/answer micro asset (``arith``, ``arith_multistep``), as
    its builder in :data:`autorl_gym.micro.shipped.BUILDERS` names it."""
    from autorl_gym.micro.shipped import BUILDERS, ArtifactError, resolve

    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"bad micro scenario name {name!r}")
    if name not in BUILDERS:
        raise ArtifactError(f"unknown micro asset {name!r} (known: {', '.join(sorted(BUILDERS))})")
    return int(resolve(BUILDERS[name].version))


def _assets(name: str, root: Path) -> MicroAssets:
    return MicroAssets(
        name=name,
        version=asset_version(name),
        root=root,
        model_dir=root / "model",
        train_dir=root / "train",
        hidden_dir=root / "hidden",
    )


def micro_assets_if_built(name: str = "arith", cache_dir: Path | None = None) -> MicroAssets | None:
    """The installed assets if they are on disk; never installs."""
    version = asset_version(name)
    root = installed_root(name, version, cache_dir)
    return _assets(name, root) if is_installed(name, version, cache_dir) else None


def ensure_micro_assets(
    name: str = "arith", cache_dir: Path | None = None, progress: bool = True
) -> MicroAssets:
    """The micro assets for ``name`` (``arith``; ``arith_multistep``, data only: its base model is
    ``micro:arith``): the shipped artifact (base model and tokenizer with their
    published sha256), installed into the cache on first use with its seeded data, and checked
    against the published hashes on every load (:mod:`autorl_gym.micro.shipped`). Never builds:
    ``autorl-gym micro build`` makes the next version."""
    return _assets(name, ensure_installed(name, asset_version(name), cache_dir))
