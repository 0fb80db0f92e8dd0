"""Search from inside the sandbox: the host's search through the unix-socket bridge (and nothing
else of the network), the visible documents' BM25 index in-process, and the held-out questions,
their worlds' documents and answer keys out of reach."""

from __future__ import annotations

import json
import shlex
import socket
import threading
from pathlib import Path

import gymnasium as gym
import pytest
from conftest import skip_or_fail_without_bwrap

from autorl_gym.core.sandbox import Mount, SandboxSpec, SandboxUnavailable
from autorl_gym.interactive.search import CachedSearch, SearchSpec, make_search
from autorl_gym.sandbox import make_sandbox
from autorl_gym.scenarios.catalog import get_scenario

FIXTURE = Path(__file__).parent / "data" / "deepsearchqa"

SEARCH_INSIDE = """python - <<'PY'
from autorl_gym.interactive.search import SearchSpec, make_search
backend = make_search(SearchSpec(backend="remote"))
print("RESULTS", [r.title for r in backend.search("Sydney Opera House architect", 2)])
PY"""


def _tcp_listener() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    threading.Thread(target=lambda: s.accept(), daemon=True).start()
    return s, s.getsockname()[1]


def test_the_sandbox_reaches_the_hosts_search_through_the_bridge_only(tmp_path) -> None:
    from autorl_gym.search.bridge import SearchBridge
    from autorl_gym.tasks.interactive import stage_sandbox_package

    inner = make_search(SearchSpec(backend="bm25", documents=str(FIXTURE / "docs")))
    calls = inner.calls  # the index is shared in this process: count from here
    backend = CachedSearch(inner, tmp_path / "cache")
    bridge = SearchBridge(backend, tmp_path / "search.sock")
    pkg = stage_sandbox_package()
    ws = tmp_path / "ws"
    ws.mkdir()
    listener, port = _tcp_listener()  # a host service the sandbox must not reach
    spec = SandboxSpec(workspace=ws, mounts=[Mount(source=pkg)], bridges=[bridge.unix_bridge],
                       env={"PYTHONPATH": str(pkg), **bridge.sandbox_env})
    try:
        sb = make_sandbox("local", spec)
    except SandboxUnavailable as e:
        skip_or_fail_without_bwrap(str(e))
    try:
        res = sb.exec(SEARCH_INSIDE, timeout_s=120)
        assert res.exit_code == 0, res.output
        assert "RESULTS ['Jorn Utzon'" in res.output, res.output
        log = [json.loads(x) for x in bridge.log_path.read_text().splitlines()]
        assert [(r["query"], r["cached"]) for r in log] == [("Sydney Opera House architect", False)]
        res = sb.exec(SEARCH_INSIDE, timeout_s=120)          # asked again: the host's cache answers
        assert "Jorn Utzon" in res.output and inner.calls == calls + 1
        assert json.loads(bridge.log_path.read_text().splitlines()[-1])["cached"] is True
        probe = (f"python -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 3)\"; "
                 "echo rc=$?; python -c \"import socket; socket.create_connection(('1.1.1.1', 80), 3)\"; "
                 "echo rc=$?")
        out = sb.exec(probe, timeout_s=60).output
        assert out.count("rc=1") == 2, out   # neither the host's loopback nor the internet
    finally:
        sb.close()
        bridge.close()
        listener.close()


def with_search(sc, **search) -> dict:  # noqa: ANN001
    """The scenario's task_options with these search settings."""
    return {**sc.task_options, "search": {**sc.task_options["search"], **search}}


def make(scenario, tmp_path: Path, **kw) -> gym.Env:  # noqa: ANN001
    try:
        return gym.make(scenario.id, scenario=scenario, workspace_root=tmp_path / "ws",
                        results_dir=tmp_path / "results", **kw)
    except SandboxUnavailable as e:
        skip_or_fail_without_bwrap(str(e))
        raise


def run(env: gym.Env, command: str) -> str:
    obs, *_ = env.step({"tool": "run", "command": command, "timeout_s": 300})
    return obs


PLAY = """python - <<'PY'
from autorl_gym.interactive import find_games, rollout, expert_policy, scenario_settings
cfg = scenario_settings()
qs = find_games(cfg.games)
ep = rollout(qs[:5], expert_policy, max_steps=cfg.max_steps, prompt=cfg.prompt, expert=True)
print("QUESTIONS", len(qs), "RIGHT", sum(e.won for e in ep), "OF", len(ep),
      "SEARCHES", sum(len(t.action) > 0 for e in ep for t in e.turns if t.action.startswith("search[")))
PY"""


def question_files(split: Path) -> list[Path]:
    return sorted(p for p in split.rglob("*.json") if p.parent.name == "questions")


def not_in(texts: list[str], folder: Path) -> list[str]:
    """The texts that occur in no file of ``folder`` (what is also visible proves nothing)."""
    visible = "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
    return [t for t in texts if t not in visible]


