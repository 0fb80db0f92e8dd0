"""The Gymnasium loop works in any Python a user starts: a script with no main guard, ``python -``,
``python -c``, ``python -m``, the console script, and a notebook under ipykernel. Each runs a real
reset/step/finish from a cache with no baselines, so the baselines really are graded in a grading
child (the warm server's: it must never import the user's ``__main__``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autorl_gym.core.sandbox import SandboxLimits
from autorl_gym.grading import forkserver
from autorl_gym.grading.isolation import GradingFailed, rerun_command

MARK = "TOP OF THE USER'S SCRIPT RAN"
LOOP = textwrap.dedent(f"""\
    import gymnasium as gym
    import autorl_gym  # registers every scenario

    print({MARK!r}, flush=True)
    env = gym.make("AutoRL-Micro-Arith-v0", workspace_root="ws", results_dir="results")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step({{"tool": "run", "command": "echo hi"}})
    obs, reward, terminated, truncated, info = env.step({{"tool": "finish"}})
    print("REWARD", reward, terminated, flush=True)
    env.close()
    """)


@pytest.fixture
def empty_cache(tmp_path: Path, micro_assets) -> Path:
    """A cache holding the installed micro assets and no baselines."""
    cache = tmp_path / "cache"
    shutil.copytree(micro_assets.root, cache / "micro" / micro_assets.root.name)
    return cache


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "AUTORL_GYM_CACHE": str(cache), "AUTORL_GYM_GRADING_FORKSERVER": "1"}


def _check(proc: subprocess.CompletedProcess[str], cache: Path) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert out.count(MARK) == 1, f"the user's script ran {out.count(MARK)} times:\n{out[-4000:]}"
    assert "REWARD 0.0 True" in out, out[-4000:]
    assert len(list((cache / "baselines").glob("*.json"))) >= 2, "the baselines were not graded"


@pytest.mark.parametrize("mode", ["script", "stdin", "dash_c", "dash_m"])
def test_guardless_loop_in_every_start_mode(mode: str, tmp_path: Path, empty_cache: Path) -> None:
    (tmp_path / "loop.py").write_text(LOOP)
    argv = {"script": [sys.executable, "loop.py"], "stdin": [sys.executable, "-"],
            "dash_c": [sys.executable, "-c", LOOP], "dash_m": [sys.executable, "-m", "loop"]}[mode]
    proc = subprocess.run(argv, cwd=tmp_path, env=_env(empty_cache), text=True, capture_output=True,
                          input=LOOP if mode == "stdin" else None, timeout=900)
    _check(proc, empty_cache)


def test_console_scripts_started_together_measure_the_baseline_once(tmp_path: Path,
                                                                    empty_cache: Path) -> None:
    """Two ``autorl-gym baseline`` commands started together (as a sweep's or a vector env's
    episodes start): one measures, the other waits for its record and reads it."""
    exe = Path(sys.executable).with_name("autorl-gym")
    if not exe.exists():
        pytest.skip(f"no console script beside {sys.executable}")
    argv = [str(exe), "baseline", "--env", "AutoRL-Micro-Arith-v0", "--split", "dev"]
    procs = [subprocess.Popen(argv, cwd=tmp_path, env=_env(empty_cache), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, (out + err)[-4000:]
    first, second = (json.loads(out) for out, _ in outs)
    assert first["score"] == second["score"]
    # a measurement of its own would have its own duration; the one record gives both the same
    assert first["seconds"] == second["seconds"], (first, second)
    assert len(list((empty_cache / "baselines").glob("*.json"))) == 1


def _server_gone(pid: str, folder: Path, wait_s: float = 60.0) -> tuple[bool, bool]:
    """(the server process has ended, its folder is removed), waited for up to ``wait_s`` (a
    server does both at once; the wait only bounds a broken one). An ended process may remain a
    zombie here, where nothing reaps orphans."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            ended = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
        except FileNotFoundError:
            ended = True
        removed = not folder.exists()
        if (ended and removed) or time.monotonic() > deadline:
            return ended, removed
        time.sleep(0.1)


EXITS_EARLY = textwrap.dedent("""\
    import sys, time
    from autorl_gym.grading import forkserver

    forkserver._BOOTSTRAP = "import time; time.sleep(300)"  # a server that takes long to start
    forkserver.start_soon()
    while forkserver._starting is None:
        time.sleep(0.01)
    print(forkserver._starting.pid, forkserver._starting.args[-1], flush=True)
    sys.exit("refused: the input was bad")
    """)


