"""The micro WebShop scenario: a generated shop, generated sessions and a micro policy, offline.

Layout of ``$AUTORL_GYM_CACHE/micro/webshop-v{WEBSHOP_VERSION}/``::

    model/             the micro policy (Qwen2 architecture) and its tokenizer
    train/shop/        items_shuffle.json, items_ins_v2.json (WebShop's layout), index/ (BM25)
    train/sessions/    the training sessions (``*.shop.json``): the only goals an agent sees
    hidden/dev/        dev sessions (grader only)
    hidden/test/       test sessions (grader only)
    manifest.json      version, seeds, sizes, weights sha256, build seconds

The catalogue and the goals come from :mod:`autorl_gym.micro.shop_catalogue`; train, dev and
test goals are drawn from disjoint seeds. The sessions are played by the same engine as the real
WebShop (:mod:`autorl_gym.interactive.webshop`: pages, BM25 search, WebShop's reward). The policy
is pre-trained on the evaluator's prompts from walks in the training sessions that follow the
expert half the time; in the sessions of the first ``expert_types`` product types (deodorant)
they are labelled with the expert's command on a session's first step and on a fraction
``expert_fraction`` of the later ones, with a random admissible command otherwise; in the other
types' sessions always with a random admissible command. It is then briefly trained on the
expert's walkthroughs of that one type's training sessions. The policy shops for one type in
ten and wanders in the others (a low, non-zero baseline, ~8% of test sessions); fine-tuning on
the expert's labels of every training session lifts it. Since almost any product of the right
type bought with the goal's options reaches reward 0.5, the success rate mostly measures
reaching ``buy now`` within the step limit: a policy that imitates the expert on every type
gets there. The evaluator picks among the admissible commands (``choose: admissible``).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from autorl_gym.interactive import PromptSpec, Turn, expert_policy, make_prompt, rollout
from autorl_gym.interactive.webshop import ShopEnv, ShopSession, find_sessions, write_session
from autorl_gym.micro.policy import BuiltPolicy, PolicyTraining, build_policy
from autorl_gym.micro.shipped import InstalledAssets
from autorl_gym.micro.shop_catalogue import TYPES, make_goals, make_products, write_shop

# Bump whenever the catalogue, sessions, prompt, tokenizer, model or pre-training change.
WEBSHOP_VERSION = 2
NAME = "webshop"
CATALOGUE_SEED = 1
PRODUCTS_PER_TYPE = 16
SEEDS = {"train": 10_000, "dev": 20_000, "test": 30_000}
SIZES = {"train": 120, "dev": 24, "test": 48}
MAX_STEPS = 10
PROMPT = PromptSpec(history=1, max_obs_chars=1000, max_goal_chars=300, intro=False, admissible=False)


class WebShopBuild(BaseModel):
    steps: int = 120
    batch_size: int = 16
    layers: int = 2
    lr: float = 2e-3
    walks_per_session: int = 1
    walk_steps: int = 6
    follow: float = 0.5           # a walk takes the expert's command with this probability
    expert_fraction: float = 0.5  # ... and a later step is labelled with it with this one
    warmup_sessions: int = 120    # expert walkthroughs of the first N training sessions ...
    warmup_steps: int = 40        # ... the pre-trained policy is then trained on, briefly
    # the expert's labels (pre-training and warm-up) only on sessions of the first N product
    # types: the policy shops for those and wanders in the others (a low, non-zero baseline)
    expert_types: int = 1
    seed: int = 1234
    threads: int = 1              # one torch thread: two were ~4x slower on shared 2-core machines


class WebShopManifest(BaseModel):
    version: int
    seeds: dict[str, int]
    sizes: dict[str, int]
    products: int
    max_steps: int
    weights_sha256: str
    num_parameters: int
    pretrain_examples: int
    final_loss: float
    build: WebShopBuild
    build_seconds: float


class WebShopAssets(InstalledAssets):
    train_split: ClassVar[str] = "sessions"


def write_sessions(dest: Path) -> int:
    """The generated shop and every split's sessions under ``dest``; the number of products."""
    import os

    products = make_products(PRODUCTS_PER_TYPE, CATALOGUE_SEED)
    shop = dest / "train" / "shop"
    write_shop(shop, products)
    for split, seed in SEEDS.items():
        out = dest / "train" / "sessions" if split == "train" else dest / "hidden" / split
        out.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(shop, out)
        for i, goal in enumerate(make_goals(products, SIZES[split], seed)):
            name = f"{split}_{i:04d}"
            write_session(out / f"{name}.shop.json",
                          ShopSession(session=seed + i, name=name, shop=rel, goal=goal))
    return len(products)


