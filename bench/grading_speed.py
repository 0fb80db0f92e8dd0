"""A dev grading as an episode runs it, against a bare transformers batched greedy ``generate`` of
the same prompts, timed in the same run; and ``autorl-gym eval``'s wall time, before and after.

* **episode grading**: :meth:`ScenarioGrading.grade` of a pinned submission (the micro model
  with its weights perturbed) on the dev split, as ``Episode._submit`` calls it, with the warm
  server started and the scenario prepared at the episode's start (``prepare()``). The first
  grading and the median of the next ones are shown.
* **bare generate**: the same prompts, one batch, ``model.generate(do_sample=False,
  max_new_tokens=48)`` in this process with the model loaded (the median of warm calls, and the
  first call in a fresh process, which pays the one-time costs a grading child pays too), under
  the grading's OpenMP wait policy (``OMP_WAIT_POLICY=PASSIVE`` unless the environment names one).
* **eval**: ``autorl-gym eval SUBMISSION --split dev`` in a fresh process, start to exit: this
  checkout's, and with ``--before PATH`` another checkout's (e.g. the main branch), alternated with
  a fresh interpreter that only imports torch and transformers' Qwen2 model code (what any fresh
  process pays before its first token: the floor under eval's goal).

    python bench/grading_speed.py [--rounds 3] [--before ../other-checkout]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

# the wait policy every grading process of the package runs torch with (runtime/cpu_threads.py),
# for the bare generate too; OpenMP reads it when torch loads, so before any import of torch
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.5
TARGET_EVAL_S = 5.0


def perturbed(src: Path, dest: Path) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dest)
    g = torch.Generator().manual_seed(0)
    sd = load_file(str(src / "model.safetensors"))
    save_file({k: (v + 0.01 * torch.randn(v.shape, generator=g)).contiguous() for k, v in sd.items()},
              str(dest / "model.safetensors"), metadata={"format": "pt"})
    return dest


_BARE = """
import sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, prompts_file = sys.argv[1], sys.argv[2]
prompts = open(prompts_file).read().split("\\x00")
tok = AutoTokenizer.from_pretrained(model_dir); tok.padding_side = "left"
model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
t = time.perf_counter()
enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
with torch.inference_mode():
    model.generate(**enc, do_sample=False, max_new_tokens=48, pad_token_id=tok.pad_token_id)
print(time.perf_counter() - t)
"""


def bare_generate(model_dir: Path, prompts: list[str], rounds: int) -> tuple[float, float]:
    """(median of warm calls, the first call in a fresh process) of one batched generate."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\x00".join(prompts))
    out = subprocess.run([sys.executable, "-c", _BARE, str(model_dir), f.name], check=True,
                         capture_output=True, text=True)
    first = float(out.stdout.strip().splitlines()[-1])
    os.unlink(f.name)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    times = []
    for _ in range(rounds + 1):
        t = time.perf_counter()
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            model.generate(**enc, do_sample=False, max_new_tokens=48, pad_token_id=tok.pad_token_id)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:]), first


IMPORTS = "import torch, transformers.models.qwen2.modeling_qwen2"
IMPORTS_ROW = "the imports alone (the floor)"


def imports_wall() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], check=True)
    return time.perf_counter() - t


def eval_wall(checkout: Path, model: Path) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "autorl_gym.cli", "eval", str(model), "--split", "dev"],
                         env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"eval failed in {checkout}:\n{out.stderr[-2000:]}")
    import json

    return wall, str(json.loads(out.stdout)["score"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", type=Path, default=None,
                    help="another checkout whose `autorl-gym eval` is timed alongside")
    args = ap.parse_args()

    from autorl_gym.episode.grading import ScenarioGrading
    from autorl_gym.grading.backends.registry import build_prompts
    from autorl_gym.grading.submission import pin_submission
    from autorl_gym.scenarios.catalog import get_scenario

    sc = get_scenario("AutoRL-Micro-Arith-v0")
    grading = ScenarioGrading(sc)
    work = Path(tempfile.mkdtemp(prefix="grading-speed-"))
    try:
        t0 = time.perf_counter()
        grading.prepare([sc.feedback_split])     # the episode's start: baseline, warm server
        prepare_s = time.perf_counter() - t0
        base = grading.assets.base_model_dir
        (work / "ws" / "output").mkdir(parents=True)
        perturbed(base, work / "ws" / "output" / "model")
        checked = pin_submission("output/model", work / "ws", work / "store",
                                 limits=grading.grader.submission_limits)
        time.sleep(0)  # the prepare thread runs alongside; the first grading waits for what is left
        episode_s = []
        results = []
        for _ in range(args.rounds + 1):
            t = time.perf_counter()
            results.append(grading.grade(checked, "dev"))
            episode_s.append(time.perf_counter() - t)
        assert all([i.completion for i in r.items] == [i.completion for i in results[0].items]
                   for r in results)
        from transformers import AutoTokenizer

        items = grading.grader.ctx.items("dev")
        prompts = build_prompts(grading.grader.ctx, items, AutoTokenizer.from_pretrained(base))
        bare_warm, bare_first = bare_generate(checked.path, prompts, args.rounds)
        evals: dict[str, list[float]] = {"this checkout": []}
        if args.before:
            evals[f"before ({args.before})"] = []
        evals[IMPORTS_ROW] = []
        scores = set()
        for _ in range(max(1, args.rounds - 1)):
            for name in evals:
                if name == IMPORTS_ROW:
                    evals[name].append(imports_wall())
                    continue
                checkout = REPO if name == "this checkout" else args.before
                wall, score = eval_wall(checkout, checked.path)
                evals[name].append(wall)
                scores.add(score)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    later = statistics.median(episode_s[1:])
    table = Table(title=f"micro dev grading, {len(prompts)} items (load {load[0]:.1f} {load[1]:.1f} "
                        f"{load[2]:.1f}; episode start incl. baseline {prepare_s:.2f} s)")
    for col in ("what", "seconds", "x bare generate (warm)"):
        table.add_column(col)
    table.add_row("bare batched generate, warm (median)", f"{bare_warm:.3f}", "1.00")
    table.add_row("bare batched generate, first call in a fresh process", f"{bare_first:.3f}",
                  f"{bare_first / bare_warm:.2f}")
    table.add_row("episode dev grading, first", f"{episode_s[0]:.3f}", f"{episode_s[0] / bare_warm:.2f}")
    table.add_row(f"episode dev grading, next {args.rounds} (median)", f"{later:.3f}",
                  f"{later / bare_warm:.2f}")
    for name, xs in evals.items():
        what = name if name == IMPORTS_ROW else f"autorl-gym eval, {name}"
        table.add_row(f"{what} (median of {len(xs)}: {' / '.join(f'{x:.2f}' for x in xs)})",
                      f"{statistics.median(xs):.2f}", "")
    console = Console()
    console.print(table)
    console.print(f"scores: {sorted(scores)} (eval), {results[0].score} (episode); ratio target "
                  f"<= {TARGET_RATIO}x, eval target < {TARGET_EVAL_S} s at idle")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
