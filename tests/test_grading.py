"""The hf grader: full models and LoRA adapters, content hashes, baseline caching."""

from __future__ import annotations

import shutil

import pytest

from autorl_gym.core.family import resolve_assets
from autorl_gym.core.records import SubmissionError
from autorl_gym.grading.grader import Grader
from autorl_gym.grading.submission import inspect_submission, model_dir_hash, workspace_relpath
from autorl_gym.scenarios.catalog import get_scenario

LIMIT = 40


@pytest.fixture(scope="module")
def grader(micro_assets) -> Grader:
    sc = get_scenario("AutoRL-Micro-Arith-v0")
    return Grader(sc, resolve_assets(sc, progress=False))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path / "cache"))


def test_hash_is_of_contents_not_layout(grader, micro_assets, tmp_path):
    """Sharded, with the tied lm_head written out: the same tensors, the same hash."""
    import json

    from safetensors.torch import load_file, save_file

    tensors = load_file(str(micro_assets.model_dir / "model.safetensors"))
    d = tmp_path / "sharded"
    d.mkdir()
    shutil.copy(micro_assets.model_dir / "config.json", d)
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for name, part in shards.items():
        extra = {"lm_head.weight": tensors["model.embed_tokens.weight"].clone()} \
            if name.startswith("model-00002") else {}
        save_file({k: tensors[k] for k in part} | extra, str(d / name), metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
             "weight_map": {k: n for n, ks in shards.items() for k in ks}}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    info = inspect_submission(d)
    assert info.kind == "full" and len(info.weight_files) == 2 and not info.has_tokenizer
    assert model_dir_hash(d) == grader.base_hash
    res = grader.evaluate(d, "dev", limit=8)
    assert res.kind == "base"
    tensors["model.norm.weight"][0] += 1e-3
    save_file({k: tensors[k] for k in shards["model-00002-of-00002.safetensors"]},
              str(d / "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
    assert model_dir_hash(d) != grader.base_hash


def test_full_model_without_tokenizer_uses_base_tokenizer(grader, micro_assets, tmp_path):
    dest = tmp_path / "m"
    dest.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(micro_assets.model_dir / name, dest / name)
    res = grader.evaluate(dest, "dev", limit=LIMIT)
    base = grader.evaluate(micro_assets.model_dir, "dev", limit=LIMIT)
    assert res.n == LIMIT and res.kind == "base"
    assert res.score == base.score and res.correct == base.correct
    assert res.score == pytest.approx(100 * res.correct / res.n)
    assert any("tokenizer" in n for n in res.notes)
    assert len(res.items) == LIMIT and all(i.completion is not None for i in res.items)


def test_lora_adapter_is_graded_on_the_base(grader, micro_assets, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(micro_assets.model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "lora")
    AutoTokenizer.from_pretrained(micro_assets.model_dir).save_pretrained(tmp_path / "lora")
    info = inspect_submission(tmp_path / "lora")
    assert info.kind == "lora" and info.has_tokenizer
    res = grader.evaluate(tmp_path / "lora", "dev", limit=LIMIT, info=info)
    assert res.kind == "lora" and res.n == LIMIT and 0 <= res.score <= 100
    assert res.model_hash != grader.base_hash


def test_broken_adapter_is_a_clear_error(grader, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    (d / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(SubmissionError):
        grader.evaluate(d, "dev", limit=4)


def test_baseline_measured_once_and_keyed_by_settings(grader, tmp_path):
    first = grader.baseline("dev", limit=LIMIT)
    path = grader._baseline_path("dev", LIMIT)
    assert path.is_file()
    mtime = path.stat().st_mtime_ns
    again = grader.baseline("dev", limit=LIMIT)
    assert again == first and path.stat().st_mtime_ns == mtime
    assert grader.baseline_key("test", LIMIT) != grader.baseline_key("dev", LIMIT)
    other = Grader(grader.scenario.model_copy(update={
        "protocol": grader.scenario.protocol.model_copy(update={"max_new_tokens": 8})}),
        grader.assets)
    assert other.baseline_key("dev", LIMIT) != grader.baseline_key("dev", LIMIT)
    path.write_text("{ damaged")
    assert grader.cached_baseline("dev", LIMIT) is None


def test_workspace_relpath(tmp_path):
    ws = tmp_path / "ws"
    (ws / "output" / "m").mkdir(parents=True)
    assert workspace_relpath("output/m", ws) == "output/m"
    assert workspace_relpath("./output//m/", ws) == "output/m"
    assert workspace_relpath(str(ws / "output" / "m"), ws) == "output/m"
    for bad in ("..", "../ws2", "/", "output/../../x", "."):
        with pytest.raises(SubmissionError):
            workspace_relpath(bad, ws)
