"""Latency of a no-op command in each sandbox backend against a bare ``subprocess.run(["true"])``,
measured interleaved in one run; the docker backend's ``docker exec`` broken down; optionally
the scripted micro episode's wall time on each backend.

    python bench/sandbox_overhead.py [--n 50] [--backends local,docker,none] [--episodes]

Rows: ``sandbox.exec('true')`` per backend and ``env.step(run 'true')`` (the whole tool call) per
backend, each against the bare subprocess (the reference). Goals: under 25 ms of overhead
(median) per run step with the bubblewrap sandbox; under 60 ms median for the docker backend's
no-op. It runs each command by ``docker exec`` in the episode's one container, so its floor row is
the engine's own ``docker exec /bin/true`` in that container, shown phase by phase beside a fresh
container per command (the backend before issue 31). ``--episodes`` runs ``autorl-gym run
--env AutoRL-Micro-Arith-v0 --agent scripted --sandbox KIND`` once per backend (minutes each on a
CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import gymnasium as gym
from rich.console import Console
from rich.table import Table

import autorl_gym  # noqa: F401
from autorl_gym.core.sandbox import SandboxUnavailable
from autorl_gym.sandbox import check_sandbox_kind


def _ms(samples: list[float]) -> tuple[float, float, float]:
    qs = statistics.quantiles(samples, n=10)
    return statistics.median(samples) * 1e3, qs[0] * 1e3, qs[-1] * 1e3


def _envs(kinds: list[str], tmp: Path, n: int, console: Console) -> dict[str, gym.Env]:
    envs = {}
    for kind in kinds:
        env = gym.make("AutoRL-Micro-Arith-v0", sandbox=kind, budget_seconds=3600,
                       max_steps=10 * n + 10, workspace_root=tmp / kind / "ws",
                       results_dir=tmp / kind / "results")
        try:
            env.reset()
        except SandboxUnavailable as e:
            console.print(f"[yellow]skipping {kind}:[/] {e}")
            env.close()
            continue
        envs[kind] = env
    return envs


def _docker_phases(box: object, n: int) -> dict[str, list[float]]:
    """The docker backend's ``docker exec`` of ``true`` in its container, phase by phase (create
    the exec, start it and read its output to the end, read its exit code); and, for reference,
    what the backend did before issue 31 for each command: a fresh container of the same
    options created, started, waited for and removed."""
    phases: dict[str, list[float]] = {"exec create": [], "exec start to output end": [],
                                      "exec inspect (exit code)": [],
                                      "fresh container per command (before)": []}
    ct, client = box._box, box._client  # type: ignore[attr-defined]
    api = client.api
    user = f"{box.uid}:{box.gid}"  # type: ignore[attr-defined]
    opts = {**box._create, "user": user}  # type: ignore[attr-defined]
    for _ in range(n):
        t0 = time.perf_counter()
        eid = api.exec_create(ct.id, box.argv("true"), user=user)["Id"]  # type: ignore[attr-defined]
        t1 = time.perf_counter()
        for _chunk in api.exec_start(eid, stream=True):
            pass
        t2 = time.perf_counter()
        api.exec_inspect(eid)
        t3 = time.perf_counter()
        fresh = client.containers.create(command=box.argv("true"), **opts)  # type: ignore[attr-defined]
        fresh.start()
        fresh.wait()
        fresh.remove(force=True)
        t4 = time.perf_counter()
        for key, a, b in (("exec create", t0, t1), ("exec start to output end", t1, t2),
                          ("exec inspect (exit code)", t2, t3),
                          ("fresh container per command (before)", t3, t4)):
            phases[key].append(b - a)
    return phases


def _engine_exec(box: object) -> float:
    """Seconds for the engine alone to run ``/bin/true`` in the sandbox's container, as the
    backend asks it (create the exec, start it and read its output to the end, read its exit
    code), without the backend's wrapper, watchdog and clean-up: the floor under the docker row."""
    api, ct = box._client.api, box._box  # type: ignore[attr-defined]
    t = time.perf_counter()
    eid = api.exec_create(ct.id, ["/bin/true"], user=f"{box.uid}:{box.gid}")["Id"]  # type: ignore[attr-defined]
    for _chunk in api.exec_start(eid, stream=True):
        pass
    api.exec_inspect(eid)
    return time.perf_counter() - t


