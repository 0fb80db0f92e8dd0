"""The micro DeepSearch scenario: generated worlds (:mod:`autorl_gym.micro.search_world`) and a
micro policy, built offline and deterministically.

Layout of ``$AUTORL_GYM_CACHE/micro/deepsearch-v{DEEPSEARCH_VERSION}/``::

    model/          the micro policy (Qwen2 architecture) and its tokenizer
    train/world_<i>/       the visible worlds: search.json, vocab.json, docs/, questions/ (with
                           answers and the expert's chain)
    hidden/dev/world_<i>/  the dev worlds (grader only)
    hidden/test/world_<i>/ the test worlds (grader only)
    manifest.json   version, seeds, sizes, weights sha256, build seconds

Every world draws its facts from its own seed (train, dev and test seeds are disjoint) over one
shared pool of names, so the same person works for another company in another world: a policy
must read the documents it finds rather than remember them. The policy is pre-trained on the
evaluator's prompts (:func:`autorl_gym.interactive.make_prompt` with :data:`PROMPT`) from walks
of a noisy expert over the training questions, labelled with the expert's command on a fraction
``expert_fraction`` of the steps and a random admissible command otherwise, then trained briefly
on the expert's own walkthroughs (``warmup_steps``): a weak policy that fine-tuning on expert
labels lifts. The evaluator makes it pick among the admissible commands (``choose: admissible``).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from autorl_gym.interactive import PolicyInput, PromptSpec, find_games, rollout
from autorl_gym.micro.policy import PolicyTraining, build_policy
from autorl_gym.micro.search_world import Sizes, generate_world, write_split
from autorl_gym.micro.shipped import InstalledAssets

# Bump whenever the worlds, prompt, tokenizer, model or pre-training change: it names the cache.
DEEPSEARCH_VERSION = 2
NAME = "deepsearch"
SEEDS = {"train": 41_000, "dev": 42_000, "test": 43_000}   # world i of a split: seed + i
WORLDS = {"train": 8, "dev": 2, "test": 4}
SIZES = {"train": Sizes(questions=25), "dev": Sizes(questions=20), "test": Sizes(questions=25)}
MAX_STEPS = 6
TOP_K = 1
PROMPT = PromptSpec(history=2, max_obs_chars=200, max_goal_chars=200, intro=False, admissible=False)


class DeepSearchBuild(BaseModel):
    steps: int = 300
    batch_size: int = 16
    layers: int = 2
    lr: float = 2e-3
    walks_per_question: int = 2
    walk_noise: float = 0.5
    expert_fraction: float = 0.3
    warmup_steps: int = 40
    warmup_batch_size: int = 16
    warmup_lr: float = 2e-3
    seed: int = 1234
    threads: int = 1   # one thread: on shared cores two are 4-10x slower for this tiny model


class DeepSearchManifest(BaseModel):
    version: int
    seeds: dict[str, int]
    worlds: dict[str, int]
    sizes: dict[str, Sizes]
    max_steps: int
    weights_sha256: str
    num_parameters: int
    pretrain_examples: int
    final_loss: float
    build: DeepSearchBuild
    build_seconds: float


class DeepSearchAssets(InstalledAssets):
    train_split: ClassVar[str] = ""


def write_worlds(dest: Path) -> None:
    """Each split's worlds (``<split>/world_<i>/``), from disjoint seeds."""
    for split, folder in (("train", dest / "train"), ("dev", dest / "hidden" / "dev"),
                          ("test", dest / "hidden" / "test")):
        for i in range(WORLDS[split]):
            world = generate_world(SEEDS[split] + i, SIZES[split])
            write_split(world, folder / f"world_{i}", top_k=TOP_K)


def _walks(train: Path, cfg: DeepSearchBuild) -> list[tuple[str, str]]:
    """(prompt, label) pairs from noisy-expert walks over the training questions, labelled with
    the expert's command on a fraction ``expert_fraction`` of the steps, a random admissible
    command otherwise."""
    rng = random.Random(f"autorl-gym/deepsearch/pretrain/{cfg.seed}")
    out: list[tuple[str, str]] = []

    def behave(batch: list[PolicyInput]) -> list[str]:
        acts = []
        for b in batch:
            expert, cands = b.state.expert_actions, b.state.admissible_commands
            label = expert[0] if expert and rng.random() < cfg.expert_fraction else rng.choice(cands)
            out.append((b.prompt, label))
            acts.append(expert[0] if expert and rng.random() >= cfg.walk_noise else rng.choice(cands))
        return acts

    questions = find_games(train)
    for _ in range(cfg.walks_per_question):
        rollout(questions, behave, max_steps=MAX_STEPS, prompt=PROMPT, expert=True)
    return out


def _expert_demos(train: Path) -> list[tuple[str, str]]:
    def expert(batch: list[PolicyInput]) -> list[str]:
        return [b.state.expert_actions[0] for b in batch]

    eps = rollout(find_games(train), expert, max_steps=MAX_STEPS, prompt=PROMPT, expert=True)
    return [(t.prompt, t.action) for e in eps for t in e.turns]


def build_deepsearch_assets(dest: Path, cfg: DeepSearchBuild | None = None,
                            progress: bool = False) -> DeepSearchManifest:
    """Worlds and the micro policy into ``dest``; deterministic for a given config."""
    from autorl_gym.core.durable import file_digest

    t0 = time.monotonic()
    cfg = cfg or DeepSearchBuild()
    write_worlds(dest)
    examples = _walks(dest / "train", cfg)
    demos = _expert_demos(dest / "train")
    built = build_policy(dest, examples, lambda: demos, PolicyTraining(
        layers=cfg.layers, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
        threads=cfg.threads, warmup_steps=cfg.warmup_steps, warmup_batch_size=cfg.warmup_batch_size,
        warmup_lr=cfg.warmup_lr, max_positions=512), "micro search policy", progress)
    model, losses = built.model, built.losses
    model_dir = dest / "model"
    manifest = DeepSearchManifest(
        version=DEEPSEARCH_VERSION, seeds=SEEDS, worlds=WORLDS, sizes=SIZES, max_steps=MAX_STEPS,
        weights_sha256=file_digest(model_dir / "model.safetensors"),
        num_parameters=sum(p.numel() for p in model.parameters()), pretrain_examples=len(examples),
        final_loss=sum(losses[-20:]) / max(1, len(losses[-20:])), build=cfg,
        build_seconds=round(time.monotonic() - t0, 2))
    (dest / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def build_deepsearch(dest: Path, progress: bool = True) -> DeepSearchManifest:
    """The full build of the current version (what ``autorl-gym micro build deepsearch`` runs)."""
    return build_deepsearch_assets(dest, progress=progress)


def deepsearch_assets_if_built(cache_dir: Path | None = None) -> DeepSearchAssets | None:
    """The installed worlds and policy if they are on disk; never installs."""
    return DeepSearchAssets.if_installed(NAME, DEEPSEARCH_VERSION, cache_dir)


def ensure_deepsearch_assets(cache_dir: Path | None = None, progress: bool = True) -> DeepSearchAssets:
    """The shipped worlds and micro policy (sha256 published in ``artifacts.json``), installed
    into the cache on first use and checked on every load. Never builds: ``autorl-gym micro build
    deepsearch`` makes the next version."""
    return DeepSearchAssets.ensure(NAME, DEEPSEARCH_VERSION, cache_dir)
