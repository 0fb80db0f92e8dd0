"""AutoRL-Bench compatibility (issue 28, part 1): its agents run unmodified.

AutoRL-Bench's own example agent (tests/data/autorl_bench_example_agent: microsoft/RD-Agent's
files, byte for byte, MIT licence beside them) is found from its config.yaml and run through
``autorl-gym run`` on the micro scenario; its routes (POST /submit, GET /time, GET /health, no
token) answer from inside a real sandbox in the shape its train.py and its instructions read;
run_meta.json carries its fields; ``--compat-scoring autorl-bench`` scores as it does; and the
attacks on the new routes hold.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import MICRO_ID
from test_server import bwrap_ok  # noqa: F401 - a fixture
from typer.testing import CliRunner

from autorl_gym.agents.autorl_bench import RUN_VARIABLES
from autorl_gym.agents.spec import AgentError, load_agent_spec
from autorl_gym.attacks.base import AttackContext, load_cases
from autorl_gym.attacks.cases.bridge import bridged
from autorl_gym.attacks.runner import run_attacks
from autorl_gym.scenarios.catalog import get_scenario
from autorl_gym.scenarios.compat import compat_scenario

DATA = Path(__file__).parent / "data" / "autorl_bench_example_agent"
SHIM = Path(__file__).parent / "autorl_bench_cpu_shim"
#: git blob ids of the three files at microsoft/RD-Agent 471eb30d1ec03f35631c532c58a52ce75d684037
UPSTREAM_BLOBS = {"config.yaml": "cf9844b3f5fbfaca2b35a1e6148ccf0ef544ef40",
                  "start.sh": "507b6189225f0202fe185d976f854273ac100bdb",
                  "train.py": "3ba05d6cfddc2322023a16f076b436d8193ca841"}
COMPAT_ATTACKS = sorted(n for n in load_cases() if n.startswith("autorl_bench_"))


def _blob(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _agent_copy(tmp_path: Path, shim: bool = False) -> Path:
    """The example agent's three files (unmodified), plus the CPU shim beside them if asked."""
    folder = tmp_path / "agents" / "example_agent"
    folder.mkdir(parents=True)
    for name in UPSTREAM_BLOBS:
        shutil.copy2(DATA / name, folder / name)
    if shim:
        shutil.copytree(SHIM, folder / "autorl_bench_cpu_shim")
    return folder


def test_the_example_agent_is_upstreams_byte_for_byte() -> None:
    for name, blob in UPSTREAM_BLOBS.items():
        assert _blob(DATA / name) == blob, name
    assert "MIT License" in (DATA / "LICENSE").read_text()


def test_a_config_yaml_folder_is_found_by_name_and_by_path(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _agent_copy(tmp_path)
    monkeypatch.setenv("AUTORL_GYM_AGENTS", str(folder.parent))
    for name in ("example_agent", str(folder)):
        spec, found = load_agent_spec(name)
        assert found.resolve() == folder.resolve()
        assert spec.protocol == "autorl-bench" and spec.start == "bash code/start.sh"
        assert spec.options == {"TRAIN_RATIO": "0.1", "NUM_EPOCHS": "1"}


def test_config_yaml_rules(tmp_path: Path) -> None:
    """The run's variables win over env_vars (AutoRL-Bench's runner sets them last); a start
    script outside the folder or missing is refused."""
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "go.sh").write_text("echo hi\n")
    (folder / "config.yaml").write_text(
        "name: A\nstart: go.sh\nenv_vars:\n  MODEL_PATH: /etc\n  GRADING_SERVER_URL: http://evil\n"
        "  STEPS: 3\n  FLAG: true\n")
    spec, _ = load_agent_spec(str(folder))
    assert spec.options == {"STEPS": "3", "FLAG": "true"}
    assert not RUN_VARIABLES & set(spec.options)
    for start in ("../go.sh", "/bin/sh", "missing.sh"):
        (folder / "config.yaml").write_text(f"name: A\nstart: {start}\n")
        with pytest.raises(AgentError, match="start"):
            load_agent_spec(str(folder))


def _cli(*args: str) -> object:
    from autorl_gym.cli.main import app

    return CliRunner().invoke(app, list(args))


