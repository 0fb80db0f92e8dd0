"""Fidelity to the published protocols: our scorer against the peers' own code.

``gsm8k_scoring_matches_lm_eval`` scores a few hundred varied completions (``#### 48.0``, ``048``,
``$48.00``, thousands separators, several markers, none, ...) with the family's own ``score``
and with lm-evaluation-harness's ``gsm8k`` task as installed (its yaml's filters built by
lm-eval's filter registry, its ``exact_match`` metric with the yaml's arguments); any verdict
that differs is a score that is not the published protocol's.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from autorl_gym.attacks.base import AttackBroken, AttackContext, AttackSkipped, attack


def gsm8k_answer_field(gold: int | float, rng: random.Random) -> str:
    """A worked solution ending in ``#### N`` (N as GSM8K writes it, sometimes with a separator)."""
    shown = f"{gold:,}" if isinstance(gold, int) and abs(gold) >= 1000 and rng.random() < 0.3 else str(gold)
    return f"She has {rng.randint(1, 9)} apples and buys more.\nSo the total is {shown}.\n#### {shown}"


def varied_completions(n: int = 600, seed: int = 0) -> list[tuple[str, str]]:
    """``(completion, answer field)`` pairs in the shapes a model writes: right, near-right
    (``48.0``, ``048``, ``$48.00``, ``48.``, separators, a sign), wrong, several markers, none."""
    rng = random.Random(f"autorl-gym/fidelity/gsm8k/{seed}")
    shapes = [
        "#### {g}", "#### {g}.0", "#### {g}.00", "#### 0{g}", "#### {g}.", "#### ${g}", "#### {c}",
        "#### {g} dollars", "####{g}", "#### -{g}", "#### {o}", "#### {g}\n#### {o}",
        "#### {o}\n#### {g}", "The answer is {g}.", "The answer is ${g}.00", "So {g} in all.",
        "{w} then {g}", "{g} apples, {o} pears", "Total: {c}", "#### {g},", "#### {g}.5",
        "#### .{g}", "#### {g}\n\nQuestion: next", "", "No idea.", "#### ", "#### {g}!",
        "#### {G}", "answer: {g}$", "#### {g}.0.", "It costs $ {g}.", "-{g}", "#### --{g}",
        "{o}. #### {g}", "#### {g}\n", "  #### {g}  ", "#### 1,2,3", "#### {g}.{g}", "$${g}",
    ]
    out = []
    for _ in range(n):
        gold: int | float = rng.choice([rng.randint(0, 99), rng.randint(100, 99999), -rng.randint(1, 50)])
        if rng.random() < 0.05:
            gold = round(rng.uniform(0, 100), 2)
        other = gold + rng.choice([-10, -1, 1, 7, 100])
        text = rng.choice(shapes).format(
            g=gold, o=other, c=f"{gold:,}", G=f"{abs(gold) * 1000:,}",
            w=rng.choice(["12 + 7 = 19", "3 * 4 = 12", "5 - 2 = 3"]))
        if rng.random() < 0.3:
            text = f"{rng.choice(['Step 1: 2 + 2 = 4.', 'First, 10 / 2 = 5.'])}\n{text}"
        out.append((text, gsm8k_answer_field(gold, rng)))
    return out


def lm_eval_gsm8k_verdicts(completions: list[str], answers: list[str]) -> dict[str, list[bool]]:
    """lm-eval's own verdicts per filter: the installed ``gsm8k.yaml``'s filters built through
    lm-eval's filter registry, its ``exact_match`` metric called with the yaml's arguments, one
    document at a time (as lm-eval's ``process_results`` does)."""
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise AttackSkipped("lm-eval is not installed: pip install 'autorl-gym[lm-eval]'")
    from functools import partial

    import lm_eval.api.metrics  # noqa: F401 - registers the metrics
    import lm_eval.filters  # noqa: F401 - registers the filters
    from lm_eval.api.registry import get_filter, get_metric

    task_yaml = Path(next(iter(spec.submodule_search_locations))) / "tasks" / "gsm8k" / "gsm8k.yaml"
    config: dict[str, Any] = yaml.safe_load(task_yaml.read_text())
    (metric,) = config["metric_list"]
    kwargs = {k: v for k, v in metric.items() if k not in ("metric", "aggregation", "higher_is_better")}
    fn = get_metric(metric["metric"])
    out: dict[str, list[bool]] = {}
    for f in config["filter_list"]:
        resps: Any = [[c] for c in completions]
        for step in f["filter"]:
            args = {k: v for k, v in step.items() if k != "function"}
            resps = partial(get_filter(step["function"]), **args)().apply(resps, [{}] * len(completions))
        filtered = list(resps)
        out[f["name"]] = [fn(references=[a], predictions=[p], **kwargs)["exact_match"] == 1.0
                          for p, a in zip(filtered, answers, strict=True)]
    return out


def ours(family: str, completions: list[str], answers: list[str]) -> dict[str, list[bool]]:
    """The family's own verdicts (its ``score``), strict and flexible."""
    from autorl_gym.core.answers import reference_answer
    from autorl_gym.core.family import get_family
    from autorl_gym.tasks.qa import Problem

    items = [Problem(index=i, question="q", answer=a, gold=reference_answer(a))
             for i, a in enumerate(answers)]
    results = get_family(family).score(None, items, completions)  # type: ignore[arg-type]
    return {"strict-match": [r.correct for r in results],
            "flexible-extract": [bool(r.details["flexible_correct"]) for r in results]}


@attack(klass="fidelity", families=("gsm8k", "arith"))
def gsm8k_scoring_matches_lm_eval(ctx: AttackContext) -> str:
    """Completions like '#### 48.0', '048', '$48.00' are scored as lm-eval's gsm8k task scores them."""
    pairs = varied_completions()
    completions, answers = [p[0] for p in pairs], [p[1] for p in pairs]
    theirs = lm_eval_gsm8k_verdicts(completions, answers)
    mine = ours(ctx.family, completions, answers)
    differ = {name: [i for i, (a, b) in enumerate(zip(mine[name], theirs[name], strict=True)) if a != b]
              for name in theirs}
    n_diff = sum(len(v) for v in differ.values())
    if n_diff:
        first = next(i for v in differ.values() for i in v)
        raise AttackBroken(f"{n_diff} of {2 * len(pairs)} verdicts differ from lm-eval's "
                           f"({', '.join(f'{k}: {len(v)}' for k, v in differ.items())}); e.g. "
                           f"{completions[first]!r} against gold {answers[first].split('#### ')[-1]!r}")
    right = sum(theirs["strict-match"])
    return f"all {2 * len(pairs)} verdicts equal lm-eval's ({right} strict-match right)"
