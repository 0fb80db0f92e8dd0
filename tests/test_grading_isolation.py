"""Grading in its own process, and the refusals decided before any weight is loaded: a config
that declares tensors its weight files do not hold, a model far larger than the scenario allows,
a config that does not load (named as such, not as a tokenizer problem), and a model that
exhausts memory while grading (the env lives on and the submission is refused with the reason)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from autorl_gym.core.family import resolve_assets
from autorl_gym.core.records import SubmissionError
from autorl_gym.core.scenario import Scenario
from autorl_gym.grading.grader import Grader
from autorl_gym.grading.submission import inspect_submission
from autorl_gym.scenarios.catalog import get_scenario

MICRO_ID = "AutoRL-Micro-Arith-v0"


def scenario_with(**grader) -> Scenario:
    sc = get_scenario(MICRO_ID)
    return sc.model_copy(update={"grader": sc.grader.model_copy(update=grader)})


@pytest.fixture(scope="module")
def grader(micro_assets) -> Grader:
    sc = scenario_with()
    return Grader(sc, resolve_assets(sc, progress=False))


def copy_base(micro_assets, dest: Path) -> Path:
    shutil.copytree(micro_assets.model_dir, dest)
    return dest


def edit_config(model_dir: Path, **changes) -> None:
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg.update(changes)
    (model_dir / "config.json").write_text(json.dumps(cfg))


def zero_weights(model_dir: Path) -> int:
    """Weights for the config in ``model_dir``, all zeros (fast to write): returns the count."""
    import torch
    from safetensors.torch import save_file

    from autorl_gym.grading.checks import load_config, meta_shapes

    meta = meta_shapes(load_config(model_dir))
    tensors = {names[0]: torch.zeros(meta.shapes[names[0]]) for names in meta.tensors}
    save_file(tensors, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    return meta.count


def test_config_declaring_tensors_the_weights_lack_is_refused(grader, micro_assets, tmp_path):
    from safetensors.torch import load_file, save_file

    m = copy_base(micro_assets, tmp_path / "m")
    state = load_file(str(m / "model.safetensors"))
    del state["model.layers.2.mlp.up_proj.weight"]
    save_file(state, str(m / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(SubmissionError, match=r"declares 1 parameter tensor that the weight files "
                                              r"do not hold \(model\.layers\.2\.mlp\.up_proj\.weight\)"):
        grader.evaluate(m, "dev", limit=2)
    # a config with one more layer than the weights hold: the new layer's tensors are named
    edit_config(copy_base(micro_assets, tmp_path / "deeper"), num_hidden_layers=5,
                layer_types=["full_attention"] * 5)
    with pytest.raises(SubmissionError, match=r"model\.layers\.4\."):
        grader.evaluate(tmp_path / "deeper", "dev", limit=2)


def test_tied_embeddings_saved_once_are_accepted(grader, micro_assets):
    """The micro model ties lm_head to the embeddings and stores the tensor once."""
    res = grader.evaluate(micro_assets.model_dir, "dev", limit=4)
    assert res.kind == "base" and res.n == 4


def test_layer_types_mismatch_is_named_as_a_config_error(grader, micro_assets, tmp_path):
    m = copy_base(micro_assets, tmp_path / "m")
    edit_config(m, layer_types=["full_attention"] * 3)
    with pytest.raises(SubmissionError) as e:
        grader.evaluate(m, "dev", limit=2)
    msg = str(e.value)
    assert "config.json does not load" in msg and "tokenizer" not in msg
    assert "layer" in msg.lower(), msg


def test_model_far_larger_than_allowed_is_refused_before_loading(grader, micro_assets, tmp_path):
    m = copy_base(micro_assets, tmp_path / "big")
    # the weights stay the small ones: the refusal must come from the config alone
    edit_config(m, hidden_size=2048, intermediate_size=8192, num_attention_heads=16,
                num_key_value_heads=4)
    with pytest.raises(SubmissionError, match=r"parameters, more than this scenario allows "
                                              r"\(4 times the base model's"):
        grader.evaluate(m, "dev", limit=2)


def test_max_params_from_the_scenario(micro_assets, tmp_path):
    sc = scenario_with(max_params=1000)
    g = Grader(sc, resolve_assets(sc, progress=False))
    with pytest.raises(SubmissionError, match=r"grader\.max_params = 1,000"):
        g.evaluate(micro_assets.model_dir, "dev", limit=2)


def big_model(micro_assets, dest: Path) -> Path:
    """A valid model of ~200M parameters (800 MB of float32 weights): with the ~500 MB that
    grading the micro base takes, far past a 900 MB grading cap however the sampler is timed."""
    m = copy_base(micro_assets, dest)
    edit_config(m, hidden_size=1024, intermediate_size=4096, num_attention_heads=8,
                num_key_value_heads=8, num_hidden_layers=16, layer_types=["full_attention"] * 16)
    assert zero_weights(m) > 190_000_000
    return m


def test_memory_exhaustion_while_grading_is_contained(micro_assets, tmp_path):
    sc = scenario_with(memory_mb=900, max_params=10**9)
    g = Grader(sc, resolve_assets(sc, progress=False))
    assert g.evaluate(micro_assets.model_dir, "dev", limit=4).n == 4  # the base fits under the cap
    big = big_model(micro_assets, tmp_path / "big")
    with pytest.raises(SubmissionError, match=r"grading was stopped.*memory limit exceeded"):
        g.evaluate(big, "dev", limit=4, info=inspect_submission(big))


@pytest.mark.slow
def test_env_survives_a_model_that_exhausts_memory(micro_assets, tmp_path):
    from autorl_gym.envs.autorl_env import AutoRLEnv

    # the 800 MB model passes every cap but memory's
    sc = scenario_with(memory_mb=900, max_params=10**9, max_submission_bytes=10**10)
    env = AutoRLEnv(sc, sandbox="none", workspace_root=tmp_path / "ws", results_dir=tmp_path / "res")
    try:
        _, info = env.reset(seed=0)
        big_model(micro_assets, Path(info["workspace"]) / "output" / "big")
        obs, reward, terminated, truncated, info = env.step({"tool": "submit", "model_path": "output/big"})
        assert not (terminated or truncated) and reward == 0.0
        assert obs.startswith("submission 1 refused:") and "memory limit exceeded" in obs, obs
        assert info["submission"]["error"] and info["budget"]["submissions_left"] == sc.budget.max_submissions
        obs, *_ = env.step({"tool": "list_files", "path": "output"})  # the env still works
        assert "big" in obs
        obs, reward, terminated, _, info = env.step({"tool": "finish"})
        assert terminated and reward == 0.0 and info["feedback"]["valid_submissions"] == 0
    finally:
        env.close()


@pytest.mark.slow
def test_server_survives_a_model_that_exhausts_memory(micro_assets, tmp_path):
    """Over HTTP: the submission is refused with the reason, the server keeps answering, and the
    run goes on to grade a sound submission and finish."""
    from server_helpers import ServerProcess, model_copy

    srv = ServerProcess(tmp_path / "srv", sandbox="none", scenario="AutoRL-Micro-Arith-LowMem-v0")
    srv.start()
    try:
        with srv.client() as c:
            run = c.create_run(agent="memory-test")
            ws = Path(run.workspace)
            big_model(micro_assets, ws / "output" / "big")
            out = c.submit(run.run_id, "output/big")
            assert out.status == "failed" and out.score is None, out
            assert "grading was stopped" in (out.error or "") and "memory limit exceeded" in out.error
            assert out.total == 0 and out.run_status == "active"
            assert c.health().status == "ok"
            model_copy(micro_assets.model_dir, ws / "output" / "v1", nudge=1)
            ok = c.submit(run.run_id, "output/v1")
            assert ok.status == "done" and ok.score is not None and ok.total == 1
            fin = c.finish(run.run_id)
            assert fin.status == "finished" and fin.feedback and fin.feedback["submission_id"] == 2
    finally:
        srv.stop()


def as_the_warm_server_started(monkeypatch) -> None:
    """This process's import-time variables set back to the warm server's (an earlier test in
    the session may have changed one, which sends every later grading the cold way)."""
    from autorl_gym.grading import forkserver

    started = forkserver.server_env()
    if started is None:
        return
    for name in forkserver.import_time_env(os.environ).keys() - started.keys():
        monkeypatch.delenv(name)
    for name, value in started.items():
        monkeypatch.setenv(name, value)


def test_warm_and_cold_grading_children_agree(micro_assets, monkeypatch):
    """The forked child (torch preloaded) grades exactly as a fresh interpreter does."""
    from autorl_gym.grading import forkserver

    as_the_warm_server_started(monkeypatch)
    sc = scenario_with()
    g = Grader(sc, resolve_assets(sc, progress=False))
    assert forkserver.warm_environment_matches(dict(os.environ))
    warm = g.evaluate(micro_assets.model_dir, "dev", limit=6)
    monkeypatch.setenv(forkserver.SWITCH_VAR, "0")
    assert not forkserver.warm_environment_matches(dict(os.environ))
    cold = g.evaluate(micro_assets.model_dir, "dev", limit=6)
    assert [(r.answer, r.correct) for r in warm.items] == [(r.answer, r.correct) for r in cold.items]
    assert warm.score == cold.score


def test_an_import_time_variable_that_differs_runs_cold(monkeypatch):
    from autorl_gym.grading import forkserver

    as_the_warm_server_started(monkeypatch)
    env = dict(os.environ)
    assert forkserver.warm_environment_matches(env)
    assert not forkserver.warm_environment_matches({**env, "HF_HUB_OFFLINE": "maybe"})
    assert forkserver.warm_environment_matches({**env, "AUTORL_GYM_SOMETHING": "x"})


def test_grading_processes_wait_passively_unless_the_host_says_otherwise(micro_assets, monkeypatch):
    """Spinning OpenMP threads slow a loaded machine's gradings several times over
    (autorl_gym.runtime.cpu_threads): the warm server, which every grading child is forked from,
    runs with OMP_WAIT_POLICY=PASSIVE when the host names no policy, without that default sending
    any grading the cold way; a policy the host names is kept."""
    from autorl_gym.grading import forkserver
    from autorl_gym.runtime.cpu_threads import cpu_thread_env

    as_the_warm_server_started(monkeypatch)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert forkserver.warm_environment_matches(dict(os.environ))
    assert forkserver.warm_environment_matches({**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    sc = scenario_with()
    assert Grader(sc, resolve_assets(sc, progress=False)).evaluate(micro_assets.model_dir, "dev",
                                                                    limit=2).items
    server = forkserver._server
    assert server is not None and server.alive()
    environ = Path(f"/proc/{server.proc.pid}/environ").read_bytes().split(b"\0")
    assert b"OMP_WAIT_POLICY=PASSIVE" in environ
    assert forkserver.server_env()["OMP_WAIT_POLICY"] == "PASSIVE"
    assert not forkserver.warm_environment_matches({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"})
    assert cpu_thread_env({"OMP_WAIT_POLICY": "ACTIVE"}) == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_grading_past_its_time_limit_is_stopped(micro_assets):
    # the whole dev split (200 items) in 10 ms: a bare batched generate of it takes about 1 s here,
    # so the limit is passed whether or not the warm server has prepared the scenario
    sc = scenario_with(timeout_s=0.01)
    g = Grader(sc, resolve_assets(sc, progress=False))
    with pytest.raises(SubmissionError, match=r"grading was stopped, the model took too long: "
                                              r"timed out after 0\.01 s"):
        g.evaluate(micro_assets.model_dir, "dev")
