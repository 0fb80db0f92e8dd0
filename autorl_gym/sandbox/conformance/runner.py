"""Running the checks on a backend: one check (pytest-friendly: it raises) or all of them (a
:class:`ConformanceReport`)."""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from autorl_gym.core.sandbox import Sandbox, SandboxSpec, SandboxUnavailable
from autorl_gym.sandbox.conformance.base import CHECKS, ConformanceFailure, Layout, SandboxFactory
from autorl_gym.sandbox.registry import check_sandbox_kind, make_sandbox, sandbox_backends

Backend = str | SandboxFactory


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class CheckResult(BaseModel):
    name: str
    description: str
    isolation: bool
    status: CheckStatus
    why: str | None = Field(None, description="the failure (or skip) in words")
    detail: str | None = Field(None, description="the traceback of an unexpected error")
    seconds: float = 0.0


class ConformanceReport(BaseModel):
    kind: str = Field(description="the registered kind, or the factory's name")
    backend: str = Field(description="the class (or factory) checked")
    isolated: bool
    unavailable: str | None = Field(None, description="why the backend cannot run here")
    checks: list[CheckResult] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.unavailable is None and all(c.status != CheckStatus.FAILED for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == CheckStatus.FAILED]


def _quiet_factory(kind: str) -> SandboxFactory:
    """make_sandbox without the warning "none" gives (loudly, by design) for every sandbox."""
    tools_log = logging.getLogger("autorl_gym.sandbox")

    def factory(spec: SandboxSpec) -> Sandbox:
        level = tools_log.level
        tools_log.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return make_sandbox(kind, spec)
        finally:
            tools_log.setLevel(level)

    return factory


def _resolve(backend: Backend, isolated: bool | None) -> tuple[str, str, bool, SandboxFactory]:
    if isinstance(backend, str):
        info = sandbox_backends()[check_sandbox_kind(backend)]
        return backend, info.qualname, info.isolated if isolated is None else isolated, \
            _quiet_factory(backend)
    name = getattr(backend, "__qualname__", repr(backend))
    return name, f"{getattr(backend, '__module__', '?')}.{name}", \
        True if isolated is None else isolated, backend


def applicable_checks(isolated: bool) -> list[str]:
    """The checks a backend must pass: all of them, less the isolation checks when it is not
    isolated."""
    return [n for n, c in CHECKS.items() if isolated or not c.isolation]


def conformance_cases(kinds: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """``(kind, check)`` for every registered kind (or those given) and every check it must pass:
    ``@pytest.mark.parametrize(("kind", "check"), conformance_cases())``."""
    backends = sandbox_backends()
    return [(k, n) for k in (kinds if kinds is not None else backends)
            for n in applicable_checks(backends[check_sandbox_kind(k)].isolated)]


def run_check(backend: Backend, name: str, scratch: Path) -> None:
    """Run one check in a fresh folder under ``scratch``. Raises :class:`ConformanceFailure`
    when the backend breaks the rule, SandboxUnavailable when it cannot run here."""
    if name not in CHECKS:
        raise KeyError(f"unknown conformance check {name!r}; checks: {', '.join(CHECKS)}")
    check = CHECKS[name]
    _, _, _, factory = _resolve(backend, None)
    root = Path(scratch) / name
    root.mkdir(parents=True, exist_ok=False)
    layout = Layout(factory, root.resolve(), check)
    try:
        check.fn(layout)
    finally:
        layout.close()


def _result(name: str, scratch: Path, backend: Backend) -> CheckResult:
    check = CHECKS[name]
    t0 = time.monotonic()
    status, why, detail = CheckStatus.PASSED, None, None
    try:
        run_check(backend, name, scratch)
    except SandboxUnavailable:
        raise
    except ConformanceFailure as e:
        status, why = CheckStatus.FAILED, str(e)
    except Exception as e:  # a crash is a failure of the backend, not of the run
        status, why, detail = CheckStatus.FAILED, f"{e.__class__.__name__}: {e}", traceback.format_exc()
    return CheckResult(name=name, description=check.description, isolation=check.isolation,
                       status=status, why=why, detail=detail, seconds=time.monotonic() - t0)


def run_conformance(backend: Backend, scratch: Path | None = None, *, isolated: bool | None = None,
                    checks: Iterable[str] | None = None,
                    on_result: Callable[[CheckResult], None] | None = None) -> ConformanceReport:
    """Every check (or those named) on a registered kind or a ``SandboxSpec -> Sandbox``
    factory. ``isolated`` defaults to the kind's registration (True for a factory): the
    isolation checks are skipped, with the reason, for a backend that is not isolated."""
    kind, qualname, iso, factory = _resolve(backend, isolated)
    names = list(checks) if checks is not None else list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise KeyError(f"unknown conformance checks {unknown}; checks: {', '.join(CHECKS)}")
    report = ConformanceReport(kind=kind, backend=qualname, isolated=iso)
    with tempfile.TemporaryDirectory(prefix="autorl-conformance-") as tmp:
        root = Path(scratch) if scratch is not None else Path(tmp)
        for name in names:
            check = CHECKS[name]
            if check.isolation and not iso:
                res = CheckResult(name=name, description=check.description, isolation=True,
                                  status=CheckStatus.SKIPPED,
                                  why=f"{kind} is not isolated: commands run on the host")
            else:
                try:
                    res = _result(name, root, factory)
                except SandboxUnavailable as e:
                    report.unavailable = str(e)
                    return report
            report.checks.append(res)
            if on_result is not None:
                on_result(res)
    return report
