"""The conformance suite every sandbox backend must pass, shipped with the package so that a
backend written outside this repository can run it (like inspect_ai's sandbox ``self_check``).

From Python::

    from autorl_gym.sandbox.conformance import run_conformance
    report = run_conformance("docker")          # a registered kind, or a SandboxSpec -> Sandbox
    assert report.passed, report.failures

From the shell: ``autorl-gym sandbox check KIND`` (a table; exit code 1 when a check fails).
From pytest, one test per check::

    @pytest.mark.parametrize(("kind", "check"), conformance_cases(["docker"]))
    def test_conformance(kind, check, tmp_path):
        run_check(kind, check, tmp_path)       # raises ConformanceFailure with the reason

The checks (``CHECKS``): the file tools and their path policy; commands in the workspace, their
exit codes, output (head and tail kept past the limit) and environment; the timeout, memory
and process limits, each killing the whole process tree (also a fork loop stopped at the process
limit, and memory allocated bit by bit past the limit). An isolated backend also proves, from
inside: the hidden splits cannot be read, listed or found by any path; model/ and data/ are
read-only; no network but the bridged unix sockets; the package and the grader's cache are not
visible. Those isolation checks are skipped for a backend registered ``isolated=False``.
"""

from __future__ import annotations

from autorl_gym.sandbox.conformance import commands, files, isolation, limits  # noqa: F401 - registers
from autorl_gym.sandbox.conformance.base import (
    CHECKS,
    Check,
    ConformanceFailure,
    Layout,
    SandboxFactory,
    conformance_check,
)
from autorl_gym.sandbox.conformance.runner import (
    CheckResult,
    CheckStatus,
    ConformanceReport,
    applicable_checks,
    conformance_cases,
    run_check,
    run_conformance,
)

__all__ = [
    "CHECKS",
    "Check",
    "CheckResult",
    "CheckStatus",
    "ConformanceFailure",
    "ConformanceReport",
    "Layout",
    "SandboxFactory",
    "applicable_checks",
    "conformance_cases",
    "conformance_check",
    "run_check",
    "run_conformance",
]
