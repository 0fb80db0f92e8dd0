"""The micro TextWorld scenario: small TextWorld games and a micro policy model.

Both are shipped (:mod:`autorl_gym.micro.shipped`): the policy's files and the games as two
``.tar.xz`` archives, with the sha256 of every file published in
``autorl_gym/micro/artifacts/artifacts.json``; they are installed into the cache on first use and
checked on every load. The games are shipped rather than regenerated: generation is seeded and
gives the same worlds, quests and texts (the ``.json`` files) on every run, but a compiled game's
Z-machine header holds its compile date (the serial number, bytes 0x12-0x17), so a rebuild on
another day differs in those bytes. The build below stays, to make the next version
(``autorl-gym micro build textworld``). Layout of
``$AUTORL_GYM_CACHE/micro/textworld-v{TEXTWORLD_VERSION}/``::

    model/          the micro policy (Qwen2 architecture) and its tokenizer
    train/games/    the training games (``*.z8`` + ``*.json``): the only games an agent sees
    hidden/dev/     dev games (grader only)
    hidden/test/    test games (grader only)
    manifest.json   version, seeds, sizes, weights sha256, build seconds

Games are made with TextWorld's generator (what ``tw-make custom`` runs) from fixed seeds; train,
dev and test use disjoint seed ranges. The policy is pre-trained on prompts of the evaluator
(:func:`autorl_gym.interactive.make_prompt`) from random walks in the training games, labelled
with the expert's command on a game's first step (and on a fraction ``expert_fraction`` of the
later steps), and with a random admissible command otherwise; then briefly trained (80 steps) on
the expert's walkthroughs of the training games (``warmup_games``): a weak imitation of the expert
(about 10% of test games won) that fine-tuning on the expert's labels of the states the policy
reaches lifts (DAgger-style: about 45%). The evaluator makes it pick among the admissible commands
(``choose: admissible`` in the scenario), so it never loses a game to a misspelt command; the
prompt leaves the admissible commands out (``PROMPT.admissible``), which a 2-layer model learns
from better. Version 1 generated commands freely and won no dev or test game; version 2 (48
training games) was lifted by a few points only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from autorl_gym.interactive import (
    GameEnv,
    PromptSpec,
    Turn,
    expert_policy,
    find_games,
    make_prompt,
    rollout,
)
from autorl_gym.micro.policy import PolicyTraining, build_policy, progress_ticks
from autorl_gym.micro.shipped import InstalledAssets

# Bump whenever the games, prompt, tokenizer, model or pre-training change: it names the shipped
# artifact (textworld-v3) and its cache folder; a new version is a new scenario id.
TEXTWORLD_VERSION = 3
NAME = "textworld"
SEEDS = {"train": 10_000, "dev": 20_000, "test": 30_000}
SIZES = {"train": 200, "dev": 24, "test": 48}
QUEST_LENGTHS = (1, 2, 2, 3)     # cycled over a split's games
NB_ROOMS = 2
NB_OBJECTS = 5
MAX_STEPS = 20
PROMPT = PromptSpec(history=1, max_obs_chars=100, max_goal_chars=400, intro=False, admissible=False)


class TextWorldBuild(BaseModel):
    steps: int = 300
    batch_size: int = 16
    layers: int = 2
    lr: float = 2e-3
    walks_per_game: int = 2
    walk_steps: int = 8
    expert_fraction: float = 0.3
    warmup_games: int = 200       # expert walkthroughs of the first N training games ...
    warmup_steps: int = 80        # ... the pre-trained policy is then trained on, briefly
    warmup_batch_size: int = 16
    warmup_lr: float = 2e-3
    seed: int = 1234
    threads: int = 2


class TextWorldManifest(BaseModel):
    version: int
    seeds: dict[str, int]
    sizes: dict[str, int]
    quest_lengths: list[int]
    max_steps: int
    weights_sha256: str
    num_parameters: int
    pretrain_examples: int
    final_loss: float
    build: TextWorldBuild
    build_seconds: float


class TextWorldAssets(InstalledAssets):
    train_split: ClassVar[str] = "games"


# --------------------------------------------------------------------------- games


def _options(out_dir: Path, seed: int, quest_length: int):  # noqa: ANN202
    from textworld import GameOptions

    opts = GameOptions()
    opts.seeds = seed
    opts.nb_rooms = NB_ROOMS
    opts.nb_objects = NB_OBJECTS
    opts.quest_length = quest_length
    opts.path = str(out_dir / f"game_{seed}.z8")
    opts.force_recompile = True
    opts.file_ext = ".z8"
    return opts


def _compile(game, opts) -> Path:  # noqa: ANN001
    from textworld.generator import compile_game

    path = Path(compile_game(game, opts))
    path.with_suffix(".ni").unlink(missing_ok=True)
    return path


def generate_games(out_dir: Path, split: str, n: int | None = None,
                   on_game: Callable[[], None] | None = None, workers: int = 2) -> list[Path]:
    """Make a split's games (seeded, deterministic): ``game_<seed>.z8`` and ``.json``."""
    from textworld.generator import make_game

    out_dir.mkdir(parents=True, exist_ok=True)
    base = SEEDS[split]
    n = SIZES[split] if n is None else n
    # make_game (pure Python, not thread-safe) runs here; compile_game runs the Inform 7
    # compiler in a subprocess, two at a time.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = []
        for i in range(n):
            opts = _options(out_dir, base + i, QUEST_LENGTHS[i % len(QUEST_LENGTHS)])
            futures.append(pool.submit(_compile, make_game(opts), opts))
        paths = []
        for f in futures:
            paths.append(f.result())
            if on_game:
                on_game()
    return paths


