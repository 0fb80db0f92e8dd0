"""What can run here of the vllm and lm_eval backends without a GPU: request building, the
lm-eval task YAML, result parsing, clear errors; and the CLI's --backend."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from autorl_gym.cli.main import app
from autorl_gym.core.records import SubmissionError
from autorl_gym.core.scenario import GraderSpec, Protocol
from autorl_gym.grading.backends import lm_eval as lm_eval_backend
from autorl_gym.grading.backends import vllm as vllm_backend
from autorl_gym.grading.submission import inspect_submission
from autorl_gym.scenarios.catalog import get_scenario
from autorl_gym.tasks.qa import gsm8k_task_config, jinja_template

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.fixture
def adapter(micro_assets, tmp_path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(micro_assets.model_dir)
    get_peft_model(model, LoraConfig(r=12, target_modules=["q_proj"])).save_pretrained(tmp_path / "a")
    return tmp_path / "a"


def test_vllm_plan_for_a_full_model(micro_assets):
    sc = get_scenario("AutoRL-GSM8K-v0")
    info = inspect_submission(micro_assets.model_dir)
    plan = vllm_backend.plan_generation(info, micro_assets.model_dir, sc.grader, sc.protocol)
    assert plan.lora_path is None and not plan.engine.enable_lora
    assert plan.engine.model == str(micro_assets.model_dir) and plan.engine.dtype == "bfloat16"
    assert plan.sampling == {"temperature": 0.0, "max_tokens": 256,
                             "stop": ["Question:", "</s>", "<|im_end|>"], "seed": 0}
    assert "max_lora_rank" not in plan.engine.llm_kwargs()


def test_vllm_plan_for_an_adapter_serves_it_on_the_base(micro_assets, adapter):
    info = inspect_submission(adapter)
    grader = GraderSpec(backend="vllm", max_lora_rank=64)
    plan = vllm_backend.plan_generation(info, micro_assets.model_dir, grader, Protocol())
    assert plan.engine.enable_lora and plan.engine.model == str(micro_assets.model_dir)
    assert plan.lora_path == str(adapter) and plan.engine.tokenizer == str(micro_assets.model_dir)
    assert plan.engine.llm_kwargs()["max_lora_rank"] == 64
    with pytest.raises(SubmissionError, match="rank 12 is above the grader's max_lora_rank 8"):
        vllm_backend.plan_generation(info, micro_assets.model_dir,
                                     GraderSpec(backend="vllm", max_lora_rank=8), Protocol())


def test_vllm_outputs_are_cut_like_the_hf_backend():
    proto = Protocol(stop=["Question:", "\n\n"])
    outs = [SimpleNamespace(outputs=[SimpleNamespace(text=t)])
            for t in (" 4 #### 4\n\nQuestion: next", " #### 12", " 3 Quest")]
    assert vllm_backend.completion_texts(outs, proto) == [" 4 #### 4", " #### 12", " 3 Quest"]


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here: the missing-vLLM message cannot show")
def test_vllm_missing_is_a_clear_error(micro_assets):
    info = inspect_submission(micro_assets.model_dir)
    with pytest.raises(vllm_backend.VllmUnavailable, match=r"pip install -e '\.\[gpu\]'"):
        vllm_backend.generate(info, micro_assets.model_dir, GraderSpec(backend="vllm"), Protocol(),
                              ["Question: 1+1?\nAnswer:"])


def test_lm_eval_task_renders_the_protocol_prompt():
    import jinja2

    template = "Q {{x}} {{% if %}}: {question}\nA:"
    rendered = jinja2.Template(jinja_template(template)).render(question="2+2?")
    assert rendered == template.format(question="2+2?") == "Q {x} {% if %}: 2+2?\nA:"
    cfg = gsm8k_task_config(Protocol(few_shot=3, max_new_tokens=17, stop=["Q:"]),
                            Path("/t.jsonl"), Path("/e.jsonl"), "autorl_test")
    assert cfg["num_fewshot"] == 3 and cfg["fewshot_config"] == {"sampler": "first_n"}
    assert cfg["generation_kwargs"]["until"] == ["Q:"]
    assert cfg["generation_kwargs"]["max_gen_toks"] == 17
    assert cfg["dataset_kwargs"]["data_files"] == {"train": "/t.jsonl", "eval": "/e.jsonl"}


def test_lm_eval_model_args(micro_assets, adapter):
    model, args = lm_eval_backend.model_args(inspect_submission(adapter), micro_assets.model_dir,
                                             GraderSpec(device="cpu"))
    assert model == "hf" and args["peft"] == str(adapter) and args["batch_size"] == 1
    assert args["pretrained"] == str(micro_assets.model_dir) and args["dtype"] == "float32"
    model, args = lm_eval_backend.model_args(
        inspect_submission(adapter), micro_assets.model_dir,
        GraderSpec(lm_eval_model="vllm", max_lora_rank=16))
    assert model == "vllm" and args["lora_local_path"] == str(adapter) and args["max_lora_rank"] == 16


def test_lm_eval_samples_missing_a_document_is_an_error():
    sample = {"doc_id": 0, "arguments": [["ctx"]], "resps": [["out"]], "filtered_resps": ["1"],
              "filter": "strict-match", "exact_match": 1.0}
    items = lm_eval_backend.parse_samples([sample], 1, ["exact_match"])
    assert items[0].completion == "out" and items[0].metrics == {"exact_match,strict-match": 1.0}
    with pytest.raises(RuntimeError, match=r"no sample for documents \[1\]"):
        lm_eval_backend.parse_samples([sample], 2, ["exact_match"])


# ------------------------------------------------------------------------------------ CLI
# (the micro assets and its baselines live in the shared cache: a private one would rebuild them)
def test_cli_eval_refuses_unknown_backend(micro_assets):
    res = CliRunner().invoke(app, ["eval", str(micro_assets.model_dir), "--backend", "tgi"])
    assert res.exit_code == 2 and "unknown backend 'tgi'" in res.output


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_cli_vllm_backend_without_vllm_says_so(micro_assets):
    res = CliRunner().invoke(app, ["baseline", "--backend", "vllm", "--limit", "2"])
    assert res.exit_code == 2 and "needs vLLM" in res.output


def test_cli_gsm8k_with_broken_data_dir_says_which_file(micro_assets, tmp_path, monkeypatch):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text('{"question": "q"}\n')
    monkeypatch.setenv("AUTORL_GYM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(app, ["eval", str(micro_assets.model_dir), "--env", "AutoRL-GSM8K-v0",
                                   "--base-model", str(micro_assets.model_dir), "--limit", "1"])
    assert res.exit_code == 2
    assert "gsm8k/train.jsonl:1: expected an object with string fields" in res.output.replace("\n", "")


def test_cli_eval_with_lm_eval_prints_json(micro_assets):
    res = CliRunner().invoke(app, ["eval", str(micro_assets.model_dir), "--backend", "lm_eval",
                                   "--limit", "3", "--split", "test"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["backend"] == "lm_eval" and out["n"] == 3 and out["split"] == "test"
    assert out["kind"] == "base" and out["improvement"] == 0.0
    assert {"lm_eval_strict-match", "lm_eval_flexible-extract", "flexible"} <= set(out["metrics"])
    assert out["protocol"]["backend"] == "lm_eval"


def test_feedback_names_the_protocol_and_backend(make_env):
    env = make_env(sandbox="none")
    env.reset(seed=0)
    _, _, terminated, _, info = env.step({"tool": "finish"})
    assert terminated
    fb = json.loads((Path(info["results_dir"]) / "feedback.json").read_text())
    assert fb["protocol"]["backend"] == "hf" and fb["protocol"]["max_new_tokens"] == 48
    assert "first problems of the visible train split" in fb["protocol"]["few_shot_source"]
