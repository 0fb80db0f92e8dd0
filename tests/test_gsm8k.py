"""AutoRL-GSM8K-v0: real GSM8K items (``$AUTORL_GYM_DATA_DIR/gsm8k``, see conftest.shared_data),
the micro model as base, the hf and lm_eval backends compared item by item, a real peft LoRA
adapter graded through both, and every refused submission."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from conftest import shared_data

from autorl_gym.core.family import resolve_assets
from autorl_gym.core.records import SubmissionError
from autorl_gym.core.scenario import Scenario
from autorl_gym.grading.backends.registry import build_prompts
from autorl_gym.grading.grader import Grader
from autorl_gym.grading.submission import check_submission, inspect_submission
from autorl_gym.scenarios.catalog import get_scenario
from autorl_gym.tasks.gsm8k import ensure_gsm8k, load_local, question_key
from autorl_gym.tasks.qa import SplitLoadError

GSM8K_ID = "AutoRL-GSM8K-v0"


@pytest.fixture(scope="module")
def gsm8k_dir() -> Path:
    """The real GSM8K files (skipped without them, failed under CI)."""
    return shared_data("gsm8k", "train.jsonl", "test.jsonl")


@pytest.fixture(scope="module")
def gsm8k_env(gsm8k_dir, tmp_path_factory):
    """AUTORL_GYM_DATA_DIR pointed at the real data, and a private cache, for this module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTORL_GYM_DATA_DIR", str(gsm8k_dir.parent))
        mp.setenv("AUTORL_GYM_CACHE", str(tmp_path_factory.mktemp("gsm8k_cache")))
        yield


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return get_scenario(GSM8K_ID)


@pytest.fixture(scope="module")
def assets(micro_assets, gsm8k_env, scenario):  # micro first: built in the shared cache
    return resolve_assets(scenario, base_model=str(micro_assets.model_dir), progress=False)


def _grader(scenario: Scenario, assets, backend: str, tmp: Path, **protocol) -> Grader:
    sc = scenario.model_copy(update={"protocol": scenario.protocol.model_copy(update=protocol)})
    return Grader(sc, assets, backend=backend, log_root=tmp)


