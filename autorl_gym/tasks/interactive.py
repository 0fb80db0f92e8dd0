"""Inputs of the interactive (level 3) scenarios: games per split, the base policy, and what the
sandbox gets: the visible training games, the settings, and ``autorl_gym.interactive`` alone."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import tempfile
from pathlib import Path

from autorl_gym.assets import ScenarioAssets, resolve_base_model
from autorl_gym.interactive.settings import SETTINGS_ENV, Settings
from autorl_gym.paths import PACKAGE_DIR, cache_dir
from autorl_gym.scenario import Scenario, ScenarioError

SANDBOX_INIT = '"""Inside the sandbox only ``autorl_gym.interactive`` is available."""\n'


def _package_files() -> list[Path]:
    return sorted((PACKAGE_DIR / "interactive").glob("*.py"))


def stage_sandbox_package() -> Path:
    """A folder holding ``autorl_gym/__init__.py`` (empty) and ``autorl_gym/interactive/``, copied
    from this package, cached by content; put on the sandbox's PYTHONPATH, read-only."""
    h = hashlib.sha256(SANDBOX_INIT.encode())
    for f in _package_files():
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    parent = cache_dir() / "sandbox_python"
    root = parent / h.hexdigest()[:16]
    if (root / "autorl_gym" / "interactive" / "__init__.py").is_file():
        return root
    parent.mkdir(parents=True, exist_ok=True)
    with (parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not root.exists():
            tmp = Path(tempfile.mkdtemp(prefix=".stage.", dir=parent))
            pkg = tmp / "autorl_gym" / "interactive"
            pkg.mkdir(parents=True)
            (tmp / "autorl_gym" / "__init__.py").write_text(SANDBOX_INIT)
            for f in _package_files():
                shutil.copyfile(f, pkg / f.name)
            for p in [tmp, *tmp.rglob("*")]:
                p.chmod(0o755 if p.is_dir() else 0o644)
            tmp.rename(root)
        fcntl.flock(lock, fcntl.LOCK_UN)
    return root


def settings_json(scenario: Scenario, games_dir: str) -> str:
    """What ``$AUTORL_INTERACTIVE`` holds: the evaluator's settings, for the agent's code."""
    spec = scenario.interactive
    assert spec is not None
    return Settings(games=games_dir, max_steps=spec.max_steps, prompt=spec.prompt,
                    max_new_tokens=spec.max_new_tokens, stop=spec.stop,
                    choose=spec.choose).model_dump_json()


def resolve_interactive_assets(scenario: Scenario, base_model: str | None = None,
                               progress: bool = True) -> ScenarioAssets:
    spec = scenario.interactive
    if spec is None:
        raise ScenarioError(f"{scenario.id}: field 'interactive' is required")
    extra: list[Path] = []
    if scenario.data.source == "micro_textworld":
        from autorl_gym.micro.textworld import ensure_textworld_assets

        tw = ensure_textworld_assets(progress=progress)
        train_dir = tw.train_dir
        hidden = {"dev": tw.split_dir("dev"), "test": tw.split_dir("test")}
        games_rel = "data/games"
    elif scenario.data.source == "alfworld":
        from autorl_gym.tasks.alfworld import alfworld_root, split_dir

        root = alfworld_root(scenario)
        train_games = split_dir(root, spec.train_split)
        if not train_games.is_dir():
            raise ScenarioError(f"{scenario.id}: ALFWorld train split not found at {train_games}")
        hidden = {"dev": split_dir(root, spec.dev_split), "test": split_dir(root, spec.test_split)}
        # data/ in the workspace: a view holding links to the train games and the logic files
        digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
        train_dir = cache_dir() / "alfworld_view" / digest
        train_dir.mkdir(parents=True, exist_ok=True)
        for name, target in (("train", train_games), ("logic", root / "logic")):
            link = train_dir / name
            if not link.is_symlink():
                link.symlink_to(target, target_is_directory=True)
        extra += [train_games.resolve(), (root / "logic").resolve()]
        games_rel = "data/train"
    else:
        raise ScenarioError(f"{scenario.id}: data source {scenario.data.source!r} is not interactive")
    for split, d in hidden.items():
        if not d.is_dir():
            raise ScenarioError(f"{scenario.id}: hidden {split} games not found at {d}")
    model_dir = resolve_base_model(base_model or scenario.base_model, progress=progress)
    pkg = stage_sandbox_package()
    return ScenarioAssets(
        base_model_dir=model_dir, train_dir=train_dir.resolve(),
        hidden_splits={k: v.resolve() for k, v in hidden.items()},
        train_data=train_dir, extra_mounts=[*extra, pkg],
        sandbox_env={"PYTHONPATH": str(pkg), SETTINGS_ENV: settings_json(scenario, games_rel)},
    )


def interactive_assets_if_present(scenario: Scenario) -> ScenarioAssets | None:
    """The assets if already on disk (nothing built or downloaded), else None."""
    if scenario.data.source == "micro_textworld":
        from autorl_gym.micro.textworld import textworld_assets_if_built

        if textworld_assets_if_built() is None:
            return None
    elif not Path(scenario.base_model).exists():
        return None
    try:
        return resolve_interactive_assets(scenario, progress=False)
    except (ScenarioError, OSError):
        return None
