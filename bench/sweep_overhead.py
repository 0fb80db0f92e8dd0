"""Ray's cost per sweep cell, side by side with the reference: the same cells run one after another
in this process (``run_attempt`` called directly: the same folders, cell.json and rename, no Ray).

    python bench/sweep_overhead.py [--cells 8] [--episode-s 1.0] [--cpus 1]
    python bench/sweep_overhead.py --real [--cells 4] [--cpus 2]

Synthetic cells sleep ``--episode-s`` and write a finished run's files, so what is measured is the
sweep's own cost: Ray's start, scheduling, a worker process per task, the result's round trip.
``--real`` runs micro arithmetic episodes of a base-copy agent instead, through ``autorl-gym sweep``
and one after another through ``autorl-gym run``, and prints episodes per hour for both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from autorl_gym.sweep import expand, parse_sweep, run_sweep
from autorl_gym.sweep.execute import CellJob, run_attempt

MICRO = "AutoRL-Micro-Arith-v0"
EPISODE_S = 1.0


def sleeping_episode(job, work: Path, console):
    time.sleep(float(os.environ.get("BENCH_EPISODE_S", EPISODE_S)))
    run = work / f"{job.cell.scenario}_bench"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"scenario": job.cell.scenario, "agent": job.cell.agent}))
    (run / "feedback.json").write_text(json.dumps({"status": "finished"}))
    return run.name, None


def sleeping_attempt(job):
    return run_attempt(job, episode=sleeping_episode)


def synthetic(cells: int, episode_s: float, cpus: float, console: Console) -> Table:
    os.environ["BENCH_EPISODE_S"] = str(episode_s)
    with tempfile.TemporaryDirectory() as tmp:
        spec = parse_sweep({"name": "bench", "scenarios": [MICRO], "seeds": list(range(cells)),
                            "agents": [{"name": "scripted"}],
                            "resources": {"cpus": 1, "memory_mb": 64}}).model_copy(
            update={"results_dir": Path(tmp) / "ray"})
        t0 = time.perf_counter()
        for cell in expand(spec):
            sleeping_attempt(CellJob(cell=cell, root=Path(tmp) / "direct", attempt=1,
                                     workspace_root=Path(tmp) / "ws"))
        direct = time.perf_counter() - t0
        import ray
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        t0 = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 object_store_memory=80 * 2**20,
                 runtime_env={"env_vars": {"BENCH_EPISODE_S": str(episode_s)}})
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = run_sweep(spec, console=console, live=False, attempt_fn=sleeping_attempt, poll_s=0.05)
        swept = time.perf_counter() - t0
        ray.shutdown()
    assert summary.done == cells, summary
    waves = -(-cells // int(cpus))  # rounds of cells the CPUs allow at once
    t = Table(title=f"sweep overhead: {cells} cells of {episode_s:g} s, local Ray with {cpus:g} CPU(s)")
    for col in ("", "wall s", "per cell s", "overhead per cell s"):
        t.add_column(col, justify="right")
    t.add_row("one after another, no Ray (reference)", f"{direct:.2f}", f"{direct / cells:.3f}",
              f"{direct / cells - episode_s:.3f}")
    t.add_row("Ray start (once per sweep)", f"{startup:.2f}", "", "")
    t.add_row("through run_sweep", f"{swept:.2f}", f"{swept / cells:.3f}",
              f"{(swept - waves * episode_s) / cells:.3f}")
    t.caption = f"ratio sweep / reference, Ray start excluded: {swept / direct:.2f}"
    return t


def real(cells: int, cpus: float, console: Console) -> Table:
    env = {**os.environ, "COLUMNS": "200"}
    with tempfile.TemporaryDirectory() as tmp:
        agents = Path(tmp) / "agents" / "copy-base"
        agents.mkdir(parents=True)
        (agents / "agent.yaml").write_text('name: copy-base\nentry: "agent:CopyBase"\n')
        (agents / "agent.py").write_text(
            "class CopyBase:\n    def reset(self, obs, info):\n        self.left = ["
            "{'tool': 'run', 'command': 'cp -rL \"$MODEL_PATH\" \"$OUTPUT_DIR/base\"'},"
            "{'tool': 'submit', 'model_path': 'output/base'}]\n"
            "    def act(self, obs):\n        return self.left.pop(0) if self.left else {'tool': 'finish'}\n")
        env["AUTORL_GYM_AGENTS"] = str(agents.parent)
        t0 = time.perf_counter()
        for n in range(cells):
            subprocess.run([sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", MICRO, "--agent",
                            "copy-base", "--seed", str(n), "--results-dir", f"{tmp}/runs",
                            "--workspace-root", f"{tmp}/ws"], env=env, check=True, capture_output=True)
        one_by_one = time.perf_counter() - t0
        f = Path(tmp) / "SWEEP.yaml"
        f.write_text(yaml.safe_dump({"name": "bench", "scenarios": [MICRO], "seeds": list(range(cells)),
                                     "agents": [{"name": "copy-base"}],
                                     "resources": {"cpus": 1, "memory_mb": 2048}}))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "autorl_gym.cli.main", "sweep", str(f), "--num-cpus", str(cpus),
                        "--dashboard-port", "0"],
                       env=env, check=True, capture_output=True)
        swept = time.perf_counter() - t0
    t = Table(title=f"{cells} micro base-copy episodes: autorl-gym sweep (local Ray, {cpus:g} CPUs) "
                    "against autorl-gym run one after another")
    for col in ("", "wall s", "episodes per hour"):
        t.add_column(col, justify="right")
    t.add_row("autorl-gym run, one after another (reference)", f"{one_by_one:.1f}",
              f"{3600 * cells / one_by_one:.0f}")
    t.add_row("autorl-gym sweep", f"{swept:.1f}", f"{3600 * cells / swept:.0f}")
    t.caption = f"ratio of episodes per hour, sweep / reference: {one_by_one / swept:.2f}"
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--episode-s", type=float, default=EPISODE_S)
    ap.add_argument("--cpus", type=float, default=1)
    ap.add_argument("--real", action="store_true")
    a = ap.parse_args()
    console = Console()
    console.print(real(a.cells, a.cpus, console) if a.real else
                  synthetic(a.cells, a.episode_s, a.cpus, console))
    console.print(f"[dim]load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores[/]")


if __name__ == "__main__":
    main()