def _episode(kind: str, tmp: Path, sft_steps: int | None) -> tuple[float, str]:
    """(wall s, what came out) of one ``autorl-gym run`` of the scripted agent."""
    root = tmp / f"ep-{kind}"
    cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", "AutoRL-Micro-Arith-v0",
           "--agent", "scripted", "--sandbox", kind, "--results-dir", str(root / "r"),
           "--workspace-root", str(root / "w")]
    if sft_steps:
        cmd += ["--agent-option", f"train_env={{SFT_MAX_STEPS: {sft_steps}}}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"})
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        return took, f"failed (exit {proc.returncode}): {proc.stderr.strip()[-200:]}"
    [run] = list((root / "r").glob("AutoRL-*"))
    fb = json.loads((run / "feedback.json").read_text())
    steps = [json.loads(x) for x in (run / "trajectory.jsonl").read_text().splitlines()]
    train = next((st for st in steps if st["call"].get("tool") == "run"), {})
    first = (train.get("observation") or "").splitlines()[:1]
    return took, (f"test {fb['baseline']:.2f} -> {fb['score']:.2f} ({fb['improvement']:+.2f}); "
                  f"training step: {first[0] if first else '?'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--backends", default="local,docker,none")
    ap.add_argument("--episodes", action="store_true", help="also time a scripted micro episode")
    ap.add_argument("--sft-steps", type=int, default=None,
                    help="cap the episode's SFT steps (the recipe's own 250 by default), so a "
                         "loaded machine finishes it within the agent's 900 s run timeout")
    ap.add_argument("--no-latency", action="store_true", help="only the episodes")
    args = ap.parse_args()
    console = Console()
    kinds = [check_sandbox_kind(k) for k in args.backends.split(",") if k]
    with tempfile.TemporaryDirectory() as tmp_name, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = Path(tmp_name)
        envs = {} if args.no_latency else _envs(kinds, tmp, args.n, console)
        boxes = {k: e.unwrapped.episode.sandbox for k, e in envs.items()}
        bare: list[float] = []
        floor: list[float] = []  # docker: a bare `docker exec /bin/true` in the same container
        exec_s: dict[str, list[float]] = {k: [] for k in envs}
        step_s: dict[str, list[float]] = {k: [] for k in envs}
        for _ in range(3):  # warm-up
            subprocess.run(["true"], check=True)
            for env in envs.values():
                env.step({"tool": "run", "command": "true"})
        for _ in range(args.n):  # interleaved, so load on the machine hits every row alike
            t = time.perf_counter()
            subprocess.run(["true"], check=True)
            bare.append(time.perf_counter() - t)
            if "docker" in boxes:
                floor.append(_engine_exec(boxes["docker"]))
            for kind, env in envs.items():
                t = time.perf_counter()
                boxes[kind].exec("true")
                exec_s[kind].append(time.perf_counter() - t)
                t = time.perf_counter()
                obs, *_ = env.step({"tool": "run", "command": "true"})
                step_s[kind].append(time.perf_counter() - t)
                assert obs.startswith("exit code: 0"), obs
        phases = _docker_phases(boxes["docker"], max(args.n // 2, 5)) if "docker" in boxes else {}
        for env in envs.values():
            env.close()
        episodes = {k: _episode(k, tmp, args.sft_steps) for k in kinds} if args.episodes else {}

    if envs:
        _latency_tables(console, bare, floor, exec_s, step_s, phases, args.n)
    if episodes:
        t = Table(title="scripted micro episode (autorl-gym run), once per backend"
                  + (f", SFT_MAX_STEPS={args.sft_steps}" if args.sft_steps else ""))
        for col in ("backend", "wall s", "ratio to local", "result"):
            t.add_column(col, justify="right" if col != "result" else "left")
        ref = episodes.get("local", (None,))[0]
        for kind, (took, result) in episodes.items():
            ratio = f"{took / ref:.2f}x" if ref else "-"
            t.add_row(kind, f"{took:.0f}", ratio, result)
        console.print(t)


def _latency_tables(console: Console, bare: list[float], floor: list[float], exec_s: dict[str, list[float]],
                    step_s: dict[str, list[float]], phases: dict[str, list[float]], n: int) -> None:
    base = statistics.median(bare)
    table = Table(title=f"no-op run latency, n={n}, interleaved (load average {os.getloadavg()[0]:.2f})")
    for col in ("what", "median ms", "p10 ms", "p90 ms", "overhead ms", "ratio"):
        table.add_column(col, justify="right" if col != "what" else "left")
    rows = [("subprocess.run(['true']) (reference)", bare)]
    if floor:
        rows.append(("docker: bare `docker exec /bin/true` (the engine's floor)", floor))
    rows += [(f"{k}: sandbox.exec('true')", exec_s[k]) for k in exec_s]
    rows += [(f"{k}: env.step(run 'true')", step_s[k]) for k in step_s]
    for name, s in rows:
        med, p10, p90 = _ms(s)
        table.add_row(name, f"{med:.2f}", f"{p10:.2f}", f"{p90:.2f}",
                      f"{med - base * 1e3:.2f}", f"{statistics.median(s) / base:.1f}x")
    console.print(table)
    if phases:
        t = Table(title="docker: `true` by docker exec in the sandbox's container, phase by phase, "
                        "and a fresh container per command (the backend before issue 31)")
        for col in ("phase", "median ms", "p10 ms", "p90 ms"):
            t.add_column(col, justify="right" if col != "phase" else "left")
        for name, s in phases.items():
            med, p10, p90 = _ms(s)
            t.add_row(name, f"{med:.1f}", f"{p10:.1f}", f"{p90:.1f}")
        console.print(t)
    if floor and "docker" in exec_s:
        over = (statistics.median(exec_s["docker"]) - statistics.median(floor)) * 1e3
        print(f"docker sandbox.exec over the engine's own exec: {over:+.2f} ms; median "
              f"{statistics.median(exec_s['docker']) * 1e3:.1f} ms (goal < 60 ms)")
    if "local" in step_s:
        overhead = (statistics.median(step_s["local"]) - base) * 1e3
        print(f"local step overhead over bare subprocess: {overhead:.2f} ms (goal < 25 ms): "
              f"{'met' if overhead < 25 else 'NOT met'}")


if __name__ == "__main__":
    main()
