"""The scripted agent's reference recipes on the micro scenarios: what a good agent must beat.

    python bench/micro_recipes.py [--scenario AutoRL-Micro-TextWorld-v0 ...] [--recipe sft ...]
        [--agent-option 'train_env={SFT_THREADS: 1, THREADS: 1}'] [--markdown recipes.md]

Runs every applicable recipe (each of its stages has a script for the scenario's task kind) on
every micro scenario, or the ones given, one episode after another, each through the real CLI
(``autorl-gym run --env S --agent scripted --agent-option recipe=R``), and prints a table:
scenario, recipe, baseline, test score (with its bootstrap interval), improvement (with the
paired bootstrap interval the report prints), wall time, and each recipe's improvement as a
ratio of the reference recipe ``sft``'s on the same scenario, measured in the same run. The
table is written as markdown too (``--markdown``), to paste into the README, with the load
average before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from autorl_gym.agents.spec import import_agent_module
from autorl_gym.core.family import family_of
from autorl_gym.grading.stats import paired_bootstrap
from autorl_gym.report.build import analyse
from autorl_gym.report.run_data import load_run
from autorl_gym.scenarios.catalog import catalog

REFERENCE = "sft"
RECIPES = ("sft", "grpo", "sft+grpo")


class Row(BaseModel):
    scenario: str
    recipe: str
    baseline: float | None = None
    score: float | None = None
    score_ci: str = ""
    improvement: float | None = None
    improvement_ci: str = ""
    verdict: str = ""
    wall_s: float
    error: str | None = None
    ratio: str = ""
    vs_reference: str = ""
    items: dict[int, bool] = {}


def applicable(recipe: str, kind: str) -> bool:
    agent = import_agent_module("scripted", "agent")
    return all(kind in agent.STAGES.get(stage, {}) for stage in agent.parse_recipe(recipe))


def run_one(scenario: str, recipe: str, options: list[str], root: Path, reuse: bool = False) -> Row:
    folder = root / f"{scenario}-{recipe}"
    results, workspace, wall_file = folder / "results", folder / "ws", folder / "wall_s.txt"
    if reuse and wall_file.is_file():  # a finished episode kept by an earlier --keep run
        return read_row(scenario, recipe, results, float(wall_file.read_text()), "")
    cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", scenario, "--agent", "scripted",
           "--agent-option", f"recipe={recipe}", "--results-dir", str(results),
           "--workspace-root", str(workspace)]
    for opt in options:
        cmd += ["--agent-option", opt]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"})
    wall = time.monotonic() - t0
    if proc.returncode == 0:
        wall_file.write_text(f"{wall:.1f}")
    tail = " / ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:]) or "failed"
    return read_row(scenario, recipe, results, wall, "" if proc.returncode == 0 else tail)


def read_row(scenario: str, recipe: str, results: Path, wall: float, error: str) -> Row:
    runs = sorted(results.iterdir()) if results.is_dir() else []
    if error or not runs:
        return Row(scenario=scenario, recipe=recipe, wall_s=wall, error=error or "no results folder")
    run = load_run(runs[-1])
    rep = analyse(run)
    iv, sc = rep.noise.interval, rep.noise.score
    verdict = ("significant gain" if iv and iv.significant else "significant loss"
               if iv and iv.significant_loss else "inside the noise" if iv else rep.noise.note)
    return Row(scenario=scenario, recipe=recipe, baseline=rep.result.baseline, score=rep.result.score,
               score_ci=f"[{sc.low:.2f}, {sc.high:.2f}]" if sc else "",
               improvement=rep.result.improvement,
               improvement_ci=f"[{iv.low:+.2f}, {iv.high:+.2f}]" if iv else "", verdict=verdict,
               wall_s=wall, items={i.index: i.correct for i in run.test_items or []})


def add_ratios(rows: list[Row]) -> None:
    """Each recipe's improvement over the reference recipe's: their ratio, and the test-score
    difference with a paired bootstrap interval over the test items both were graded on."""
    ref = {r.scenario: r for r in rows if r.recipe == REFERENCE and r.improvement is not None}
    for r in rows:
        base = ref.get(r.scenario)
        if base is None or r.improvement is None or r is base:
            continue
        if base.improvement:
            r.ratio = f"{r.improvement / base.improvement:.2f}"
        common = sorted(r.items.keys() & base.items.keys())
        if len(common) >= 2:
            iv = paired_bootstrap([float(r.items[i]) for i in common], [float(base.items[i]) for i in common])
            r.vs_reference = f"{iv.improvement:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}]"


def fmt(v: float | None, sign: bool = False) -> str:
    return "" if v is None else f"{v:+.2f}" if sign else f"{v:.2f}"


COLUMNS = ("scenario", "recipe", "baseline", "test score [95% CI]", "improvement [95% paired CI]",
           f"improvement / {REFERENCE}'s", f"score - {REFERENCE}'s [95% paired CI]", "wall")


def cells(r: Row) -> list[str]:
    if r.error:
        return [r.scenario, r.recipe, "", "", f"failed: {r.error}", "", "", f"{r.wall_s:.0f} s"]
    return [r.scenario, r.recipe, fmt(r.baseline), f"{fmt(r.score)} {r.score_ci}",
            f"**{fmt(r.improvement, True)}** {r.improvement_ci} ({r.verdict})", r.ratio, r.vs_reference,
            f"{r.wall_s:.0f} s"]


def markdown(rows: list[Row], load_before: str, load_after: str) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    lines.append(f"\nLoad average (1, 5, 15 min) before: {load_before}; after: {load_after}.")
    return "\n".join(lines) + "\n"


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", help="scenario id (repeatable); default: every micro one")
    ap.add_argument("--recipe", action="append", help=f"recipe (repeatable); default: {', '.join(RECIPES)}")
    ap.add_argument("--agent-option", action="append", default=[],
                    help="KEY=VALUE for the scripted agent, as autorl-gym run takes it (repeatable)")
    ap.add_argument("--markdown", type=Path, help="write the table as markdown here too")
    ap.add_argument("--keep", type=Path, help="keep the episodes' results and workspaces here")
    ap.add_argument("--reuse", action="store_true",
                    help="with --keep: read the episodes already finished there instead of rerunning them")
    args = ap.parse_args()
    scenarios = catalog().scenarios
    ids = args.scenario or sorted(s for s in scenarios if s.startswith("AutoRL-Micro-"))
    unknown = [s for s in ids if s not in scenarios]
    if unknown:
        sys.exit(f"unknown scenario(s): {', '.join(unknown)}")
    recipes = args.recipe or list(RECIPES)
    console = Console()
    load_before = load_average()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="micro_recipes_") as tmp:
        root = args.keep or Path(tmp)
        for sid in ids:
            kind = family_of(scenarios[sid]).kind
            for recipe in recipes:
                if not applicable(recipe, kind):
                    console.print(f"[dim]skip {recipe} on {sid}: a stage has no {kind} script[/]")
                    continue
                console.print(f"running {recipe} on {sid} (load {load_average()}) ...")
                row = run_one(sid, recipe, args.agent_option, root, args.reuse)
                console.print(f"  {row.error or f'{fmt(row.baseline)} -> {fmt(row.score)}'} "
                              f"in {row.wall_s:.0f} s")
                rows.append(row)
    add_ratios(rows)
    table = Table(title="scripted agent's recipes on the micro scenarios")
    for c in COLUMNS:
        table.add_column(c)
    for r in rows:
        table.add_row(*[c.replace("**", "") for c in cells(r)])
    console.print(table)
    load_after = load_average()
    console.print(f"load average before: {load_before}; after: {load_after}")
    if args.markdown:
        args.markdown.write_text(markdown(rows, load_before, load_after))
        console.print(f"markdown table written to {args.markdown}")


if __name__ == "__main__":
    main()
