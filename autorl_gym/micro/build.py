"""The micro scenario's assets: base model, tokenizer, train and hidden splits.

The base model and tokenizer are shipped (:mod:`autorl_gym.micro.shipped`, sha256 published in
``autorl_gym/micro/artifacts/artifacts.json``); the splits are generated from fixed seeds when the
asset is installed and checked against their published hash. The build below stays, to make the
next version (``autorl-gym micro build arith``). Layout of
``$AUTORL_GYM_CACHE/micro/arith-v{MICRO_VERSION}/``::

    model/          config.json, model.safetensors, tokenizer files, generation_config.json
    train/          train.jsonl (the only split an agent ever sees)
    hidden/         dev.jsonl, test.jsonl (grader only)
    manifest.json   version, weights sha256, sizes, build seconds, measured baseline accuracy

The base model is pre-trained briefly on a corpus that teaches the arithmetic (bare equation
worksheets) and the question format, but shows the ``#### N`` answer line only for the
multiplication problems; its strict accuracy is therefore low but not zero, and supervised
fine-tuning on the train split lifts it a lot.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pydantic import BaseModel
from transformers import PreTrainedTokenizerBase, Qwen2ForCausalLM

from autorl_gym.core.answers import extract_strict, is_correct, reference_answer
from autorl_gym.core.durable import file_digest
from autorl_gym.micro.assets import (  # noqa: F401 - re-exported: where an install lies
    MicroAssets,
    _assets,
    asset_version,
    ensure_micro_assets,
    micro_assets_if_built,
)
from autorl_gym.micro.data import (
    DATA_SEED,
    MICRO_VERSION,
    SPLIT_SIZES,
    Draw,
    Problem,
    equation,
    format_answer,
    iter_draws,
    make_splits,
    pretrain_draws,
    read_jsonl,
    write_jsonl,
)
from autorl_gym.micro.model import (
    MicroModelSpec,
    PretrainConfig,
    create_model,
    deterministic_torch,
    make_config,
    pretrain,
)
from autorl_gym.micro.tokenizer import train_tokenizer

PROMPT_TEMPLATE = "Question: {question}\nAnswer:"
STOP_STRINGS: tuple[str, ...] = ("\n\n", "Question:")
MAX_NEW_TOKENS = 48

# Pre-training corpus: the answer line ``#### N`` is shown only for these problem kinds.
FORMAT_KINDS: frozenset[str] = frozenset({"mul"})
PROBLEM_FRACTION = 0.4
WORKSHEET_LINES = 4
PRETRAIN_POOL = 12000


class MicroManifest(BaseModel):
    """What ``manifest.json`` records about a build."""

    name: str
    version: int
    weights_sha256: str
    tokenizer_sha256: str
    sizes: dict[str, int]
    num_parameters: int
    pretrain: PretrainConfig
    model_spec: MicroModelSpec
    final_loss: float
    build_seconds: float
    baseline: dict[str, float]
    prompt_template: str = PROMPT_TEMPLATE
    stop: list[str] = list(STOP_STRINGS)
    max_new_tokens: int = MAX_NEW_TOKENS


# --------------------------------------------------------------------------- corpus


def _prompt(question: str) -> str:
    return PROMPT_TEMPLATE.format(question=question)


def _pretrain_problem_text(d: Draw) -> str:
    if d.kind in FORMAT_KINDS:
        completion = format_answer(d.a, d.op, d.b)
    else:
        completion, _ = equation(d.a, d.op, d.b)
    return f"{_prompt(d.question)} {completion}"


def _worksheet_text(stream: Iterator[Draw]) -> str:
    return "\n".join(equation(d.a, d.op, d.b)[0] for d in (next(stream) for _ in range(WORKSHEET_LINES)))


def _tokenizer_corpus(splits: dict[str, list[Problem]], pool: Sequence[Draw]) -> list[str]:
    texts = [f"{_prompt(p.question)} {p.answer}" for p in splits["train"]]
    texts += [_pretrain_problem_text(d) for d in pool[:4000]]
    return texts


def _batches(
    tokenizer: PreTrainedTokenizerBase,
    pool: Sequence[Draw],
    batch_size: int,
    seed: int,
) -> Iterator[list[list[int]]]:
    """Endless deterministic batches mixing word problems and equation worksheets."""
    rng = random.Random(f"autorl-gym/micro/pretrain-batches/{seed}")
    eq_stream = iter_draws("worksheets", seed)
    eos = tokenizer.eos_token
    order = list(range(len(pool)))
    pos = len(order)
    while True:
        batch: list[list[int]] = []
        for _ in range(batch_size):
            if rng.random() < PROBLEM_FRACTION:
                if pos >= len(order):
                    rng.shuffle(order)
                    pos = 0
                text = _pretrain_problem_text(pool[order[pos]])
                pos += 1
            else:
                text = _worksheet_text(eq_stream)
            batch.append(tokenizer(text + eos)["input_ids"])
        yield batch


# --------------------------------------------------------------------------- evaluation


def evaluate(
    model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerBase, records: Sequence[Problem]
) -> float:
    """Strict accuracy (a fraction) under the grading protocol, with the grader's own generation."""
    from autorl_gym.core.scenario import Protocol
    from autorl_gym.grading.backends.hf import generate

    protocol = Protocol(prompt_template=PROMPT_TEMPLATE, max_new_tokens=MAX_NEW_TOKENS,
                        stop=list(STOP_STRINGS))
    tokenizer.padding_side = "left"
    model.eval()
    completions = generate(model, tokenizer, [_prompt(r.question) for r in records], protocol,
                           batch_size=64)
    hits = sum(
        is_correct(extract_strict(c), reference_answer(r.answer))
        for c, r in zip(completions, records, strict=True)
    )
    return hits / max(1, len(records))


