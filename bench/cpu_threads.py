"""torch on shared CPU cores: OpenMP's default wait (threads spin at each barrier) against
``OMP_WAIT_POLICY=PASSIVE`` (they sleep), the default :mod:`autorl_gym.runtime.cpu_threads` gives
every sandboxed command and every grading process.

Two workloads on the micro model, each in a fresh process (OpenMP reads the policy when it loads):

* **generate**: a batched greedy ``generate`` of the micro dev prompts (200, 48 new tokens), as a
  grading runs it; the median of 3 calls in the process;
* **sft**: the scripted agent's ``train_sft.py`` for ``--sft-steps`` steps, its whole run.

Each is timed with 1 and 2 torch threads under both policies: alone, beside one busy process
(``while True: pass``), and beside another torch job (two threads, small ops, the default wait:
another episode's training or grading), the rows alternated in each round. The reference is the
default wait; the ratio is its time over PASSIVE's.

    python bench/cpu_threads.py [--rounds 2] [--sft-steps 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from autorl_gym.micro.assets import MicroAssets

REPO = Path(__file__).resolve().parents[1]
TRAIN_SFT = REPO / "autorl_gym" / "agents" / "scripted" / "train_sft.py"
POLICIES = ("default", "PASSIVE")

_GENERATE = """
import json, statistics, sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, prompts_file, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
prompts = json.load(open(prompts_file))
tok = AutoTokenizer.from_pretrained(model_dir); tok.padding_side = "left"
if tok.pad_token is None: tok.pad_token = tok.eos_token
model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
times = []
for _ in range(3):
    t = time.perf_counter()
    with torch.inference_mode():
        model.generate(**enc, do_sample=False, max_new_tokens=48, pad_token_id=tok.pad_token_id)
    times.append(time.perf_counter() - t)
print(statistics.median(times))
"""


def _env(policy: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    return env


def time_generate(model_dir: Path, prompts_file: Path, threads: int, policy: str) -> float:
    out = subprocess.run([sys.executable, "-c", _GENERATE, str(model_dir), str(prompts_file), str(threads)],
                         capture_output=True, text=True, env=_env(policy), check=True)
    return float(out.stdout.strip().splitlines()[-1])


def time_sft(model_dir: Path, train_dir: Path, threads: int, policy: str, steps: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-sft-") as out:
        env = {**_env(policy), "MODEL_PATH": str(model_dir), "DATA_PATH": str(train_dir),
               "OUTPUT_DIR": out, "SFT_MAX_STEPS": str(steps), "SFT_THREADS": str(threads)}
        t = time.perf_counter()
        subprocess.run([sys.executable, str(TRAIN_SFT)], capture_output=True, env=env, check=True)
        return time.perf_counter() - t


_TORCH_JOB = """
import torch
torch.set_num_threads(2)
w = torch.randn(128, 128)
x = torch.randn(256, 128)
while True:
    y = torch.tanh(x @ w).sum(0)
"""
NEIGHBOURS = {"alone": None, "beside a busy process": "while True: pass",
              "beside another torch job": _TORCH_JOB}


@contextlib.contextmanager
def neighbour(code: str | None) -> Iterator[None]:
    """One other process running ``code`` for the block (or nothing)."""
    if code is None:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env("default"))
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sft-steps", type=int, default=20)
    args = ap.parse_args()
    from autorl_gym.micro.build import ensure_micro_assets

    assets = ensure_micro_assets("arith", progress=False)
    dev = [json.loads(line) for line in (assets.hidden_dir / "dev.jsonl").read_text().splitlines()]
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as scratch:
        prompts_file = Path(scratch) / "prompts.json"
        prompts_file.write_text(json.dumps([f"Question: {r['question']}\nAnswer:" for r in dev]))
        times = measure(assets, prompts_file, args.rounds, args.sft_steps)
    show(times, args.rounds, args.sft_steps)


def measure(assets: MicroAssets, prompts_file: Path, rounds: int, sft_steps: int
            ) -> dict[tuple[str, str, int, str], list[float]]:
    console = Console()
    console.print(f"load average at start: {load()}")
    times: dict[tuple[str, str, int, str], list[float]] = defaultdict(list)
    for rnd in range(rounds):
        for where, code in NEIGHBOURS.items():
            with neighbour(code):
                for threads in (1, 2):
                    for policy in POLICIES if rnd % 2 == 0 else POLICIES[::-1]:
                        times[("generate", where, threads, policy)].append(
                            time_generate(assets.model_dir, prompts_file, threads, policy))
                        times[("sft", where, threads, policy)].append(
                            time_sft(assets.model_dir, assets.train_dir, threads, policy, sft_steps))
        console.print(f"round {rnd + 1}/{rounds} done, load average {load()}")
    return times


def show(times: dict[tuple[str, str, int, str], list[float]], rounds: int, sft_steps: int) -> None:
    console = Console()
    table = Table(title=f"torch on shared cores, median of {rounds} rounds (s); "
                        f"ratio = default wait / PASSIVE")
    for col in ("workload", "machine", "torch threads", "default wait", "PASSIVE", "ratio"):
        table.add_column(col, justify="right" if col not in ("workload", "machine") else "left")
    for work in ("generate", "sft"):
        for where in NEIGHBOURS:
            for threads in (1, 2):
                d = statistics.median(times[(work, where, threads, "default")])
                p = statistics.median(times[(work, where, threads, "PASSIVE")])
                label = ("generate 200 prompts" if work == "generate"
                         else f"train_sft.py, {sft_steps} steps")
                table.add_row(label, where, str(threads), f"{d:.2f}", f"{p:.2f}", f"{d / p:.2f}x")
    console.print(table)
    console.print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
