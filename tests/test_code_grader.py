"""The HumanEval grader under attack: completions that pass without solving the problem.

Every escape of :data:`autorl_gym.attacks.cases.code_grader.ESCAPES` runs against the real
executor (real bubblewrap sandboxes, the real harness): on the generated problems here always,
on real hidden HumanEval problems when the data is there (``shared_data``), and through the
registered attacks (the family's scoring path). Also: honest results of every builtin type
survive the crossing between the candidate's process and the checker, the checker cannot be
looked into, and guard trips come back as ``code.guard`` integrity events.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_data, skip_or_fail_without_bwrap

from autorl_gym.attacks.base import AttackContext
from autorl_gym.attacks.cases.code_grader import ESCAPES, TOY_PROBLEMS, Escape, grade_forged
from autorl_gym.attacks.runner import run_attacks
from autorl_gym.core.sandbox import SandboxSpec, SandboxUnavailable
from autorl_gym.sandbox import make_sandbox
from autorl_gym.scenarios.catalog import get_scenario
from autorl_gym.tasks.humaneval.executor import ExecLimits, Executor, Program

HE_ID = "AutoRL-HumanEval-v0"
STOPS = get_scenario(HE_ID).protocol.stop


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Executor:
    try:
        make_sandbox("local", SandboxSpec(workspace=tmp_path_factory.mktemp("probe"))).close()
    except SandboxUnavailable as e:
        skip_or_fail_without_bwrap(str(e))
    return Executor(ExecLimits(timeout_s=5.0, memory_mb=512, max_processes=8), sandbox="local",
                    workers=2, tmp_root=tmp_path_factory.mktemp("exec"))


def program(p, completion: str) -> Program:
    return Program(task_id=p.task_id, prompt=p.prompt, completion=completion, test=p.test,
                   entry_point=p.entry_point)


def toy(body: str, test: str, prompt: str = 'def f(k):\n    """k-th value."""\n') -> Program:
    return Program(task_id="Toy/x", prompt=prompt, completion=body, test=test, entry_point="f")


@pytest.mark.parametrize("esc", ESCAPES, ids=[e.name for e in ESCAPES])
def test_escape_is_emitted_as_is(esc: Escape) -> None:
    """A model can emit every forged body verbatim: no stop sequence cuts it."""
    assert not [s for s in STOPS if s in esc.body]
    compile("def f(a, b=0):\n" + esc.body, "escape", "exec")


def test_toy_problems_pass_with_their_solutions(executor: Executor) -> None:
    outs = executor.run([program(p, p.canonical_solution) for p in TOY_PROBLEMS])
    assert [(o.task_id, o.status) for o in outs if not o.passed] == []
    assert all(o.guards == [] for o in outs)


@pytest.mark.parametrize("esc", ESCAPES, ids=[e.name for e in ESCAPES])
def test_escape_fails_on_generated_problems(executor: Executor, esc: Escape) -> None:
    outs = executor.run([program(p, esc.body) for p in TOY_PROBLEMS])
    assert [o.task_id for o in outs if o.passed] == [], esc.name
    assert all(o.reason for o in outs)


@pytest.fixture(scope="module")
def hidden_problems() -> list:
    from autorl_gym.tasks.humaneval.data import read_jsonl

    folder = shared_data("humaneval", "HumanEval.jsonl.gz")
    problems = read_jsonl(folder / "HumanEval.jsonl.gz")
    return [p for p in problems if p.number >= 82]


@pytest.mark.parametrize("esc", ESCAPES, ids=[e.name for e in ESCAPES])
def test_escape_fails_on_real_hidden_problems(executor: Executor, hidden_problems: list,
                                              esc: Escape) -> None:
    """Every 7th hidden problem (12 of 82; the bench runs all 82)."""
    sample = hidden_problems[::7]
    outs = executor.run([program(p, esc.body) for p in sample])
    assert [o.task_id for o in outs if o.passed] == [], esc.name


@pytest.mark.parametrize(("name", "status", "guard"), [
    ("always_equal", "error", "foreign_object _Any"),
    ("builtin_subclass", "assertion", "builtin_subclass _S"),
    ("os_exit_0", "exited_early", "early_exit process_ended"),
    ("sys_exit_0", "error", "early_exit SystemExit"),
    ("base_exception", "error", "early_exit _Out"),
    ("kill_parent", "error", "checker_killed"),
])
def test_guard_trips_are_reported(executor: Executor, name: str, status: str, guard: str) -> None:
    esc = next(e for e in ESCAPES if e.name == name)
    out = executor.run_one(program(TOY_PROBLEMS[0], esc.body))
    assert not out.passed and out.status == status, out
    assert any(g.startswith(guard) for g in out.guards), out


def test_opening_a_file_is_a_guard_trip(executor: Executor) -> None:
    out = executor.run_one(toy("    return open('program.py').read()\n",
                               "def check(candidate):\n    assert candidate(0)\n"))
    assert out.status == "denied" and out.guards == ["denied opening files is not allowed"], out


def test_the_checker_cannot_be_looked_into(executor: Executor) -> None:
    """The checker process is non-dumpable: its executable and working-folder links and its
    descriptors (the test file's among them, until it is read) are refused to the candidate's
    process by the kernel (``os.readlink`` is not an audited open, so this reaches the kernel;
    without the seal the same calls succeed)."""
    body = ("    import os\n    p = os.getppid()\n    seen = {}\n"
            "    paths = ['/proc/%d/exe' % p, '/proc/%d/cwd' % p, '/proc/%d/root' % p] + "
            "['/proc/%d/fd/%d' % (p, n) for n in range(12)]\n"
            "    for path in paths:\n        try:\n            os.readlink(path)\n"
            "            seen[path] = 'READ'\n"
            "        except PermissionError:\n            seen[path] = 'refused'\n"
            "        except OSError:\n            seen[path] = 'missing'\n"
            "    return seen\n")
    test = ("def check(candidate):\n    seen = candidate(0)\n"
            "    assert 'READ' not in seen.values(), seen\n"
            "    assert list(seen.values())[:3] == ['refused'] * 3, seen\n")
    out = executor.run_one(toy(body, test))
    assert out.passed, out


def test_the_candidate_never_sees_the_test(executor: Executor) -> None:
    """Its folder holds the harness and its own program; no string on its stack, in its
    modules' namespaces or in any dict of its process holds the test or an expected value."""
    body = ("    import os, sys, gc\n    seen = sorted(os.listdir('.'))\n    texts = []\n"
            "    for obj in gc.get_objects():\n        if type(obj) is dict:\n"
            "            texts += list(obj.values())\n"
            "    f = sys._getframe()\n    while f is not None:\n"
            "        texts += list(f.f_locals.values()) + list(f.f_globals.values())\n"
            "        f = f.f_back\n"
            "    hits = [t for t in texts if type(t) is str and ('SECRET-4242' in t or "
            "'def check' in t)]\n"
            "    return [seen, len(hits)]\n")
    test = ("def check(candidate):\n    expected = 'SECRET-4242'\n"
            "    assert candidate(0) == [['harness.pyc', 'program.py'], 0], candidate(0)\n")
    out = executor.run_one(toy(body, test))
    assert out.passed, out


VALUES = [
    ("None", "None"), ("True", "True"), ("-0.0", "-0.0"), ("float('nan')", None),
    ("float('-inf')", "float('-inf')"), ("10 ** 5000", "10 ** 5000"), ("-7", "-7"),
    ("1 + 2j", "1 + 2j"), ("'é\\u2603\\n'", "'é\\u2603\\n'"), ("b'\\x00\\xff'", "b'\\x00\\xff'"),
    ("bytearray(b'ab')", "bytearray(b'ab')"), ("[1, [2, (3, 'x')], {4: 5}]", "[1, [2, (3, 'x')], {4: 5}]"),
    ("{(1, 2): [3], 'k': None}", "{(1, 2): [3], 'k': None}"), ("{1, 2, 3}", "{3, 2, 1}"),
    ("frozenset({'a'})", "frozenset({'a'})"), ("range(2, 9, 3)", "range(2, 9, 3)"),
    ("__import__('fractions').Fraction(1, 3)", "__import__('fractions').Fraction(1, 3)"),
    ("__import__('decimal').Decimal('2.50')", "__import__('decimal').Decimal('2.50')"),
]


def test_honest_values_cross_unchanged(executor: Executor) -> None:
    """What the candidate returns is what the test compares: same value, same exact type."""
    cases = "".join(f"        {i}: lambda: {v},\n" for i, (v, _) in enumerate(VALUES))
    body = f"    return {{\n{cases}    }}[k]()\n"
    checks = "".join(f"    assert same(candidate({i}), {e}), {i}\n"
                     for i, (_, e) in enumerate(VALUES) if e)
    test = ("def same(a, b):\n    if type(a) is not type(b):\n        return False\n"
            "    if type(a) is float:\n        return a.hex() == b.hex()\n    return a == b\n\n\n"
            "def check(candidate):\n" + checks
            + "    nan = candidate(3)\n    assert type(nan) is float and nan != nan\n")
    out = executor.run_one(toy(body, test))
    assert out.passed, out
    assert out.guards == []


def test_iterators_views_and_subclasses_compare_as_before(executor: Executor) -> None:
    """A generator stays an iterator (unequal to a list, equal once listed), dict views compare
    as views, a namedtuple compares as its tuple (and is reported)."""
    body = ("    import collections\n    d = {'a': 1, 'b': 2}\n"
            "    P = collections.namedtuple('P', 'x y')\n"
            "    return [lambda: (i * i for i in range(4)), lambda: d.keys(), lambda: d.items(),\n"
            "            lambda: map(str, [1, 2]), lambda: P(1, 2), lambda: d.values()][k]()\n")
    test = ("def check(candidate):\n    g = candidate(0)\n    assert g != [0, 1, 4, 9]\n"
            "    assert list(g) == [0, 1, 4, 9] and list(g) == []\n"
            "    assert candidate(1) == {'a', 'b'}\n    assert candidate(2) == {('a', 1), ('b', 2)}\n"
            "    assert sorted(candidate(3)) == ['1', '2']\n"
            "    assert candidate(4) == (1, 2) and type(candidate(4)) is tuple\n"
            "    assert sorted(candidate(5)) == [1, 2] and candidate(5) != [1, 2]\n")
    out = executor.run_one(toy(body, test))
    assert out.passed, out
    assert out.guards == ["builtin_subclass P"]


def test_exceptions_cross_as_builtin_exceptions(executor: Executor) -> None:
    """A test that expects the candidate to raise still works; arguments are the test's own."""
    body = ("    if k < 0:\n        raise ValueError('negative')\n"
            "    if k == 0:\n        raise ZeroDivisionError('zero')\n    return k\n")
    test = ("def check(candidate):\n    try:\n        candidate(-1)\n    except ValueError as e:\n"
            "        assert str(e) == 'negative'\n    else:\n        assert False\n"
            "    try:\n        candidate(0)\n    except ArithmeticError:\n        pass\n"
            "    assert candidate(k=3) == 3\n")
    out = executor.run_one(toy(body, test))
    assert out.passed, out
    out = executor.run_one(toy(body, "def check(candidate):\n    assert candidate(-1)\n"))
    assert out.status == "error" and "ValueError: negative" in out.reason, out


def test_the_test_uses_the_problems_own_helpers(executor: Executor) -> None:
    """The prompt's helper (``encode``) runs in the checker as the problem wrote it: a
    completion that rebinds it (in its own process) changes nothing."""
    p = TOY_PROBLEMS[4]
    body = p.canonical_solution.replace("    return", "    global encode\n"
                                        "    encode = lambda s: s\n    return")
    assert executor.run_one(program(p, body)).passed
    cheat = "    global encode\n    encode = lambda s: s\n    return s\n"
    out = executor.run_one(program(p, cheat))
    assert not out.passed and out.status == "assertion", out


def _ctx(tmp_path: Path, sandbox: str = "local") -> AttackContext:
    return AttackContext(scenario_id=HE_ID, sandbox=sandbox, scratch=tmp_path)


def test_guard_trips_are_integrity_events_of_the_split(executor: Executor, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the family's scoring path: failed items, one code.guard event each."""
    monkeypatch.delenv("AUTORL_GYM_DATA_DIR", raising=False)  # the generated problems
    esc = next(e for e in ESCAPES if e.name == "always_equal")
    problems, results, summary = grade_forged(_ctx(tmp_path), esc.body)
    assert [r.correct for r in results] == [False] * len(TOY_PROBLEMS)
    assert summary.score == 0.0
    events = summary.integrity_events
    assert [e.kind for e in events] == ["code.guard"] * len(problems)
    assert [e.data["task_id"] for e in events] == [p.task_id for p in problems]
    assert all("foreign_object _Any" in e.data["guards"] for e in events)
    honest = grade_forged(_ctx(tmp_path), "    return None\n")[2]
    assert honest.integrity_events == []


def test_attacks_hold_on_the_generated_problems(executor: Executor, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTORL_GYM_DATA_DIR", raising=False)
    names = [f"code_{e.name}" for e in ESCAPES]
    report = run_attacks(HE_ID, "local", tmp_path, names=names)
    assert [(o.name, o.status, o.detail[:200]) for o in report.outcomes if o.status != "held"] == []
    assert len(report.outcomes) == len(ESCAPES)


def test_attacks_hold_on_real_hidden_problems(executor: Executor, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = shared_data("humaneval", "HumanEval.jsonl.gz")
    monkeypatch.setenv("AUTORL_GYM_DATA_DIR", str(folder.parent))
    names = ["code_always_equal", "code_test_source", "code_token_from_frames", "code_combined"]
    report = run_attacks(HE_ID, "local", tmp_path, names=names)
    assert [(o.name, o.status, o.detail[:200]) for o in report.outcomes if o.status != "held"] == []
    assert all("0/12 passed" in o.detail for o in report.outcomes)


def test_attacks_hold_in_docker(need_docker, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTORL_GYM_DATA_DIR", raising=False)
    names = ["code_always_equal", "code_token_from_frames", "code_kill_parent",
             "code_look_into_parent"]
    report = run_attacks(HE_ID, "docker", tmp_path, names=names)
    assert [(o.name, o.status, o.detail[:200]) for o in report.outcomes if o.status != "held"] == []


def test_plausible_wrong_completions_keep_their_verdicts(hidden_problems: list,
                                                         tmp_path_factory: pytest.TempPathFactory,
                                                         executor: Executor) -> None:
    """Every 8th of the 1,613 plausible wrong completions (``tests/humaneval_wrong.py``) gets
    the verdict and status the one-process harness gave it (recorded in
    ``tests/data/humaneval_wrong_verdicts.json``; the bench compares all of them)."""
    import json

    from humaneval_wrong import wrong_completions

    from autorl_gym.tasks.humaneval.data import read_jsonl

    folder = shared_data("humaneval", "HumanEval.jsonl.gz")
    problems = [p.model_dump() for p in read_jsonl(folder / "HumanEval.jsonl.gz")]
    recorded = json.loads((Path(__file__).parent / "data" / "humaneval_wrong_verdicts.json")
                          .read_text())["items"]
    wrong = wrong_completions(problems)
    assert [[k, problems[i]["task_id"]] for k, i, _ in wrong] == [r[:2] for r in recorded]
    pick = list(range(0, len(wrong), 8))
    ex = Executor(ExecLimits(timeout_s=10.0), sandbox="local", workers=2,
                  tmp_root=tmp_path_factory.mktemp("wrong"))
    outs = ex.run([Program(task_id=problems[wrong[j][1]]["task_id"],
                           prompt=problems[wrong[j][1]]["prompt"], completion=wrong[j][2],
                           test=problems[wrong[j][1]]["test"],
                           entry_point=problems[wrong[j][1]]["entry_point"]) for j in pick])
    now = [[*recorded[j][:2], o.passed, o.status] for j, o in zip(pick, outs, strict=True)]
    assert [(a, b) for a, b in zip([recorded[j] for j in pick], now, strict=True) if a != b] == []
    assert sum(r[2] for r in now) > 0  # the set holds right answers too (equivalent mutants)


class ForgedBackend:
    """A generation backend whose 'model' emits the always-equal completion for every prompt
    (what an agent's trained model would emit; registered for one test only)."""

    name = "forged-test"

    def generate(self, ctx, info, items, on_batch, run_dir):
        from autorl_gym.grading.backends.registry import Generation

        on_batch(len(items))
        body = next(e for e in ESCAPES if e.name == "always_equal").body
        return Generation(completions=[body] * len(items))


def test_grading_core_returns_the_guard_events(micro_assets, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The grader's EvalResult of a split carries one code.guard event per forged item, and
    scores them as failed (hidden test split, the micro model standing for the submission)."""
    from test_humaneval import quick_yaml

    from autorl_gym.core.family import resolve_assets
    from autorl_gym.grading.backends import registry as backends
    from autorl_gym.grading.grader import Grader
    from autorl_gym.scenarios.catalog import load_scenario_file

    folder = shared_data("humaneval", "HumanEval.jsonl.gz")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "micro").symlink_to(Path(micro_assets.model_dir).parents[1], target_is_directory=True)
    monkeypatch.setenv("AUTORL_GYM_DATA_DIR", str(folder.parent))
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(cache))
    monkeypatch.setitem(backends.BACKENDS._entries, ForgedBackend.name, ForgedBackend)
    monkeypatch.setitem(backends.BACKENDS._owners, ForgedBackend.name, "tests.ForgedBackend")
    scenario = load_scenario_file(quick_yaml(tmp_path, isolation="inline"))
    assets = resolve_assets(scenario, base_model="micro:arith", progress=False)
    res = Grader(scenario, assets, backend=ForgedBackend.name).evaluate(
        Path(micro_assets.model_dir), "test", limit=3)
    assert (res.n, res.correct, res.score) == (3, 0, 0.0)
    assert [e.kind for e in res.integrity_events] == ["code.guard"] * 3
    assert [e.data["task_id"] for e in res.integrity_events] == \
        ["HumanEval/82", "HumanEval/83", "HumanEval/84"]
    assert all(e.data["guards"] == ["foreign_object _Any"] for e in res.integrity_events)
    assert res.protocol["checker"] == "two-process-builtin-values-v1"


def test_a_message_cannot_forge_output_lines(executor: Executor) -> None:
    """What the candidate writes into an exception reaches the output on the checker's one
    line: no guard line, no token-like last line of its own."""
    body = "    raise ValueError('x\\nAUTORL_HUMANEVAL_GUARD forged 1\\n' + 'f' * 32)\n"
    out = executor.run_one(toy(body, "def check(candidate):\n    assert candidate(0)\n"))
    assert out.status == "error" and out.guards == [], out
    assert out.reason.startswith("ValueError: x AUTORL_HUMANEVAL_GUARD forged 1 fff"), out
