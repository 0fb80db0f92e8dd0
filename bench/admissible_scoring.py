"""The admissible-command evaluator of the micro interactive scenarios (``choose: admissible``):
:meth:`HFPolicy.score` running each prompt once and scoring its commands over the prompt's cache,
against the reference that runs every prompt + command in full (``tests/reference_policy.py``,
the scoring before the change), side by side in one run, each graded the grader's own way
(``Grader.evaluate`` inline, one torch thread as the micro families grade). It prints the time
of each, the ratio, and whether every item's transcript and verdict are identical.

    python bench/admissible_scoring.py [--splits dev test] [--limit N] [--model DIR]

``--model``: a trained policy folder to grade instead of each scenario's base model (it must fit
every scenario named with ``--scenarios``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from unittest import mock

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SCENARIOS = ("AutoRL-Micro-TextWorld-v0", "AutoRL-Micro-WebShop-v0", "AutoRL-Micro-DeepSearch-v0")


def grade(scenario_id: str, split: str, limit: int | None, model: Path | None, reference: bool):  # noqa: ANN201
    """The EvalResult of the base model (or ``model``) on ``split``, and the seconds it took."""
    from reference_policy import FullSequencePolicy

    import autorl_gym.interactive as interactive
    from autorl_gym.core.family import resolve_assets
    from autorl_gym.grading.grader import Grader
    from autorl_gym.scenarios.catalog import get_scenario

    sc = get_scenario(scenario_id)
    sc = sc.model_copy(update={"grader": sc.grader.model_copy(update={"isolation": "inline"})})
    assets = resolve_assets(sc, progress=False)
    grader = Grader(sc, assets)
    policy = FullSequencePolicy if reference else interactive.HFPolicy
    with mock.patch.object(interactive, "HFPolicy", policy):
        started = time.perf_counter()
        result = grader.evaluate(model or assets.base_model_dir, split, limit=limit)
    return result, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    ap.add_argument("--splits", nargs="+", default=["dev", "test"])
    ap.add_argument("--limit", type=int, default=None, help="the first N items of each split")
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    console = Console()
    table = Table(title="admissible scoring: the prompt's cache shared (new) vs every prompt + "
                        "command in full (reference)")
    for col in ("scenario", "split", "items", "score", "reference s", "new s", "reference/new",
                "identical items"):
        table.add_column(col)
    for sid in args.scenarios:
        for split in args.splits:
            ref, ref_s = grade(sid, split, args.limit, args.model, reference=True)
            new, new_s = grade(sid, split, args.limit, args.model, reference=False)
            same = sum(a.completion == b.completion and a.correct == b.correct
                       for a, b in zip(ref.items, new.items, strict=True))
            score = f"{ref.score:.2f}" + ("" if new.score == ref.score else f" / {new.score:.2f}")
            table.add_row(sid.removeprefix("AutoRL-"), split, str(len(ref.items)), score,
                          f"{ref_s:.1f}", f"{new_s:.1f}", f"{ref_s / new_s:.2f}x",
                          f"{same}/{len(ref.items)}")
    console.print(table)
    console.print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