# --------------------------------------------------------------------------- build


def build_micro_assets(
    dest: Path,
    pretrain_steps: int | None = None,
    *,
    name: str = "arith",
    measure_baseline: bool = True,
    progress: bool = False,
    seed: int = DATA_SEED,
    pretrain_config: PretrainConfig | None = None,
    model_spec: MicroModelSpec | None = None,
) -> MicroManifest:
    """Build every asset into ``dest`` (created; must not hold a previous build).

    Deterministic: the same arguments give bit-identical weights on the same machine.
    """
    if name != "arith":
        raise ValueError(f"unknown micro scenario {name!r} (known: 'arith')")
    t0 = time.monotonic()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cfg = pretrain_config or PretrainConfig()
    if pretrain_steps is not None:
        cfg = cfg.model_copy(update={"steps": pretrain_steps})
    spec = model_spec or MicroModelSpec()

    splits = make_splits(seed=seed)
    used = [p.question for records in splits.values() for p in records]
    pool = pretrain_draws(PRETRAIN_POOL, used, seed=seed)
    tokenizer = train_tokenizer(_tokenizer_corpus(splits, pool))

    with deterministic_torch(cfg.threads, cfg.seed), _progress(progress, cfg.steps) as on_step:
        model = create_model(make_config(spec, tokenizer), cfg.seed)
        losses = pretrain(
            model,
            _batches(tokenizer, pool, cfg.batch_size, seed),
            cfg,
            pad_id=tokenizer.pad_token_id,
            on_step=on_step,
        )
        baseline: dict[str, float] = {}
        if measure_baseline:
            baseline = {
                "test_strict": evaluate(model, tokenizer, splits["test"]),
                "dev_strict": evaluate(model, tokenizer, splits["dev"]),
            }

    model_dir = dest / "model"
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    _write_splits(dest, splits)

    manifest = MicroManifest(
        name=name,
        version=MICRO_VERSION,
        weights_sha256=file_digest(model_dir / "model.safetensors"),
        tokenizer_sha256=file_digest(model_dir / "tokenizer.json"),
        sizes={k: len(v) for k, v in splits.items()},
        num_parameters=sum(p.numel() for p in model.parameters()),
        pretrain=cfg,
        model_spec=spec,
        final_loss=sum(losses[-20:]) / max(1, len(losses[-20:])),
        build_seconds=round(time.monotonic() - t0, 2),
        baseline=baseline,
    )
    (dest / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int, float], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]building micro model"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps  loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("pretrain", total=total, loss=float("nan"))

        def on_step(step: int, loss: float) -> None:
            bar.update(task, completed=step + 1, loss=loss)

        yield on_step


def build_arith(dest: Path, progress: bool = True) -> MicroManifest:
    """The full build of the current version (what ``autorl-gym micro build arith`` runs)."""
    return build_micro_assets(dest, progress=progress)


def write_arith_data(dest: Path, seed: int = DATA_SEED) -> None:
    """The train, dev and test splits (seeded, pure Python: the same bytes on every machine)."""
    _write_splits(dest, make_splits(seed=seed))


def _write_splits(dest: Path, splits: dict[str, list[Problem]]) -> None:
    write_jsonl(dest / "train" / "train.jsonl", splits["train"])
    write_jsonl(dest / "hidden" / "dev.jsonl", splits["dev"])
    write_jsonl(dest / "hidden" / "test.jsonl", splits["test"])


def load_split(assets: MicroAssets, split: str) -> list[Problem]:
    path = {"train": assets.train_file, "dev": assets.dev_file, "test": assets.test_file}[split]
    return read_jsonl(path)


__all__ = [
    "MICRO_VERSION",
    "PROMPT_TEMPLATE",
    "SPLIT_SIZES",
    "STOP_STRINGS",
    "MicroAssets",
    "MicroManifest",
    "build_arith",
    "build_micro_assets",
    "ensure_micro_assets",
    "evaluate",
    "write_arith_data",
    "load_split",
]