def hidden_keys_unreachable(env: gym.Env, hidden: list[Path], secrets: list[str]) -> None:
    out = run(env, "python -c 'import autorl_gym.tasks'")
    assert "ModuleNotFoundError" in out, out
    for h in hidden:
        for cmd in (f"ls {h}", f"cat {h}/questions/*.json {h}/*/questions/*.json",
                    f"cat {h}/search.json {h}/*/search.json"):
            out = run(env, cmd)
            assert not out.startswith("exit code: 0"), (cmd, out)
    # no held-out question, document line or id in anything the sandbox can read where data lives
    # (the workspace with its data/ and model/ mounts, /tmp, the home folder, the host's cache)
    where = f"$WORKSPACE/ /tmp ~ {hidden[0].parent.parent}"
    body = run(env, "grep -rlF " + " ".join(f"-e {shlex.quote(s)}" for s in secrets)
               + f" {where} 2>/dev/null; echo done")
    assert body.split("--- output ---\n")[1] == "done\n", body
    files = [f.name for h in hidden for f in question_files(h)[:3]]
    names = " -o ".join(f"-name '{f}'" for f in files)
    body = run(env, f"find / -path /proc -prune -o \\( {names} \\) -print 2>/dev/null | "
               "grep -v '^/proc' ; echo done")
    assert body.split("--- output ---\n")[1] == "done\n", body


def test_micro_deepsearch_sandbox_plays_train_questions_not_held_out_ones(tmp_path, deepsearch_assets):
    sc = get_scenario("AutoRL-Micro-DeepSearch-v0")
    env = make(sc, tmp_path)
    try:
        obs, info = env.reset()
        assert "search[" in obs and info["scenario"]["metric"] == "accuracy"
        out = run(env, PLAY)
        assert "QUESTIONS 200 RIGHT 5 OF 5" in out, out
        secrets = []
        for split in ("dev", "test"):
            for f in question_files(deepsearch_assets.split_dir(split))[:5]:
                q = json.loads(f.read_text())
                secrets += [q["id"], q["question"]]
            for f in sorted(deepsearch_assets.split_dir(split).rglob("docs/*.txt"))[:20]:
                secrets.append(f.read_text().splitlines()[1])
        secrets = not_in(secrets, deepsearch_assets.split_dir("train"))
        assert len(secrets) >= 10
        hidden_keys_unreachable(env, [deepsearch_assets.split_dir("dev"),
                                      deepsearch_assets.split_dir("test")], secrets)
    finally:
        env.close()


def test_deepsearchqa_sandbox_sees_train_questions_and_docs_not_held_out(tmp_path, monkeypatch,
                                                                         deepsearch_assets):
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path / "cache"))
    sc = get_scenario("AutoRL-DeepSearchQA-v0")
    sc = sc.model_copy(update={
        "data": sc.data.model_copy(update={"path": FIXTURE / "DSQA-full.csv", "dev_size": 2}),
        "task_options": with_search(sc, documents=str(FIXTURE / "docs")),
        "interactive": sc.interactive.model_copy(update={"max_steps": 2, "max_new_tokens": 12}),
        "judge": None})  # a micro policy stands in for Qwen2.5 (no hub); short baselines
    env = make(sc, tmp_path, base_model=str(deepsearch_assets.model_dir))
    try:
        _obs, info = env.reset()
        out = run(env, "ls data/questions | wc -l; cat data/search.json")
        assert out.split("--- output ---\n")[1].startswith("4\n"), out
        out = run(env, """python - <<'PY'
from autorl_gym.interactive import find_games, open_game, scenario_settings
cfg = scenario_settings()
env = open_game(find_games(cfg.games)[0], max_steps=cfg.max_steps)
env.reset()
print("OBS", env.step("search[Purdue University founded]").observation[:80])
PY""")
        assert "OBS [1] Neil Armstrong" in out, out
        grader = env.unwrapped.grader
        hidden = [grader.split_path("dev"), grader.split_path("test")]
        secrets = []
        for h in hidden:
            for f in question_files(h):
                secrets.append(json.loads(f.read_text())["question"][:50])
        hidden_keys_unreachable(env, hidden, secrets)
    finally:
        env.close()


@pytest.fixture(scope="session")
def deepsearch_assets():
    from autorl_gym.micro.deepsearch import ensure_deepsearch_assets

    return ensure_deepsearch_assets(progress=False)


# the test's SFT, capped for CI time (the scripted agent's defaults: 5 epochs, 4 noisy rollouts);
# one thread, so that the run is the same on any machine
EPISODE_SFT = "{SFT_EPOCHS: 2, NOISY_ROLLOUTS: 1, SFT_THREADS: 1}"


