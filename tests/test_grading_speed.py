"""The faster grading gives today's completions and scores, item by item.

Three paths grade the same submissions: today's (a fresh ``python -m autorl_gym.grading.worker``,
``AUTORL_GYM_GRADING_FORKSERVER=0``, nothing prepared), a child forked from the warm server after
it prepared the scenario (:mod:`autorl_gym.grading.warm`; graded twice, the second fully warm), and
lm-evaluation-harness's ``hf`` model on the same protocol (the ``lm_eval`` backend). Two
submissions: the micro model with its weights perturbed, and a small Qwen2 built here with random
weights and the micro tokenizer. The caches behind the warm path are keyed by what they were made
from: a changed split file, config or tokenizer is a miss.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from autorl_gym.core.family import resolve_assets
from autorl_gym.core.records import EvalResult, SubmissionError
from autorl_gym.grading import forkserver, warm
from autorl_gym.grading.grader import Grader
from autorl_gym.scenarios.catalog import get_scenario

MICRO_ID = "AutoRL-Micro-Arith-v0"
LIMIT = 24


def perturbed(src: Path, dest: Path, scale: float, seed: int = 0) -> Path:
    """A copy of ``src`` with every weight moved by ``scale`` times Gaussian noise."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dest)
    g = torch.Generator().manual_seed(seed)
    sd = load_file(str(src / "model.safetensors"))
    sd = {k: (v + scale * torch.randn(v.shape, generator=g)).contiguous() for k, v in sd.items()}
    save_file(sd, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return dest


def tiny_qwen2(micro_model: Path, dest: Path) -> Path:
    """A 2-layer Qwen2 with random weights and the micro model's tokenizer files."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(7)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=478, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=False, eos_token_id=0, pad_token_id=0, bos_token_id=0))
    model.save_pretrained(dest)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(micro_model / name, dest / name)
    return dest


def graded(grader: Grader, model: Path, **env: str) -> EvalResult:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return grader.evaluate(model, "dev", limit=LIMIT)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def same_items(a: EvalResult, b: EvalResult) -> None:
    assert (a.n, a.score, a.correct) == (b.n, b.score, b.correct)
    for k, (x, y) in enumerate(zip(a.items, b.items, strict=True)):
        assert (x.completion, x.answer, x.correct) == (y.completion, y.answer, y.correct), f"item {k}"


@pytest.fixture(autouse=True)
def fresh_server(monkeypatch):
    """A warm server of this test's own: one left by an earlier test may have started under other
    import-time variables (then gradings here go the cold way) or have retired."""
    forkserver.stop_server()
    monkeypatch.setattr(forkserver, "_prepare_ok", True)
    yield
    forkserver.stop_server()


@pytest.fixture(scope="module")
def models(micro_assets, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """name -> (base model, submission)."""
    root = tmp_path_factory.mktemp("speed")
    qwen = tiny_qwen2(micro_assets.model_dir, root / "qwen2-base")
    return {
        "micro": (micro_assets.model_dir, perturbed(micro_assets.model_dir, root / "micro-sub", 0.01)),
        "qwen2": (qwen, perturbed(qwen, root / "qwen2-sub", 0.05)),
    }


@pytest.mark.parametrize("name", ["micro", "qwen2"])
def test_warm_grading_gives_todays_and_lm_evals_completions(name, models, micro_assets, tmp_path):
    base, sub = models[name]
    sc = get_scenario(MICRO_ID)
    assets = resolve_assets(sc, base_model=str(base), progress=False)
    grader = Grader(sc, assets, log_root=tmp_path)
    today = graded(grader, sub, AUTORL_GYM_GRADING_FORKSERVER="0")
    thread = grader.prewarm("dev")
    assert thread is not None
    thread.join(timeout=600)
    first = graded(grader, sub)   # forked after the server prepared this scenario
    again = graded(grader, sub)   # nothing left to prepare
    same_items(today, first)
    same_items(today, again)
    assert len({i.completion for i in today.items}) >= LIMIT // 2  # varied: a comparison that can fail
    lm = Grader(sc, assets, backend="lm_eval", log_root=tmp_path).evaluate(sub, "dev", limit=LIMIT)
    same_items(today, lm)


def test_prepared_server_forks_children_that_compute(micro_assets, tmp_path):
    """Preparing runs no parallel torch operation in the server (a child forked after one would
    hang in GNU OpenMP): a grading forked after it generates, with two threads."""
    sc = get_scenario(MICRO_ID)
    grader = Grader(sc, resolve_assets(sc, progress=False), log_root=tmp_path)
    job = {"scenario": sc.model_dump(mode="json"), "assets": grader.assets, "backend": "hf",
           "info": grader._base_info, "split": "dev", "progress_file": tmp_path / "p.json"}
    job_file = tmp_path / "job.json"
    from autorl_gym.grading.job import GradeJob

    job_file.write_text(GradeJob.model_validate(job).model_dump_json())
    assert forkserver.prepare(job_file)
    res = graded(grader, micro_assets.model_dir)
    assert res.n == LIMIT


def test_warm_entries_are_keyed_by_what_they_were_made_from(micro_assets, tmp_path):
    from autorl_gym.grading.backends import hf
    from autorl_gym.grading.checks import check_loadable, meta_model
    from autorl_gym.grading.job import GradeJob
    from autorl_gym.grading.submission import inspect_submission

    sc = get_scenario(MICRO_ID)
    model = shutil.copytree(micro_assets.model_dir, tmp_path / "model")
    assets = resolve_assets(sc, base_model=str(model), progress=False)
    hidden = tmp_path / "hidden"
    shutil.copytree(assets.hidden_splits["dev"].parent, hidden)
    assets = assets.model_copy(update={"hidden_splits": {s: hidden / p.name
                                                         for s, p in assets.hidden_splits.items()}})
    job = GradeJob(scenario=sc.model_dump(mode="json"), assets=assets, backend="hf",
                   info=inspect_submission(model), split="dev", progress_file=tmp_path / "p.json")
    scorer = warm.scorer_for(job)
    assert warm.scorer_for(job) is scorer
    dev = hidden / "dev.jsonl"
    first = dev.read_text().splitlines()[0]
    dev.write_text(first + "\n")                      # the split changed: a new scorer, new items
    fresh = warm.scorer_for(job)
    assert fresh is not scorer and len(fresh.ctx.items("dev")) == 1

    tok, _ = hf.load_tokenizer(model, model)
    assert hf.load_tokenizer(model, model)[0] is tok
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(json.dumps({**cfg, "model_max_length": 77}))
    assert hf.load_tokenizer(model, model)[0] is not tok

    meta = meta_model(model)
    assert meta_model(model) is meta
    big = shutil.copytree(model, tmp_path / "big")
    cfg = json.loads((big / "config.json").read_text())
    (big / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 40 * cfg["intermediate_size"]}))
    assert meta_model(big).count > meta.count
    with pytest.raises(SubmissionError, match="more than"):
        check_loadable(inspect_submission(big), model, None, 2.0)