def test_a_command_that_fails_before_grading_does_not_wait_for_the_server(tmp_path: Path) -> None:
    """``autorl-gym eval`` starts the warm server at once, for its imports to overlap its own
    work; when the command then fails on its input, its exit kills the server still starting
    (a 300 s start here) instead of waiting for it, and leaves nothing behind."""
    proc = subprocess.run([sys.executable, "-c", EXITS_EARLY], cwd=tmp_path, text=True,
                          capture_output=True, timeout=120,
                          env={**os.environ, "AUTORL_GYM_GRADING_FORKSERVER": "1"})
    assert proc.returncode == 1 and "refused: the input was bad" in proc.stderr, proc.stderr
    pid, socket_path = proc.stdout.split()
    ended, removed = _server_gone(pid, Path(socket_path).parent)
    assert ended, "the server survived"
    assert removed, "the server's folder was left"


DIES = textwrap.dedent("""\
    import os, signal, sys, time
    from autorl_gym.grading import forkserver

    if sys.argv[1] == "ready":
        server = forkserver._ensure_server()
        print(server.proc.pid, server.folder, flush=True)
    else:  # while the server still imports
        forkserver.start_soon()
        while forkserver._starting is None:
            time.sleep(0.01)
        print(forkserver._starting.pid, os.path.dirname(forkserver._starting.args[-1]), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no cleanup of ours
    """)


@pytest.mark.parametrize("when", ["ready", "starting"])
def test_a_server_whose_client_is_killed_exits_and_removes_its_folder(tmp_path: Path, when: str) -> None:
    """A client killed outright (SIGKILL: an OOM kill, a scheduler's timeout) runs no cleanup; its
    warm server sees the pipe close (or, still importing, finds it closed when it would say it is
    ready), exits, and removes the folder made for it."""
    proc = subprocess.run([sys.executable, "-c", DIES, when], cwd=tmp_path, text=True,
                          capture_output=True, timeout=600,
                          env={**os.environ, "AUTORL_GYM_GRADING_FORKSERVER": "1"})
    assert proc.returncode == -9, proc.stderr[-3000:]
    pid, folder = proc.stdout.split()
    ended, removed = _server_gone(pid, Path(folder))
    assert ended, "the server outlived its client"
    assert removed, f"{folder} was left behind"


def test_quickstart_notebook_runs_under_ipykernel(tmp_path: Path, empty_cache: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    for k, v in _env(empty_cache).items():
        monkeypatch.setenv(k, v)
    nb_path = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=1200,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []))
    assert "reward (test score - baseline, in points):" in text
    reward = float(text.split("reward (test score - baseline, in points):")[1].split()[0])
    assert reward > 0, text[-3000:]
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the score plot was not shown"
    assert list(tmp_path.glob("results/*/report.html"))
    assert list((empty_cache / "baselines").glob("*.json"))


# -- a grading child that fails says why, with its own traceback and the command to rerun it --------

def test_child_crash_before_its_log_opens_reports_the_traceback(tmp_path: Path) -> None:
    """The server cannot open the child's log (its folder does not exist): the client gets the
    server's traceback, not "no output"."""
    res = forkserver.run_forked(["job.json", "out.json"], log_file=tmp_path / "missing" / "worker.log",
                                limits=SandboxLimits(memory_mb=2048), timeout_s=60, env=dict(os.environ))
    assert res.exit_code == 1
    assert "Traceback" in res.output and "FileNotFoundError" in res.output, res.output


def test_child_crash_in_the_worker_reports_traceback_and_rerun_command(micro_assets) -> None:
    """A grading that fails inside the child (a split the scenario does not have): the child's own
    traceback and how to rerun it come back, and the job is kept so the command works."""
    from autorl_gym.core.family import resolve_assets
    from autorl_gym.grading.isolation import run_isolated
    from autorl_gym.grading.submission import inspect_submission
    from autorl_gym.scenarios.catalog import get_scenario

    sc = get_scenario("AutoRL-Micro-Arith-v0")
    job = {"scenario": sc.model_dump(mode="json"), "assets": resolve_assets(sc, None), "backend": "hf",
           "info": inspect_submission(micro_assets.model_dir), "split": "no-such-split"}
    with pytest.raises(GradingFailed) as e:
        run_isolated(job, memory_mb=4096, timeout_s=300)
    msg = str(e.value)
    assert "Traceback" in msg and "no-such-split" in msg, msg
    assert "-m autorl_gym.grading.worker" in msg
    job_file = Path(msg.split("-m autorl_gym.grading.worker ")[1].split()[0])
    assert job_file.exists(), "the failed job's folder must be kept for the rerun"
    shutil.rmtree(job_file.parent)


def test_worker_failure_before_the_result_is_reported(tmp_path: Path) -> None:
    """The worker itself dies on a garbage job: its traceback (printed to its log) comes back."""
    job, out = tmp_path / "job.json", tmp_path / "out.json"
    job.write_text("{not json")
    res = forkserver.run_forked([str(job), str(out)], log_file=tmp_path / "worker.log",
                                limits=SandboxLimits(memory_mb=2048), timeout_s=120, env=dict(os.environ))
    assert res.exit_code == 1
    assert "Traceback" in res.output and "ValidationError" in res.output, res.output
    assert rerun_command(job, out).endswith(f"-m autorl_gym.grading.worker {job} {out}")