@pytest.mark.slow
def test_scripted_micro_deepsearch_episode_through_the_cli(tmp_path, deepsearch_assets) -> None:
    """`autorl-gym run --env AutoRL-Micro-DeepSearch-v0 --agent scripted` (its SFT capped): the
    scripted agent collects the expert's searches in the sandbox, fine-tunes, submits and
    finishes; the test accuracy improves, and the end of the run states the bootstrap interval."""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", "AutoRL-Micro-DeepSearch-v0",
           "--agent", "scripted", "--agent-option", f"train_env={EPISODE_SFT}",
           "--results-dir", str(tmp_path / "results"), "--workspace-root", str(tmp_path / "workspace")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = next((tmp_path / "results").iterdir())
    fb = json.loads((run_dir / "feedback.json").read_text())
    assert fb["status"] == "finished" and fb["metric"] == "accuracy" and fb["submission_id"] == 1
    assert 0 < fb["baseline"] < 30, fb                 # low, but not zero
    assert fb["improvement"] > 0, fb
    assert "CI [" in proc.stdout, proc.stdout[-2000:]
    items = json.loads((run_dir / "test_items.json").read_text())
    assert all("queries" in i["details"] for i in items)
    print(f"\nmicro DeepSearch episode: accuracy {fb['baseline']:.2f} -> {fb['score']:.2f} "
          f"({fb['improvement']:+.2f}) in {fb['elapsed_s']:.0f} s")


def test_deepsearchqa_web_search_reaches_the_sandbox_through_the_bridge(tmp_path, monkeypatch,
                                                                       deepsearch_assets):
    """search.backend web: the grader calls the (fake) web API with the host's key; inside the
    sandbox the same search answers through the bridge, the key is not there, and every query
    from inside is logged on the host."""
    from search_doubles import FakeSerper

    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TEST_SERPER_KEY", "host-only-key-31337")
    pages = [{"title": "Jorn Utzon", "snippet": "Utzon was born in Copenhagen.", "link": "u1"}]
    with FakeSerper(pages, key="host-only-key-31337") as api:
        sc = get_scenario("AutoRL-DeepSearchQA-v0")
        sc = sc.model_copy(update={
            "data": sc.data.model_copy(update={"path": FIXTURE / "DSQA-full.csv", "dev_size": 2}),
            "task_options": with_search(sc, backend="web", endpoint=api.url + "/search",
                                        api_key_env="TEST_SERPER_KEY"),
            "interactive": sc.interactive.model_copy(update={"max_steps": 2, "max_new_tokens": 12}),
            "judge": None})
        env = make(sc, tmp_path, base_model=str(deepsearch_assets.model_dir))
        try:
            env.reset()
            graded = len(api.requests)   # the baselines' searches (if the micro model made any)
            out = run(env, """echo key=${TEST_SERPER_KEY:-none}; cat data/search.json; python - <<'PY'
from autorl_gym.interactive import find_games, open_game, scenario_settings
cfg = scenario_settings()
env = open_game(find_games(cfg.games)[0], max_steps=cfg.max_steps)
env.reset()
print("OBS", env.step("search[Sydney Opera House architect]").observation)
PY""")
            assert "key=none" in out and '"backend": "remote"' in out, out
            assert "OBS [1] Jorn Utzon" in out and "host-only-key" not in out, out
            assert len(api.requests) == graded + 1
            assert api.requests[-1]["headers"]["X-API-KEY"] == "host-only-key-31337"
            from autorl_gym.search.bridge import _BRIDGES

            log = next(iter(_BRIDGES.values())).log_path.read_text()
            assert "Sydney Opera House architect" in log
        finally:
            env.close()


def test_micro_deepsearch_assets_have_disjoint_worlds(deepsearch_assets) -> None:
    from autorl_gym.interactive import find_games
    from autorl_gym.micro.deepsearch import SIZES, WORLDS

    manifest = json.loads((deepsearch_assets.root / "manifest.json").read_text())
    ids = {}
    for split in ("train", "dev", "test"):
        refs = find_games(deepsearch_assets.split_dir(split))
        assert len(refs) == WORLDS[split] * SIZES[split].questions
        ids[split] = {r.name for r in refs}
        seeds = {int(r.name[1:].split("_")[0]) for r in refs}
        assert seeds == {manifest["seeds"][split] + i for i in range(WORLDS[split])}
    assert not ids["train"] & ids["dev"] and not ids["train"] & ids["test"] and not ids["dev"] & ids["test"]
    assert manifest["num_parameters"] < 1_000_000 and manifest["weights_sha256"]


def test_a_second_grading_makes_no_search_backend_call(tmp_path, monkeypatch, deepsearch_assets):
    """The grader (in its child process) answers every search through the on-disk cache: grading
    the same model again sees the same pages, scores the same, and calls no backend."""
    from autorl_gym.core.family import resolve_assets
    from autorl_gym.grading.grader import Grader

    sc = get_scenario("AutoRL-Micro-DeepSearch-v0")
    assets = resolve_assets(sc, progress=False)
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path / "cache"))   # an empty search cache
    grader = Grader(sc, assets)
    first = grader.evaluate(assets.base_model_dir, "dev", limit=12)
    second = grader.evaluate(assets.base_model_dir, "dev", limit=12)
    assert first.metrics["search_backend_calls"] > 0 and first.metrics["search_cache_hits"] >= 0
    assert second.metrics["search_backend_calls"] == 0
    assert second.metrics["search_cache_hits"] == first.metrics["search_backend_calls"] \
        + first.metrics["search_cache_hits"]
    assert [i.completion for i in second.items] == [i.completion for i in first.items]
    assert first.metrics["score_ci_low"] <= first.score <= first.metrics["score_ci_high"]
    assert any((tmp_path / "cache" / "search_cache").iterdir())
