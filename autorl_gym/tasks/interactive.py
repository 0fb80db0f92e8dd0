"""What every interactive (level 3) family shares: what the sandbox gets (the visible training
games, the evaluator's settings, and ``autorl_gym.interactive`` alone), and :class:`GamesTask`,
which grades a policy by playing every game of a hidden split through the evaluator's ReAct-style
loop (:func:`autorl_gym.interactive.rollout`, batched across games): the score is the success
rate in percent within the scenario's step limit."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from autorl_gym.core.durable import exclusive
from autorl_gym.core.family import GradeContext, InteractiveTask, Progress
from autorl_gym.core.paths import PACKAGE_DIR, cache_dir
from autorl_gym.interactive.settings import SETTINGS_ENV, Settings

if TYPE_CHECKING:
    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.records import ItemResult, SubmissionInfo
    from autorl_gym.core.scenario import Scenario
    from autorl_gym.interactive import GameRef

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
    with exclusive(parent / ".lock"):
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
    return root


def settings_json(scenario: Scenario, games_dir: str) -> str:
    """What ``$AUTORL_INTERACTIVE`` holds: the evaluator's settings, for the agent's code."""
    spec = scenario.interactive
    assert spec is not None
    return Settings(games=games_dir, max_steps=spec.max_steps, prompt=spec.prompt,
                    max_new_tokens=spec.max_new_tokens, stop=spec.stop,
                    choose=spec.choose).model_dump_json()


def games_assets(scenario: Scenario, train_dir: Path, hidden: dict[str, Path], games_rel: str,
                 extra_mounts: list[Path], base_model: str | None, progress: bool) -> ScenarioAssets:
    """Assets of a games family: ``train_dir`` is mounted as data/ (``games_rel`` is where the
    training games are, seen from the workspace), the hidden game folders are never mounted."""
    from autorl_gym.core.assets import ScenarioAssets, resolve_base_model
    from autorl_gym.core.scenario import ScenarioError

    for split, d in hidden.items():
        if not d.is_dir():
            raise ScenarioError(f"{scenario.id}: hidden {split} games not found at {d}")
    model_dir = resolve_base_model(base_model or scenario.base_model, progress=progress)
    pkg = stage_sandbox_package()
    return ScenarioAssets(
        base_model_dir=model_dir, train_dir=train_dir.resolve(),
        hidden_splits={k: v.resolve() for k, v in hidden.items()},
        train_data=train_dir, extra_mounts=[*extra_mounts, pkg],
        sandbox_env={"PYTHONPATH": str(pkg), SETTINGS_ENV: settings_json(scenario, games_rel)},
    )


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``n`` for the block (None: left as they are)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class GamesTask(InteractiveTask):
    """Text games played by the submitted policy (TextWorld's engine under both families)."""

    metrics: ClassVar[tuple[str, ...]] = ("success_rate",)
    backend: ClassVar[str] = "hf-rollout"
    # torch CPU threads of the grader's rollouts (None: torch's default). The micro policies set
    # 1: on shared 2-core machines two threads rolled them out about 4x slower than one.
    grading_threads: ClassVar[int | None] = None

    def check_scenario(self, scenario: Scenario) -> None:
        super().check_scenario(scenario)
        if scenario.interactive is None:
            raise ValueError(f"field 'interactive': required for task family {self.name!r}")

    def load_split(self, ctx: GradeContext, split: str) -> list[GameRef]:
        from autorl_gym.interactive import find_games

        return find_games(ctx.split_path(split))

    def split_digest(self, ctx: GradeContext, split: str) -> str:
        h = hashlib.sha256()
        for ref in ctx.items(split):
            h.update(ref.name.encode() + b"\0" + str(ref.path.stat().st_size).encode())
        return h.hexdigest()

    def protocol_record(self, ctx: GradeContext, backend: str) -> dict[str, Any]:
        spec = ctx.scenario.interactive
        assert spec is not None
        return {"metric": ctx.scenario.metric, "backend": self.backend, "task_family": self.name,
                "evaluator": "autorl_gym.interactive.rollout (ReAct-style loop, batched across games)",
                **spec.model_dump()}

    def baseline_settings(self, ctx: GradeContext) -> dict[str, Any]:
        spec = ctx.scenario.interactive
        assert spec is not None
        return {"interactive": spec.model_dump()}

    def play(self, ctx: GradeContext, info: SubmissionInfo, split: str, limit: int | None,
             progress: Progress | None = None) -> list[ItemResult]:
        from autorl_gym.core.records import ItemResult
        from autorl_gym.interactive import HFPolicy, rollout

        spec = ctx.scenario.interactive
        assert spec is not None
        g = ctx.scenario.grader
        with torch_threads(self.grading_threads):
            policy = HFPolicy(info.path, base_model=ctx.assets.base_model_dir, device=g.device,
                              dtype=g.dtype, batch_size=g.batch_size,
                              max_new_tokens=spec.max_new_tokens, stop=tuple(spec.stop),
                              choose=spec.choose)
            episodes = rollout(list(ctx.items(split, limit)), policy, max_steps=spec.max_steps,
                               prompt=spec.prompt, on_step=progress)
        return [ItemResult(index=i, gold="won", answer="won" if e.won else "lost", correct=e.won,
                           completion=(f"[{e.game}] {e.goal}\n" + e.transcript())[:8000],
                           details={"reward": e.reward, "steps": e.steps}
                           | ({"error": e.error} if e.error else {}))
                for i, e in enumerate(episodes)]

    def summary_metrics(self, results: list[ItemResult]) -> dict[str, float]:
        """The mean episode reward, in percent (equal to the success rate for text games)."""
        n = len(results) or 1
        return {"mean_reward": 100.0 * sum(float(r.details.get("reward", 0.0)) for r in results) / n}