def _train_lora(base_dir: Path, out: Path, problems, steps: int = 30) -> None:
    """A real LoRA adapter: a few steps of SFT with peft on GSM8K train problems."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    texts = [f"Question: {p.question}\nAnswer: {p.answer}\n\n" for p in problems]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for step in range(steps):
        batch = [texts[(step * 4 + i) % len(texts)] for i in range(4)]
        enc = tok(batch, return_tensors="pt", padding=True, truncation=True, max_length=96)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    tok.save_pretrained(out)


@pytest.fixture(scope="module")
def micro_scenario() -> Scenario:
    return get_scenario("AutoRL-Micro-Arith-v0")


@pytest.fixture(scope="module")
def micro_grading_assets(micro_assets, micro_scenario):
    return resolve_assets(micro_scenario, progress=False)


@pytest.fixture(scope="module")
def lora_dir(micro_assets, tmp_path_factory) -> Path:
    """Trained on the micro task, where the micro model writes real answers (on GSM8K it cannot)."""
    from autorl_gym.tasks.qa import load_jsonl_split

    out = tmp_path_factory.mktemp("lora") / "adapter"
    _train_lora(micro_assets.model_dir, out, load_jsonl_split(micro_assets.train_dir / "train.jsonl", 64))
    return out


# ---------------------------------------------------------------------------------- data
def test_scenario_is_registered_with_its_reference_baseline(scenario):
    import gymnasium as gym

    assert GSM8K_ID in gym.registry
    assert scenario.level == 1 and scenario.base_model == "Qwen/Qwen2.5-3B-Instruct"
    assert scenario.data.source == "gsm8k" and scenario.data.dev_size == 500
    ref = scenario.reference_baseline
    assert ref is not None and ref.score == 62.47 and (ref.correct, ref.total) == (824, 1319)
    assert "5-shot" in ref.protocol and "strict-match" in ref.protocol
    assert scenario.protocol.few_shot == 5 and scenario.protocol.max_new_tokens == 256


def test_visible_train_holds_no_dev_or_test_problem(assets, scenario, gsm8k_dir):
    from autorl_gym.tasks.qa import load_jsonl_split

    train = load_jsonl_split(assets.train_dir / "train.jsonl")
    dev = load_jsonl_split(assets.hidden_splits["dev"])
    test = load_jsonl_split(assets.hidden_splits["test"])
    original = load_local(gsm8k_dir)
    assert len(dev) == 500 and len(test) == len(original["test"]) == 1319
    hidden = {question_key(p.question) for p in dev + test}
    assert not hidden & {question_key(p.question) for p in train}
    # dev is a slice of the original train split, drawn with the YAML's seed, and every other
    # train problem is visible unless it repeats a hidden question
    expected = sorted(random.Random(scenario.data.dev_seed).sample(range(7473), 500))
    assert [p.question for p in dev] == [original["train"][i].question for i in expected]
    dropped = len(original["train"]) - 500 - len(train)
    assert 0 <= dropped < 20
    # the hidden files live outside the mounted train folder
    assert not assets.hidden_splits["dev"].is_relative_to(assets.train_dir)
    assert list(assets.train_dir.iterdir()) == [assets.train_dir / "train.jsonl"]


def test_materialization_is_deterministic_and_cached(assets, scenario):
    again = ensure_gsm8k(scenario.data)
    assert again.train_dir == assets.train_dir
    assert again.manifest.sizes["dev"] == 500
    assert again.manifest.sizes["train"] + 500 + len(again.manifest.dropped_from_train) == 7473


def test_malformed_local_files_name_the_path_and_line(tmp_path, gsm8k_dir):
    folder = tmp_path / "gsm8k"
    with pytest.raises(SplitLoadError, match="GSM8K folder not found"):
        load_local(folder)
    folder.mkdir()
    lines = (gsm8k_dir / "train.jsonl").read_text().splitlines()[:3]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(SplitLoadError, match="test.jsonl: split file not found"):
        load_local(folder)
    (folder / "test.jsonl").write_text(lines[0] + "\n")
    (folder / "train.jsonl").write_text("\n".join([lines[0], lines[1], "{not json", lines[2]]) + "\n")
    with pytest.raises(SplitLoadError, match=r"train\.jsonl:3: not valid JSON"):
        load_local(folder)
    (folder / "train.jsonl").write_text(lines[0] + "\n" + json.dumps({"question": "q", "answer": "4"}))
    with pytest.raises(SplitLoadError, match=r"train\.jsonl:2: answer has no '#### ' marker"):
        load_local(folder)


def test_hub_failure_is_a_clear_error(monkeypatch, tmp_path):
    from autorl_gym.tasks.gsm8k import load_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(SplitLoadError, match="AUTORL_GYM_DATA_DIR"):
        load_hub("openai/gsm8k", "main")


# ------------------------------------------------------------------------- backend parity
def _compare(a, b, lm_run: Path, prompts: list[str]) -> None:
    """hf (a) and lm_eval (b) results agree item by item: prompt, text, both extractions."""
    assert a.n == b.n and a.score == b.score and a.metrics["flexible"] == b.metrics["flexible"]
    samples = [json.loads(line) for line in (lm_run / "samples.jsonl").read_text().splitlines()]
    contexts = {s["doc_id"]: s["arguments"][0][0] for s in samples}
    filtered = {(s["doc_id"], s["filter"]): s["filtered_resps"][0] for s in samples}
    for k, (x, y) in enumerate(zip(a.items, b.items, strict=True)):
        assert contexts[k] == prompts[k]
        assert x.completion == y.completion, f"item {k} differs"
        assert (x.answer, x.details["flexible"]) == (y.answer, y.details["flexible"])
        # lm-eval's own filters read the same answers as the project's extraction
        lm_strict = filtered[(k, "strict-match")]
        lm_flex = filtered[(k, "flexible-extract")]
        assert (None if lm_strict == "[invalid]" else lm_strict) == x.answer
        assert (None if lm_flex == "[invalid]" else lm_flex) == x.details["flexible"]
    assert "lm_eval_strict-match" in b.metrics
    assert b.metrics["lm_eval_strict-match"] == pytest.approx(a.score)


def _lm_run_dir(res) -> Path:
    note = next(n for n in res.notes if n.startswith("lm-eval task YAML"))
    return Path(note.rsplit(" in ", 1)[1])


def test_hf_and_lm_eval_agree_on_the_scenario_prompts(assets, scenario, tmp_path):
    """The scenario's own 5-shot protocol (generation shortened to keep the test quick)."""
    hf = _grader(scenario, assets, "hf", tmp_path, max_new_tokens=8)
    lm = _grader(scenario, assets, "lm_eval", tmp_path, max_new_tokens=8)
    a = hf.evaluate(assets.base_model_dir, "dev", limit=3)
    b = lm.evaluate(assets.base_model_dir, "dev", limit=3)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(assets.base_model_dir)
    prompts = build_prompts(hf.ctx, hf.ctx.items("dev", 3), tok)
    assert prompts[0].count("Question:") == 6 and prompts[0].endswith("\nAnswer:")
    _compare(a, b, _lm_run_dir(b), prompts)
    run = _lm_run_dir(b)
    task_yaml = next((run / "task").glob("*.yaml")).read_text()
    assert "first_n" in task_yaml and "num_fewshot: 5" in task_yaml
    assert a.protocol["backend"] == "hf" and b.protocol["backend"] == "lm_eval"