# --------------------------------------------------------------------------- policy corpus


def pretrain_examples(games_dir: Path, cfg: TextWorldBuild) -> list[tuple[str, str]]:
    """(prompt, command) pairs from random walks, labelled with the expert's command at a game's
    first step and at a fraction ``expert_fraction`` of the later ones, else a random command."""
    rng = random.Random(f"autorl-gym/textworld/pretrain/{cfg.seed}")
    examples: list[tuple[str, str]] = []
    for ref in find_games(games_dir):
        with GameEnv(ref, max_steps=cfg.walk_steps, expert=True) as env:
            for _ in range(cfg.walks_per_game):
                st = env.reset()
                turns: list[Turn] = []
                while not st.done:
                    prompt = make_prompt(st, turns, PROMPT)
                    if st.expert_actions and (not turns or rng.random() < cfg.expert_fraction):
                        label = st.expert_actions[0]
                    else:
                        label = rng.choice(st.admissible_commands)
                    examples.append((prompt, label))
                    act = rng.choice(st.admissible_commands)
                    nxt = env.step(act)
                    turns.append(Turn(prompt=prompt, completion=act, action=act,
                                      observation=nxt.observation, admissible=True, won=nxt.won))
                    st = nxt
    return examples


def warmup_examples(games_dir: Path, cfg: TextWorldBuild) -> list[tuple[str, str]]:
    """(prompt, expert command) pairs of the expert's walkthroughs of the first ``warmup_games``
    training games, in the evaluator's prompt format."""
    games = find_games(games_dir)[:cfg.warmup_games]
    episodes = rollout(games, expert_policy, max_steps=MAX_STEPS, prompt=PROMPT, expert=True)
    return [(t.prompt, t.action) for e in episodes for t in e.turns]


# --------------------------------------------------------------------------- build


def build_textworld_assets(dest: Path, cfg: TextWorldBuild | None = None,
                           progress: bool = False) -> TextWorldManifest:
    """Build games and the micro policy into ``dest``; deterministic for a given config."""
    t0 = time.monotonic()
    cfg = cfg or TextWorldBuild()
    dest.mkdir(parents=True, exist_ok=True)
    dirs = {"train": dest / "train" / "games", "dev": dest / "hidden" / "dev",
            "test": dest / "hidden" / "test"}
    total_games = sum(SIZES.values())
    with progress_ticks(progress, "generating TextWorld games", total_games) as tick:
        for split, d in dirs.items():
            generate_games(d, split, on_game=(lambda: tick(1)) if tick else None)
    return build_textworld_policy(dest, cfg, progress, t0)


def build_textworld_policy(dest: Path, cfg: TextWorldBuild, progress: bool = False,
                           t0: float | None = None) -> TextWorldManifest:
    """Pre-train the micro policy on the training games in ``dest/train/games``."""
    from autorl_gym.core.durable import file_digest

    t0 = time.monotonic() if t0 is None else t0
    games = dest / "train" / "games"
    examples = pretrain_examples(games, cfg)
    built = build_policy(dest, examples, lambda: warmup_examples(games, cfg), PolicyTraining(
        layers=cfg.layers, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
        threads=cfg.threads, warmup_steps=cfg.warmup_steps, warmup_batch_size=cfg.warmup_batch_size,
        warmup_lr=cfg.warmup_lr, max_positions=512), "micro policy", progress)
    manifest = TextWorldManifest(
        version=TEXTWORLD_VERSION, seeds=SEEDS, sizes=SIZES, quest_lengths=list(QUEST_LENGTHS),
        max_steps=MAX_STEPS, weights_sha256=file_digest(dest / "model" / "model.safetensors"),
        num_parameters=sum(p.numel() for p in built.model.parameters()),
        pretrain_examples=built.examples,
        final_loss=sum(built.losses[-20:]) / max(1, len(built.losses[-20:])),
        build=cfg, build_seconds=round(time.monotonic() - t0, 2),
    )
    (dest / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def build_textworld(dest: Path, progress: bool = True) -> TextWorldManifest:
    """The full build of the current version (what ``autorl-gym micro build textworld`` runs)."""
    return build_textworld_assets(dest, progress=progress)


def textworld_assets_if_built(cache_dir: Path | None = None) -> TextWorldAssets | None:
    """The installed games and policy if they are on disk; never installs."""
    return TextWorldAssets.if_installed(NAME, TEXTWORLD_VERSION, cache_dir)


def ensure_textworld_assets(cache_dir: Path | None = None, progress: bool = True) -> TextWorldAssets:
    """The shipped games and micro policy (sha256 published in ``artifacts.json``), installed into
    the cache on first use and checked against the published hashes on every load. Never builds:
    ``autorl-gym micro build textworld`` makes the next version."""
    return TextWorldAssets.ensure(NAME, TEXTWORLD_VERSION, cache_dir)