def _results(tmp_path: Path) -> tuple[dict, str]:
    (res,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    return (json.loads((res / "feedback.json").read_text()),
            (res / "agent_output.txt").read_text(errors="replace"))


def test_example_agent_unmodified_on_a_cpu_ends_with_its_reason(tmp_path: Path, micro_assets,
                                                                bwrap_ok) -> None:  # noqa: F811
    """As AutoRL-Bench ships it, the example agent asks for bf16, which transformers refuses
    without a GPU: the run ends saying the agent's command crashed, with nothing submitted."""
    folder = _agent_copy(tmp_path)
    r = _cli("run", "--env", MICRO_ID, "--agent", str(folder), "--results-dir", str(tmp_path / "results"),
             "--workspace-root", str(tmp_path / "ws"), "--budget-seconds", "600")
    fb, out = _results(tmp_path)
    assert "=== Example Agent ===" in out and f"Task: {MICRO_ID}" in out, out[-2000:]
    assert "Train samples:" in out  # it read DATA_PATH/train.jsonl (question, answer)
    assert "bf16" in out, out[-2000:]
    assert fb["status"] == "truncated" and "crashed (exit code 1)" in fb["reason"], (fb, r.output)


@pytest.mark.slow
def test_example_agent_trains_submits_and_is_scored(tmp_path: Path, micro_assets,
                                                    bwrap_ok) -> None:  # noqa: F811
    """The same three files with a hardware shim on PYTHONPATH (use_cpu when there is no GPU):
    its GRPO epoch runs, its POST /submit is accepted and graded, train.py prints the ``score``
    it read from the answer, and the run ends (its command exits without finishing) with the
    best submission graded on test."""
    folder = _agent_copy(tmp_path, shim=True)
    r = _cli("run", "--env", MICRO_ID, "--agent", str(folder), "--results-dir", str(tmp_path / "results"),
             "--workspace-root", str(tmp_path / "ws"), "--budget-seconds", "1800",
             "--agent-option", "PYTHONPATH=code/autorl_bench_cpu_shim",
             "--agent-option", "AUTORL_BENCH_SHIM_MAX_STEPS=4")  # its 20 GRPO steps, capped
    fb, out = _results(tmp_path)
    assert "[cpu shim]" in out and "Done! Total:" in out, out[-3000:]
    assert "[cpu shim] max_steps 20 -> 4" in out, out[-3000:]
    (line,) = [ln for ln in out.splitlines() if ln.strip().startswith("Score:")]
    score = float(line.split(":")[1])
    assert fb["status"] == "truncated" and "exited (exit code 0)" in fb["reason"], (fb, r.output)
    assert fb["valid_submissions"] >= 1 and fb["submission_id"] is not None, fb
    assert score == pytest.approx(fb["best_feedback_score"])  # what /submit answered, on dev
    (ws,) = (tmp_path / "ws").iterdir()
    meta = json.loads((ws / "run_meta.json").read_text())
    assert isinstance(meta["last_submit_time"], int) and isinstance(meta["end_time"], int)
    assert meta["start_time"] <= meta["last_submit_time"] <= meta["end_time"]
    assert 0.0 <= score <= 100.0


def test_routes_answer_the_sandbox_in_autorl_benchs_shape(tmp_path: Path, micro_assets,
                                                          bwrap_ok) -> None:  # noqa: F811
    """From inside a run's sandbox, with requests as its train.py uses it: POST /submit, GET
    /time, GET /health answer 200 with AutoRL-Bench's fields (and ours); from the host, /submit
    and /time belong to no run (404)."""
    script = r"""
import json, os, requests
url = os.environ["GRADING_SERVER_URL"]
out = {}
r = requests.post(f"{url}/submit", json={"model_path": "output/m"}, timeout=600)
out["submit"] = [r.status_code, r.json()]
r = requests.post(f"{url}/submit", json={"model_path": "output/m", "gpu": "0"}, timeout=60)
out["gpu"] = [r.status_code, r.json()]
for route in ("time", "health"):
    r = requests.get(f"{url}/{route}", timeout=60)
    out[route] = [r.status_code, r.json()]
print(json.dumps(out))
"""
    ctx = AttackContext(scenario_id=MICRO_ID, sandbox="local", scratch=tmp_path)
    with bridged(ctx) as b:
        res = b.box.exec("mkdir -p output/m && cp -rL model/. output/m/ && python3 -c "
                         + shlex.quote(script), timeout_s=600)
        assert res.exit_code == 0, res.output[-3000:]
        got = json.loads(res.output.strip().splitlines()[-1])
        run = b.service.run_row(b.own.run_id)

    status, sub = got["submit"]
    assert status == 200, sub
    # what train.py reads: result.get("score"); AutoRL-Bench's entry fields, beside ours
    assert isinstance(sub["score"], float)
    for k, t in (("submission_id", int), ("timestamp", str), ("model_path", str), ("baseline_score", float),
                 ("improvement", float), ("elapsed_seconds", float), ("best", dict),
                 ("total_submissions", int)):
        assert isinstance(sub[k], t), (k, sub)
    assert sub["submission_id"] == 1 and sub["total_submissions"] == 1 and sub["best"]["submission_id"] == 1
    assert sub["run_id"] == b.own.run_id and sub["best_score"] == sub["score"]
    assert sub["flagged_base_copy"] is True  # ours beside theirs
    status, refused = got["gpu"]  # AutoRL-Bench's refusal: error and available_gpus (ours: detail)
    assert status == 400 and "not in available GPUs" in refused["error"] == refused["detail"]
    assert refused["available_gpus"] == []
    status, t = got["time"]
    assert status == 200
    for k in ("start_time", "timeout_s", "last_submit_time", "now", "remaining"):
        assert isinstance(t[k], int), (k, t)
    assert t["end_time"] is None and t["start_time"] == int(run.created_at)
    assert t["timeout_s"] == int(run.budget_seconds) and 0 < t["remaining"] <= t["timeout_s"]
    assert "remaining_s" in t and "deadline" in t  # ours
    status, h = got["health"]
    assert status == 200 and h["status"] == "ok" and h["task"] == MICRO_ID
    assert h["workspace"] == run.workspace and h["available_gpus"] == [] and "active_runs" in h


def test_compat_routes_belong_to_no_run_on_the_host(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from autorl_gym.server import ServerSettings, create_app

    app = create_app(ServerSettings(ledger=tmp_path / "l.sqlite", results_dir=tmp_path / "r",
                                    workspace_root=tmp_path / "w"))
    with TestClient(app) as c:
        assert c.post("/submit", json={"model_path": "x"}).status_code == 404
        assert c.get("/time").status_code == 404
        h = c.get("/health").json()
        assert h["status"] == "ok" and h["task"] is None and h["workspace"] is None


def test_run_meta_carries_autorl_benchs_fields(make_env) -> None:
    env = make_env(sandbox="local")
    _obs, info = env.reset(seed=0)
    ws = Path(info["workspace"])
    meta = json.loads((ws / "run_meta.json").read_text())
    assert isinstance(meta["start_time"], int) and isinstance(meta["timeout_s"], int)
    assert meta["last_submit_time"] is None and meta["end_time"] is None
    assert meta["budget_seconds"] == meta["timeout_s"] and "start_timestamp" in meta  # ours
    env.step({"tool": "run", "command": "mkdir -p output/m && cp -rL model/. output/m/"})
    env.step({"tool": "submit", "model_path": "output/m"})
    meta = json.loads((ws / "run_meta.json").read_text())
    assert isinstance(meta["last_submit_time"], int) and meta["end_time"] is None
    env.step({"tool": "finish"})
    meta = json.loads((ws / "run_meta.json").read_text())
    assert isinstance(meta["end_time"], int) and meta["end_time"] >= meta["last_submit_time"]


def test_compat_scoring_autorl_bench_scores_on_test_and_keeps_the_best(make_env) -> None:
    """Ours: a submission is scored on dev. --compat-scoring autorl-bench: on test, as
    AutoRL-Bench's submit scores the benchmark; the run's result is the best there."""
    sc = get_scenario(MICRO_ID)
    assert compat_scenario(sc, "autorl-gym") is sc
    theirs = compat_scenario(sc, "autorl-bench")
    assert theirs.feedback_split == "test" and sc.feedback_split == "dev"
    results = {}
    for name, scenario in (("ours", sc), ("theirs", theirs)):
        env = make_env(sandbox="local", scenario=scenario)
        env.reset(seed=0)
        env.step({"tool": "run", "command": "mkdir -p output/m && cp -rL model/. output/m/"})
        _o, _r, _t, _tr, info = env.step({"tool": "submit", "model_path": "output/m"})
        sub = info["submission"]
        _o, reward, *_rest, info = env.step({"tool": "finish"})
        results[name] = (sub, info["feedback"], reward)
    (sub_o, fb_o, _), (sub_t, fb_t, _) = results["ours"], results["theirs"]
    assert sub_o["split"] == "dev" and sub_t["split"] == "test"
    assert sub_t["baseline"] == fb_t["baseline"]  # the test baseline, as AutoRL-Bench reports it
    assert fb_o["feedback_split"] == "dev" and fb_t["feedback_split"] == "test"
    assert sub_t["score"] == fb_t["score"] == fb_t["best_feedback_score"]  # the best test score kept


def test_compat_scoring_option_is_checked() -> None:
    r = _cli("run", "--compat-scoring", "nope")
    assert r.exit_code != 0 and "autorl-bench" in r.output


def test_compat_route_attacks_hold(tmp_path: Path, micro_assets, bwrap_ok) -> None:  # noqa: F811
    assert len(COMPAT_ATTACKS) == 4, COMPAT_ATTACKS
    report = run_attacks(MICRO_ID, "local", tmp_path, names=COMPAT_ATTACKS)
    bad = [(o.name, o.status, o.detail[:2000]) for o in report.outcomes if o.status != "held"]
    assert not bad, bad


def test_the_server_scores_as_asked(tmp_path: Path) -> None:
    """``autorl-gym run --compat-scoring autorl-bench`` with an external agent: the grading
    server's runs use the test split for feedback."""
    from autorl_gym.server import GradingService, ServerSettings

    for scoring, split in (("autorl-gym", "dev"), ("autorl-bench", "test")):
        svc = GradingService(ServerSettings(ledger=tmp_path / f"{scoring}.sqlite",
                                            results_dir=tmp_path / "r", compat_scoring=scoring))
        assert svc.scenario(MICRO_ID).feedback_split == split
        svc.ledger.close()
