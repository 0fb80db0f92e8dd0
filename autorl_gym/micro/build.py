"""Build and cache the micro scenario's assets: base model, tokenizer, train and hidden splits.

Layout of ``$AUTORL_GYM_CACHE/micro/arith-v{MICRO_VERSION}/``::

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
import fcntl
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pydantic import BaseModel
from transformers import PreTrainedTokenizerBase, Qwen2ForCausalLM

from autorl_gym.io import file_digest
from autorl_gym.micro import MICRO_VERSION
from autorl_gym.micro.data import (
    DATA_SEED,
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
from autorl_gym.paths import cache_dir as default_cache_dir
from autorl_gym.tasks.answers import extract_strict, reference_answer

PROMPT_TEMPLATE = "Question: {question}\nAnswer:"
STOP_STRINGS: tuple[str, ...] = ("\n\n", "Question:")
MAX_NEW_TOKENS = 48

# Pre-training corpus: the answer line ``#### N`` is shown only for these problem kinds.
FORMAT_KINDS: frozenset[str] = frozenset({"mul"})
PROBLEM_FRACTION = 0.4
WORKSHEET_LINES = 4
PRETRAIN_POOL = 12000


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
        return MicroManifest.model_validate_json((self.root / "manifest.json").read_text())


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
    from autorl_gym.grading.hf_backend import generate
    from autorl_gym.scenario import Protocol

    protocol = Protocol(prompt_template=PROMPT_TEMPLATE, max_new_tokens=MAX_NEW_TOKENS,
                        stop=list(STOP_STRINGS))
    tokenizer.padding_side = "left"
    model.eval()
    completions = generate(model, tokenizer, [_prompt(r.question) for r in records], protocol,
                           batch_size=64)
    hits = sum(
        extract_strict(c) == reference_answer(r.answer)
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
    write_jsonl(dest / "train" / "train.jsonl", splits["train"])
    write_jsonl(dest / "hidden" / "dev.jsonl", splits["dev"])
    write_jsonl(dest / "hidden" / "test.jsonl", splits["test"])

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


def _make_readable(root: Path) -> None:
    """World-readable assets (mkdtemp makes 0700): the sandbox may run as another user."""
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _assets(name: str, root: Path) -> MicroAssets:
    return MicroAssets(
        name=name,
        version=MICRO_VERSION,
        root=root,
        model_dir=root / "model",
        train_dir=root / "train",
        hidden_dir=root / "hidden",
    )


def _complete(root: Path) -> bool:
    return (root / "manifest.json").is_file() and (root / "model" / "model.safetensors").is_file()


def micro_assets_if_built(name: str = "arith", cache_dir: Path | None = None) -> MicroAssets | None:
    """The cached assets if a complete build is on disk; never builds."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = base / "micro" / f"{name}-v{MICRO_VERSION}"
    return _assets(name, root) if _complete(root) else None


def ensure_micro_assets(
    name: str = "arith", cache_dir: Path | None = None, progress: bool = True
) -> MicroAssets:
    """The cached micro assets for ``name``, built on first use (about a minute on a CPU)."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"bad micro scenario name {name!r}")
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    parent = base / "micro"
    root = parent / f"{name}-v{MICRO_VERSION}"
    if _complete(root):
        return _assets(name, root)
    parent.mkdir(parents=True, exist_ok=True)
    lock_path = parent / f".{name}-v{MICRO_VERSION}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _complete(root):  # another process built it while we waited
                return _assets(name, root)
            prefix = f".{name}-v{MICRO_VERSION}."
            for stale in parent.glob(prefix + "*"):  # left by a killed build; we hold the lock
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            try:
                build_micro_assets(tmp, name=name, progress=progress)
                _make_readable(tmp)
                if root.exists():  # a partial leftover from an interrupted build
                    shutil.rmtree(root)
                tmp.rename(root)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _assets(name, root)


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
    "build_micro_assets",
    "ensure_micro_assets",
    "evaluate",
    "load_split",
]
