"""Grader throughput: the project's ``hf`` backend against lm-evaluation-harness's ``hf`` model.

Same model, same items, same protocol, side by side in one run. The reference is lm-eval's
``hf`` model as the ``lm_eval`` backend runs it (``batch_size=1``: lm-eval calls ``generate``
without an attention mask, so a padded batch changes the completions of a model whose pad token
is an end-of-text token, which is the case for Qwen2.5 and the micro model). For information,
lm-eval's ``hf`` model is also timed at the ``hf`` backend's batch size, with the number of
completions that then differ from the unpadded ones.

    python bench/grader_throughput.py                       # GSM8K test items, the micro model
    python bench/grader_throughput.py --base-model PATH --limit 32 --device cuda

GSM8K data comes from ``AUTORL_GYM_DATA_DIR`` (default: ../shared/data next to the repo).
Goal: the hf backend grades at least 1.5x as many problems per second as lm-eval's hf model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
GOAL = 1.5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="AutoRL-GSM8K-v0")
    ap.add_argument("--base-model", default=None, help="default: the micro model")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=None, help="hf backend batch size")
    ap.add_argument("--device", default=None)
    ap.add_argument("--skip-batched-lm-eval", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("AUTORL_GYM_DATA_DIR", str(REPO.parent / "shared" / "data"))

    from autorl_gym.core.family import resolve_assets
    from autorl_gym.grading.backends import lm_eval as lm_eval_backend
    from autorl_gym.grading.grader import Grader
    from autorl_gym.grading.submission import inspect_submission
    from autorl_gym.micro.build import ensure_micro_assets
    from autorl_gym.scenarios.catalog import get_scenario

    console = Console()
    base = args.base_model or str(ensure_micro_assets("arith").model_dir)
    sc = get_scenario(args.env)
    grader_spec = sc.grader.model_copy(update={
        k: v for k, v in {"batch_size": args.batch_size, "device": args.device}.items() if v})
    sc = sc.model_copy(update={"grader": grader_spec})
    assets = resolve_assets(sc, base_model=base, progress=False)
    runs = REPO / "bench" / "runs"
    hf = Grader(sc, assets, backend="hf")
    lm = Grader(sc, assets, backend="lm_eval", log_root=runs)
    info = inspect_submission(assets.base_model_dir)
    problems = hf.ctx.items(args.split, args.limit)
    n = len(problems)
    proto = sc.protocol
    console.print(f"[bold]{sc.id}[/]: {n} {args.split} problems, model {assets.base_model_dir}, "
                  f"{proto.few_shot}-shot, max_new_tokens {proto.max_new_tokens}, "
                  f"hf batch size {grader_spec.batch_size}, device {grader_spec.device}")

    rows: list[tuple[str, float, str]] = []
    t0 = time.perf_counter()
    a = hf.evaluate(assets.base_model_dir, args.split, args.limit, info=info)
    t_hf = time.perf_counter() - t0
    rows.append(("autorl-gym hf backend", t_hf, "reference of the ratio"))

    t0 = time.perf_counter()
    b = lm.evaluate(assets.base_model_dir, args.split, args.limit, info=info)
    t_lm = time.perf_counter() - t0
    same = sum(x.completion == y.completion for x, y in zip(a.items, b.items, strict=True))
    rows.append(("lm-eval hf model, batch_size 1 (the lm_eval backend)", t_lm,
                 f"{same}/{n} completions identical to the hf backend's"))

    if not args.skip_batched_lm_eval:
        t0 = time.perf_counter()
        run_dir = runs / "lm_eval_batched"
        run_dir.mkdir(parents=True, exist_ok=True)
        config = hf.family.lm_eval_task(hf.ctx, problems, run_dir)
        c = lm_eval_backend.evaluate(info, assets.base_model_dir, grader_spec, config, n, run_dir,
                                     batch_size=grader_spec.batch_size)
        t_lmb = time.perf_counter() - t0
        same_b = sum(x.completion == y for x, y in zip(b.items, c.completions, strict=True))
        rows.append((f"lm-eval hf model, batch_size {grader_spec.batch_size} (no attention mask)",
                     t_lmb, f"{same_b}/{n} completions identical to the unpadded ones"))

    table = Table(title=f"grader throughput, {n} problems")
    for col in ("grader", "seconds", "problems/s", "hf backend's rate / this", "note"):
        table.add_column(col)
    for name, secs, note in rows:
        table.add_row(name, f"{secs:.1f}", f"{n / secs:.3f}", f"{secs / t_hf:.2f}x", note)
    console.print(table)
    ratio = t_lm / t_hf
    console.print(f"hf backend vs lm-eval's hf model (as the lm_eval backend runs it): "
                  f"[bold]{ratio:.2f}x[/] (goal >= {GOAL}x): "
                  f"{'[green]met[/]' if ratio >= GOAL else '[red]not met[/]'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