def test_hf_and_lm_eval_agree_item_by_item_on_real_answers(micro_grading_assets, micro_scenario,
                                                           tmp_path):
    """The micro model writes real answers on its own task: a comparison that can fail."""
    assets = micro_grading_assets
    hf = _grader(micro_scenario, assets, "hf", tmp_path)
    lm = _grader(micro_scenario, assets, "lm_eval", tmp_path)
    a = hf.evaluate(assets.base_model_dir, "dev", limit=12)
    b = lm.evaluate(assets.base_model_dir, "dev", limit=12)
    assert sum(i.details["flexible"] is not None for i in a.items) >= 10  # numeric answers ...
    assert any(i.answer is not None for i in a.items)                    # ... some in the #### format
    assert len({i.completion for i in a.items}) >= 10
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(assets.base_model_dir)
    prompts = build_prompts(hf.ctx, hf.ctx.items("dev", 12), tok)
    _compare(a, b, _lm_run_dir(b), prompts)


def test_lora_adapter_graded_through_hf_and_lm_eval(micro_grading_assets, micro_scenario, assets,
                                                   scenario, lora_dir, tmp_path):
    info = inspect_submission(lora_dir)
    assert info.kind == "lora"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lora_dir)
    # on the micro task, where the adapter's answers are real
    hf = _grader(micro_scenario, micro_grading_assets, "hf", tmp_path)
    lm = _grader(micro_scenario, micro_grading_assets, "lm_eval", tmp_path)
    a = hf.evaluate(lora_dir, "dev", limit=8, info=info)
    b = lm.evaluate(lora_dir, "dev", limit=8, info=info)
    assert a.kind == b.kind == "lora" and a.model_hash == b.model_hash != hf.base_hash
    base = hf.evaluate(micro_grading_assets.base_model_dir, "dev", limit=8)
    assert [i.completion for i in base.items] != [i.completion for i in a.items]
    _compare(a, b, _lm_run_dir(b), build_prompts(hf.ctx, hf.ctx.items("dev", 8), tok))
    # and on GSM8K, the adapter applied to the base model the run was given
    hf = _grader(scenario, assets, "hf", tmp_path, max_new_tokens=8)
    lm = _grader(scenario, assets, "lm_eval", tmp_path, max_new_tokens=8)
    a = hf.evaluate(lora_dir, "test", limit=2, info=info)
    b = lm.evaluate(lora_dir, "test", limit=2, info=info)
    assert a.kind == b.kind == "lora"
    _compare(a, b, _lm_run_dir(b), build_prompts(hf.ctx, hf.ctx.items("test", 2), tok))


# -------------------------------------------------------------------------------- refusals
def test_adapter_without_weights_is_refused(lora_dir, tmp_path):
    d = tmp_path / "noweights"
    d.mkdir()
    shutil.copy(lora_dir / "adapter_config.json", d)
    with pytest.raises(SubmissionError, match="no weights.*adapter_model.safetensors.*save_pretrained"):
        inspect_submission(d)


def test_adapter_for_another_base_is_refused(assets, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    other = Qwen2ForCausalLM(Qwen2Config(vocab_size=478, hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2))
    peft_model = get_peft_model(other, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    peft_model.peft_config["default"].base_model_name_or_path = "someone/other-model"
    peft_model.save_pretrained(tmp_path / "other")
    info = inspect_submission(tmp_path / "other")
    with pytest.raises(SubmissionError, match=r"trained for another base model \(someone/other-model\)"
                       r".*q_proj.*Train the adapter on the scenario's base model"):
        check_submission(info, assets.base_model_dir)


def test_full_model_without_its_tokenizer_is_refused(assets, scenario, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(assets.base_model_dir)
    model.resize_token_embeddings(480)  # as after adding chat tokens
    model.save_pretrained(tmp_path / "resized")
    grader = Grader(scenario, assets)
    with pytest.raises(SubmissionError, match=r"tokenizer missing.*480.*478.*tokenizer.save_pretrained"):
        grader.evaluate(tmp_path / "resized", "dev", limit=1)


def test_extra_special_tokens_as_a_list_is_refused(assets, scenario, lora_dir, tmp_path):
    d = tmp_path / "trl"
    shutil.copytree(lora_dir, d)
    cfg_path = d / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["extra_special_tokens"] = ["<|im_start|>", "<|im_end|>"]
    cfg_path.write_text(json.dumps(cfg))
    grader = Grader(scenario, assets)
    with pytest.raises(SubmissionError, match=r"'extra_special_tokens' as a list.*Delete the key"):
        grader.evaluate(d, "dev", limit=1)


def test_unloadable_tokenizer_is_refused_not_replaced(assets, scenario, lora_dir, tmp_path):
    d = tmp_path / "badtok"
    shutil.copytree(lora_dir, d)
    (d / "tokenizer.json").write_text("{ broken")
    grader = Grader(scenario, assets)
    with pytest.raises(SubmissionError, match=r"badtok: the tokenizer does not load"):
        grader.evaluate(d, "dev", limit=1)
