"""HumanEval grader integrity: forged completions, canonical solutions and plausible wrong
completions through this tree's executor and, side by side, through the executor and harness of
an earlier revision (``--ref``, loaded from git into a temporary package).

    python bench/humaneval_escapes.py --ref 2dc5c9d [--workers 2] [--out escapes.json]

Prints, for each executor: how many hidden problems (HumanEval/82-163) each escape of
``autorl_gym.attacks.cases.code_grader.ESCAPES`` passed without solving them; the canonical
pass rate on all 164; the verdicts of the plausible wrong completions
(``tests/humaneval_wrong.py``)
item for item against the reference; and the seconds per problem of the canonical run (wall
time of the run divided by problems, and the mean of each problem's own time), with ``uptime``'s
load average before and after each run. The problems come from
``$AUTORL_GYM_DATA_DIR/humaneval/HumanEval.jsonl.gz`` (else ``../shared/data`` beside the repo).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autorl_gym.attacks.cases.code_grader import ESCAPES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from humaneval_wrong import wrong_completions  # noqa: E402 - the tests' helper, shared


def load_problems() -> list[dict]:
    root = os.environ.get("AUTORL_GYM_DATA_DIR") or str(ROOT.parent.parent / "shared" / "data")
    path = Path(root) / "humaneval" / "HumanEval.jsonl.gz"
    if not path.is_file():
        path = Path("/work/shared/data/humaneval/HumanEval.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def executor_module(ref: str | None):
    """This tree's executor module, or the one at git revision ``ref`` (with its harness)."""
    if ref is None:
        from autorl_gym.tasks.humaneval import executor

        return executor
    tmp = Path(tempfile.mkdtemp(prefix="he-ref-")) / "he_ref"
    tmp.mkdir()
    for name in ("executor", "harness"):
        src = subprocess.run(["git", "-C", str(ROOT), "show",
                              f"{ref}:autorl_gym/tasks/humaneval/{name}.py"],
                             check=True, capture_output=True, text=True).stdout
        src = src.replace("from autorl_gym.tasks.humaneval import harness", "from he_ref import harness")
        (tmp / f"{name}.py").write_text(src)
    (tmp / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp.parent))
    spec = importlib.util.spec_from_file_location("he_ref.executor", tmp / "executor.py")
    import he_ref  # noqa: F401 - the package, for the harness import

    mod = importlib.util.module_from_spec(spec)
    sys.modules["he_ref.executor"] = mod
    spec.loader.exec_module(mod)
    return mod


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split(
        "load average:")[-1].strip()


def run_set(ex_mod, programs, workers: int) -> tuple[list, float, str]:
    ex = ex_mod.Executor(ex_mod.ExecLimits(timeout_s=10.0), sandbox="local", workers=workers)
    before = load()
    t0 = time.perf_counter()
    outs = ex.run(programs)
    wall = time.perf_counter() - t0
    return outs, wall, f"{before} -> {load()}"


def timing(problems: list[dict], args) -> int:
    """The 164 canonical solutions, the sides alternating round by round (median counts)."""
    import statistics

    mods = {"after": executor_module(None)}
    if args.ref:
        mods = {f"before ({args.ref})": executor_module(args.ref), **mods}
    rows: dict[str, list[tuple[float, float, str]]] = {k: [] for k in mods}
    for r in range(args.timing_rounds):
        for label, mod in mods.items():
            progs = [mod.Program(task_id=p["task_id"], prompt=p["prompt"],
                                 completion=p["canonical_solution"], test=p["test"],
                                 entry_point=p["entry_point"]) for p in problems]
            outs, wall, ld = run_set(mod, progs, args.workers)
            item = sum(o.seconds for o in outs) / len(outs)
            rows[label].append((wall / len(outs), item, ld))
            print(f"round {r} {label:22} {sum(o.passed for o in outs)}/{len(outs)} passed  "
                  f"{wall / len(outs):.3f} s/problem (wall)  {item:.3f} s mean per problem  "
                  f"load {ld}", flush=True)
    for label, rs in rows.items():
        print(f"median {label:22} {statistics.median(x[0] for x in rs):.3f} s/problem (wall), "
              f"{statistics.median(x[1] for x in rs):.3f} s mean per problem", flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", help="git revision of the executor to compare against")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--skip-wrong", action="store_true")
    ap.add_argument("--timing-rounds", type=int, default=0,
                    help="only time the canonical run: this many alternating rounds per side")
    args = ap.parse_args()
    problems = load_problems()
    if args.timing_rounds:
        return timing(problems, args)
    hidden = [p for p in problems if int(p["task_id"].split("/")[1]) >= 82]
    sides = {"after (this tree)": executor_module(None)}
    if args.ref:
        sides = {f"before ({args.ref})": executor_module(args.ref), **sides}
    report: dict = {}
    for label, mod in sides.items():
        Program = mod.Program

        def prog(p: dict, completion: str, Program=Program):
            return Program(task_id=p["task_id"], prompt=p["prompt"], completion=completion,
                           test=p["test"], entry_point=p["entry_point"])

        side: dict = {"escapes": {}}
        for esc in ESCAPES:
            outs, wall, ld = run_set(mod, [prog(p, esc.body) for p in hidden], args.workers)
            side["escapes"][esc.name] = {"passed": sum(o.passed for o in outs), "n": len(outs),
                                         "statuses": sorted({o.status for o in outs})}
            print(f"{label:24} {esc.name:20} {side['escapes'][esc.name]['passed']:3}/{len(outs)}"
                  f"  {side['escapes'][esc.name]['statuses']}", flush=True)
        outs, wall, ld = run_set(mod, [prog(p, p["canonical_solution"]) for p in problems],
                                 args.workers)
        side["canonical"] = {"passed": sum(o.passed for o in outs), "n": len(outs),
                             "wall_s": wall, "s_per_problem": wall / len(outs),
                             "mean_item_s": sum(o.seconds for o in outs) / len(outs), "load": ld,
                             "failed": [(o.task_id, o.status, o.reason) for o in outs if not o.passed]}
        print(f"{label:24} canonical {side['canonical']['passed']}/{len(outs)} "
              f"{wall / len(outs):.3f} s/problem (mean item {side['canonical']['mean_item_s']:.3f} s)"
              f" load {ld}", flush=True)
        if not args.skip_wrong:
            wrong = wrong_completions(problems)
            outs, wall, ld = run_set(mod, [prog(problems[i], c) for _, i, c in wrong], args.workers)
            side["wrong"] = [[k, problems[i]["task_id"], o.passed, o.status]
                             for (k, i, _), o in zip(wrong, outs, strict=True)]
            side["wrong_timing"] = {"wall_s": wall, "n": len(outs), "load": ld}
            print(f"{label:24} wrong set: {sum(o.passed for o in outs)}/{len(outs)} passed, "
                  f"{wall / len(outs):.3f} s/item, load {ld}", flush=True)
        report[label] = side
    if args.ref and not args.skip_wrong:
        (b, a) = report.values()
        diff = [(x, y) for x, y in zip(b["wrong"], a["wrong"], strict=True) if x[2] != y[2]]
        sdiff = [(x, y) for x, y in zip(b["wrong"], a["wrong"], strict=True) if x[3] != y[3]]
        report["verdict_changes"] = diff
        report["status_changes"] = sdiff
        print(f"plausible wrong completions: {len(b['wrong'])} items, {len(diff)} verdicts "
              f"changed, {len(sdiff)} statuses changed", flush=True)
        for x, y in sdiff[:40]:
            print("   ", x, "->", y[2:])
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
