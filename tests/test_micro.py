"""The embedded micro scenario: data splits, tokenizer, deterministic build, the shipped install."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autorl_gym.core.answers import extract_strict, reference_answer
from autorl_gym.core.durable import file_digest
from autorl_gym.micro.build import (
    MICRO_VERSION,
    MicroManifest,
    build_micro_assets,
    ensure_micro_assets,
)
from autorl_gym.micro.data import SPLIT_SIZES, make_splits, read_jsonl
from autorl_gym.micro.tokenizer import EOS_TOKEN, load_tokenizer, train_tokenizer

LINE_RE = re.compile(r"^(\d+) ([+\-*]) (\d+) = (\d+)\n#### (\d+)$")


@pytest.fixture(scope="module")
def splits():
    return make_splits()


def test_split_sizes_and_disjoint(splits) -> None:
    assert {k: len(v) for k, v in splits.items()} == SPLIT_SIZES
    questions = {k: [p.question for p in v] for k, v in splits.items()}
    for name, qs in questions.items():
        assert len(set(qs)) == len(qs), f"duplicate question inside {name}"
    train, dev, test = (set(questions[k]) for k in ("train", "dev", "test"))
    assert not train & dev
    assert not train & test
    assert not dev & test


def test_answers_well_formed(splits) -> None:
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
    for records in splits.values():
        for p in records:
            m = LINE_RE.match(p.answer)
            assert m, p.answer
            a, op, b, c, final = m.groups()
            assert ops[op](int(a), int(b)) == int(c) == int(final)
            assert reference_answer(p.answer) == final
            assert extract_strict(p.answer) == final
            assert a in p.question and b in p.question


def test_splits_deterministic(splits) -> None:
    again = make_splits()
    assert again == splits


def test_tokenizer_round_trip(tmp_path: Path, splits) -> None:
    corpus = [f"Question: {p.question}\nAnswer: {p.answer}" for p in splits["train"][:1000]]
    tok = train_tokenizer(corpus)
    tok.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.eos_token == loaded.pad_token == EOS_TOKEN
    assert loaded.bos_token is None
    assert loaded.get_vocab() == tok.get_vocab()
    for p in splits["test"][:50]:
        text = f"Question: {p.question}\nAnswer: {p.answer}"
        ids = loaded(text)["input_ids"]
        assert ids == tok(text)["input_ids"]
        assert loaded.decode(ids) == text
        with_eos = loaded(text + EOS_TOKEN)["input_ids"]
        assert with_eos[-1] == loaded.eos_token_id
        assert loaded.decode(with_eos, skip_special_tokens=True) == text
    # numbers are tokenised digit by digit and survive decoding exactly
    ids = loaded("#### 1907")["input_ids"]
    assert loaded.decode(ids) == "#### 1907"
    assert [loaded.decode([i]) for i in ids[-4:]] == ["1", "9", "0", "7"]
    # text outside the training vocabulary still round-trips (byte-level)
    assert loaded.decode(loaded("Zürich costs $3.50!")["input_ids"]) == "Zürich costs $3.50!"


def test_build_deterministic(tmp_path: Path) -> None:
    # 3 pretraining steps: any step that is not deterministic shows in the weights' hash; more
    # steps only cost time (15 steps: 201 s a build at load 15, 3 steps: 39 s)
    a = build_micro_assets(tmp_path / "a", pretrain_steps=3, measure_baseline=False)
    b = build_micro_assets(tmp_path / "b", pretrain_steps=3, measure_baseline=False)
    assert a.weights_sha256 == b.weights_sha256
    assert a.tokenizer_sha256 == b.tokenizer_sha256
    for rel in ("train/train.jsonl", "hidden/dev.jsonl", "hidden/test.jsonl"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    model_dir = tmp_path / "a" / "model"
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json"):
        assert (model_dir / name).is_file()
    gen = json.loads((model_dir / "generation_config.json").read_text())
    tok = load_tokenizer(model_dir)
    assert gen["eos_token_id"] == tok.eos_token_id
    assert gen["pad_token_id"] == tok.pad_token_id
    # the train directory (mounted in the sandbox) holds the train split only
    assert sorted(p.name for p in (tmp_path / "a" / "train").iterdir()) == ["train.jsonl"]


def test_shipped_assets_install_in_a_fresh_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, micro_assets
) -> None:
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path))
    assets = ensure_micro_assets(progress=False)
    assert assets.root == tmp_path / "micro" / f"arith-v{MICRO_VERSION}"
    manifest = MicroManifest.model_validate_json((assets.root / "manifest.json").read_text())
    assert manifest.version == MICRO_VERSION
    # the shipped model, the very weights of the shared cache's, and the build record with it
    assert manifest.weights_sha256 == micro_assets.manifest().weights_sha256
    assert manifest.weights_sha256 == file_digest(assets.model_dir / "model.safetensors")
    assert manifest.sizes == SPLIT_SIZES
    assert 0.05 <= manifest.baseline["test_strict"] <= 0.30
    assert 0.0 < manifest.baseline["dev_strict"] <= 0.40
    # the splits are generated here, and come out as the build's
    assert len(read_jsonl(assets.train_dir / "train.jsonl")) == SPLIT_SIZES["train"]
    assert len(read_jsonl(assets.hidden_dir / "test.jsonl")) == SPLIT_SIZES["test"]
    for rel in ("train/train.jsonl", "hidden/test.jsonl"):
        assert (assets.root / rel).read_bytes() == (micro_assets.root / rel).read_bytes()
    # a second call reuses the install
    again = ensure_micro_assets(progress=False)
    assert again == assets