def pretrain_examples(sessions_dir: Path, cfg: WebShopBuild) -> list[tuple[str, str]]:
    """(prompt, command) pairs from walks that follow the expert with probability ``follow`` (a
    random admissible command otherwise), labelled with the expert's command on the first step and
    on a fraction ``expert_fraction`` of the later ones, else with a random admissible command."""
    rng = random.Random(f"autorl-gym/webshop/pretrain/{cfg.seed}")
    examples: list[tuple[str, str]] = []
    known = expert_types(cfg)
    for ref in find_sessions(sessions_dir):
        env = ShopEnv(ref, max_steps=cfg.walk_steps, expert=True)
        labelled = env.goal.get("query") in known
        for _ in range(cfg.walks_per_session):
            st = env.reset()
            turns: list[Turn] = []
            while not st.done:
                prompt = make_prompt(st, turns, PROMPT)
                if labelled and st.expert_actions and (not turns or rng.random() < cfg.expert_fraction):
                    label = st.expert_actions[0]
                else:
                    label = rng.choice(st.admissible_commands)
                examples.append((prompt, label))
                act = (st.expert_actions[0] if st.expert_actions and rng.random() < cfg.follow
                       else rng.choice(st.admissible_commands))
                nxt = env.step(act)
                turns.append(Turn(prompt=prompt, completion=act, action=act,
                                  observation=nxt.observation, admissible=True, won=nxt.won))
                st = nxt
    return examples


def expert_types(cfg: WebShopBuild) -> set[str]:
    """The product types (search queries) whose sessions the pre-training labels with the expert."""
    return {t.noun for t in TYPES[:cfg.expert_types]}


def warmup_examples(sessions_dir: Path, cfg: WebShopBuild) -> list[tuple[str, str]]:
    """(prompt, expert command) pairs of the expert's walkthroughs of the first
    ``warmup_sessions`` training sessions of the expert's product types, in the evaluator's
    prompt format."""
    known = expert_types(cfg)
    refs = [r for r in find_sessions(sessions_dir)[:cfg.warmup_sessions]
            if ShopEnv(r).goal.get("query") in known]
    episodes = rollout(refs, expert_policy, max_steps=MAX_STEPS, prompt=PROMPT, expert=True)
    return [(t.prompt, t.action) for e in episodes for t in e.turns]


def build_shop_policy(dest: Path, cfg: WebShopBuild, progress: bool = False) -> BuiltPolicy:
    """Pre-train the micro policy on the training sessions; saves it in ``dest/model``."""
    sessions = dest / "train" / "sessions"
    return build_policy(dest, pretrain_examples(sessions, cfg), lambda: warmup_examples(sessions, cfg),
                        PolicyTraining(layers=cfg.layers, steps=cfg.steps, batch_size=cfg.batch_size,
                                       lr=cfg.lr, seed=cfg.seed, threads=cfg.threads,
                                       warmup_steps=cfg.warmup_steps, warmup_batch_size=cfg.batch_size,
                                       warmup_lr=cfg.lr, max_positions=1024, model_max_length=1024),
                        "micro shopping policy", progress)


def build_webshop_assets(dest: Path, cfg: WebShopBuild | None = None,
                         progress: bool = False) -> WebShopManifest:
    """Build the shop, the sessions and the micro policy into ``dest``; deterministic."""
    from autorl_gym.core.durable import file_digest
    from autorl_gym.interactive.shop_data import Shop

    t0 = time.monotonic()
    cfg = cfg or WebShopBuild()
    n_products = write_sessions(dest)
    Shop(dest / "train" / "shop", save_index=True)  # saves the BM25 index
    built = build_shop_policy(dest, cfg, progress)
    model, losses, n_examples = built.model, built.losses, built.examples
    manifest = WebShopManifest(
        version=WEBSHOP_VERSION, seeds=SEEDS, sizes=SIZES, products=n_products, max_steps=MAX_STEPS,
        weights_sha256=file_digest(dest / "model" / "model.safetensors"),
        num_parameters=sum(p.numel() for p in model.parameters()),
        pretrain_examples=n_examples, final_loss=sum(losses[-20:]) / max(1, len(losses[-20:])),
        build=cfg, build_seconds=round(time.monotonic() - t0, 2),
    )
    (dest / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def build_webshop(dest: Path, progress: bool = True) -> WebShopManifest:
    """The full build of the current version (what ``autorl-gym micro build webshop`` runs)."""
    return build_webshop_assets(dest, progress=progress)


def webshop_assets_if_built(cache_dir: Path | None = None) -> WebShopAssets | None:
    """The installed shop, sessions and policy if they are on disk; never installs."""
    return WebShopAssets.if_installed(NAME, WEBSHOP_VERSION, cache_dir)


def ensure_webshop_assets(cache_dir: Path | None = None, progress: bool = True) -> WebShopAssets:
    """The shipped shop, sessions and micro policy (sha256 published in ``artifacts.json``),
    installed into the cache on first use and checked on every load. Never builds: ``autorl-gym
    micro build webshop`` makes the next version."""
    return WebShopAssets.ensure(NAME, WEBSHOP_VERSION, cache_dir)
