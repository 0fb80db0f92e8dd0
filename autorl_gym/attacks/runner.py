"""Running the attack suite: every applicable attack in a scratch folder of its own."""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from autorl_gym.attacks.base import (
    AttackBroken,
    AttackContext,
    AttackOutcome,
    AttackReport,
    AttackSkipped,
    load_cases,
)


class UnknownAttack(ValueError):
    pass


def run_attacks(scenario_id: str, sandbox: str, scratch: Path | None = None,
                names: list[str] | None = None,
                on_result: Callable[[AttackOutcome], None] | None = None) -> AttackReport:
    """Run the attacks (all, or ``names``) on ``scenario_id`` in sandbox ``sandbox``."""
    from autorl_gym.scenarios.catalog import get_scenario

    attacks = load_cases()
    unknown = [n for n in names or [] if n not in attacks]
    if unknown:
        raise UnknownAttack(f"unknown attacks {', '.join(unknown)}; registered: {', '.join(sorted(attacks))}")
    family = get_scenario(scenario_id).task_family
    own = scratch is None
    root = Path(tempfile.mkdtemp(prefix="autorl-attacks-")) if own else scratch
    outcomes: list[AttackOutcome] = []
    try:
        for name in names or sorted(attacks):
            a = attacks[name]
            start = time.monotonic()
            why_not = a.applies(family, sandbox)
            if why_not is not None:
                status, detail = "skipped", why_not
            else:
                folder = root / name
                folder.mkdir(parents=True, exist_ok=True)
                ctx = AttackContext(scenario_id=scenario_id, sandbox=sandbox, scratch=folder)
                try:
                    status, detail = "held", a.fn(ctx)
                except AttackBroken as e:
                    status, detail = "broken", str(e)
                except AttackSkipped as e:
                    status, detail = "skipped", str(e)
                except Exception as e:  # noqa: BLE001 - the attack's own failure, reported
                    status = "error"
                    detail = f"{e.__class__.__name__}: {e}\n{traceback.format_exc(limit=6)}"
            out = AttackOutcome(name=name, klass=a.klass, status=status, detail=detail,
                                duration_s=round(time.monotonic() - start, 2))
            outcomes.append(out)
            if on_result is not None:
                on_result(out)
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)
    return AttackReport(scenario_id=scenario_id, sandbox=sandbox, outcomes=outcomes)
