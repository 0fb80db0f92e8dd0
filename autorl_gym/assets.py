"""Resolve a scenario's inputs to host paths: the base model, the visible train folder and
the hidden split files. Hidden files live outside every folder mounted into a sandbox."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from autorl_gym.scenario import Scenario, ScenarioError


class ScenarioAssets(BaseModel):
    base_model_dir: Path
    train_dir: Path                  # mounted read-only as data/ in the workspace
    hidden_splits: dict[str, Path]   # dev, test: never mounted
    # interactive scenarios: what data/ holds, more read-only mounts, and sandbox variables
    train_data: Path | None = None
    extra_mounts: list[Path] = []
    sandbox_env: dict[str, str] = {}

    @property
    def train_data_path(self) -> Path:
        """What the API's ``train_data_path`` names: the visible training file, or folder of games."""
        return self.train_data or self.train_dir / "train.jsonl"


def resolve_base_model(spec: str, progress: bool = True) -> Path:
    """A local path, ``micro:<name>``, or a Hugging Face hub id (downloaded to the HF cache)."""
    if spec == "micro:textworld":
        from autorl_gym.micro.textworld import ensure_textworld_assets

        return ensure_textworld_assets(progress=progress).model_dir
    if spec.startswith("micro:"):
        from autorl_gym.micro.build import ensure_micro_assets

        return ensure_micro_assets(spec.split(":", 1)[1], progress=progress).model_dir
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


def resolve_assets(scenario: Scenario, base_model: str | None = None,
                   progress: bool = True) -> ScenarioAssets:
    if scenario.interactive is not None:
        from autorl_gym.tasks.interactive import resolve_interactive_assets

        return resolve_interactive_assets(scenario, base_model, progress)
    data = scenario.data
    if data.source == "micro":
        from autorl_gym.micro.build import ensure_micro_assets

        micro = ensure_micro_assets(data.name or "arith", progress=progress)
        root_train, hidden = micro.train_dir, micro.hidden_dir
    elif data.source == "gsm8k":
        from autorl_gym.tasks.gsm8k import ensure_gsm8k
        from autorl_gym.tasks.qa import SplitLoadError

        try:
            gsm = ensure_gsm8k(data)
        except (SplitLoadError, ValueError) as e:
            raise ScenarioError(f"{scenario.id}: {e}") from e
        root_train, hidden = gsm.train_dir, gsm.hidden_dir
    else:
        if data.path is None:
            raise ScenarioError(f"{scenario.id}: field 'data.path' is required for source jsonl")
        root_train, hidden = data.path / "train", data.path / "hidden"
    if not (root_train / "train.jsonl").is_file():
        raise ScenarioError(f"{scenario.id}: train split not found at {root_train / 'train.jsonl'}")
    splits = {s: hidden / f"{s}.jsonl" for s in ("dev", "test")}
    for s, p in splits.items():
        if not p.is_file():
            raise ScenarioError(f"{scenario.id}: hidden {s} split not found at {p}")
    model_dir = resolve_base_model(base_model or scenario.base_model, progress=progress)
    return ScenarioAssets(base_model_dir=model_dir, train_dir=root_train.resolve(),
                          hidden_splits={k: v.resolve() for k, v in splits.items()})


def present_assets(scenario: Scenario) -> ScenarioAssets | None:
    """The assets if they are already on disk (nothing is built or downloaded), else None."""
    if scenario.interactive is not None:
        from autorl_gym.tasks.interactive import interactive_assets_if_present

        return interactive_assets_if_present(scenario)
    if scenario.data.source == "micro" or scenario.base_model.startswith("micro:"):
        from autorl_gym.micro.build import micro_assets_if_built

        name = scenario.data.name or scenario.base_model.split(":", 1)[-1]
        if micro_assets_if_built(name) is None:
            return None
    if scenario.data.source == "gsm8k":
        from autorl_gym.tasks.gsm8k import gsm8k_if_materialized

        if gsm8k_if_materialized(scenario.data) is None:
            return None
    if not scenario.base_model.startswith("micro:") and not Path(scenario.base_model).exists():
        return None
    try:
        return resolve_assets(scenario, progress=False)
    except ScenarioError:
        return None
