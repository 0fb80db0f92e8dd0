"""The one pre-training pipeline of the micro interactive policies (TextWorld, WebShop, search):
a tokenizer trained on the examples, a small Qwen2 pre-trained on them, an optional warm-up on
expert demonstrations, saved in ``dest/model``. Deterministic for given examples and settings."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

Examples = list[tuple[str, str]]


class PolicyTraining(BaseModel):
    """How one micro policy is pre-trained (each build's config fills it)."""

    layers: int
    steps: int
    batch_size: int
    lr: float
    seed: int
    threads: int
    warmup_steps: int
    warmup_batch_size: int
    warmup_lr: float
    max_positions: int = 512
    model_max_length: int | None = None


class BuiltPolicy(BaseModel):
    model_config = {"arbitrary_types_allowed": True}

    model: Any
    losses: list[float]
    examples: int


def documents(tokenizer: Any, examples: Examples) -> list[list[int]]:
    return [tokenizer(f"{p} {c}\n" + tokenizer.eos_token)["input_ids"] for p, c in examples]


def batches(docs: list[list[int]], batch_size: int, seed: int) -> Iterator[list[list[int]]]:
    rng = random.Random(f"autorl-gym/textworld/batches/{seed}")  # the name every build seeds with
    order = list(range(len(docs)))
    while True:
        rng.shuffle(order)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield [docs[j] for j in order[i:i + batch_size]]


@contextlib.contextmanager
def progress_ticks(enabled: bool, what: str, total: int) -> Iterator[Callable[[int], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


def build_policy(dest: Path, examples: Examples, warm: Callable[[], Examples], cfg: PolicyTraining,
                 what: str, progress: bool = False) -> BuiltPolicy:
    """Pre-train a micro policy on ``examples`` then warm it up on ``warm()`` (read after the
    pre-training, as every build always has), and save it with its tokenizer in ``dest/model``."""
    from autorl_gym.micro.model import (
        MicroModelSpec,
        PretrainConfig,
        create_model,
        deterministic_torch,
        make_config,
        pretrain,
    )
    from autorl_gym.micro.tokenizer import train_tokenizer

    tokenizer = train_tokenizer([f"{p} {c}" for p, c in examples], vocab_size=1024)
    if cfg.model_max_length is not None:
        tokenizer.model_max_length = cfg.model_max_length
    docs = documents(tokenizer, examples)
    spec = MicroModelSpec(max_position_embeddings=cfg.max_positions, num_hidden_layers=cfg.layers)
    pcfg = PretrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                          threads=cfg.threads, warmup_steps=20)
    with deterministic_torch(cfg.threads, cfg.seed), \
            progress_ticks(progress, f"pre-training the {what}", cfg.steps) as tick:
        model = create_model(make_config(spec, tokenizer), cfg.seed)
        losses = pretrain(model, batches(docs, cfg.batch_size, cfg.seed), pcfg,
                          pad_id=tokenizer.pad_token_id,
                          on_step=(lambda s, loss: tick(1)) if tick else None)
        demos = warm()
        if demos and cfg.warmup_steps:
            wcfg = PretrainConfig(steps=cfg.warmup_steps, batch_size=cfg.warmup_batch_size,
                                  lr=cfg.warmup_lr, seed=cfg.seed, threads=cfg.threads, warmup_steps=5)
            pretrain(model, batches(documents(tokenizer, demos), cfg.warmup_batch_size, cfg.seed),
                     wcfg, pad_id=tokenizer.pad_token_id)
    model_dir = dest / "model"
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    return BuiltPolicy(model=model, losses=losses, examples=len(examples))
