"""The conformance suite every sandbox backend must pass.

Like inspect_ai's sandbox ``self_check``: :func:`run_conformance` takes a factory (a function
``SandboxSpec -> Sandbox``) and a scratch folder and runs every check, returning
``{check name: None or the failure message}``. ``CHECKS`` lists the checks so a pytest module can
parametrize over them (see ``tests/test_sandbox.py``). Each check builds its own sandbox in its
own folder:

    <tmp>/ws/        the workspace (read-write)
    <tmp>/data/      mounted read-only (holds data.txt)
    <tmp>/hidden/    never mounted (holds secret.txt)

Only behaviour every backend guarantees is checked here; what needs real isolation (the
``none`` backend has none) lives in ``tests/test_sandbox_isolation.py``.
"""

from __future__ import annotations

import re
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil

from autorl_gym.tools.sandbox import (
    ExecResult,
    Mount,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxSpec,
)

SandboxFactory = Callable[[SandboxSpec], Sandbox]

SECRET = "hidden-secret-7f3a"


class ConformanceFailure(AssertionError):
    pass


def _check(cond: object, message: str) -> None:
    if not cond:
        raise ConformanceFailure(message)


def _refused(fn: Callable[[], object], what: str, match: str | None = None) -> str:
    try:
        fn()
    except SandboxError as e:
        if match is not None:
            _check(re.search(match, str(e)), f"{what}: message {str(e)!r} lacks {match!r}")
        return str(e)
    raise ConformanceFailure(f"{what} was not refused")


class Ctx:
    """One check's folders and its sandbox."""

    def __init__(self, factory: SandboxFactory, root: Path, **limits: object) -> None:
        self.root = root
        self.ws = root / "ws"
        self.data = root / "data"
        self.hidden = root / "hidden"
        for d in (self.ws, self.data, self.hidden):
            d.mkdir(parents=True, exist_ok=True)
        (self.data / "data.txt").write_text("mounted data\n")
        (self.hidden / "secret.txt").write_text(SECRET + "\n")
        self.spec = SandboxSpec(
            workspace=self.ws,
            mounts=[Mount(source=self.data, read_only=True)],
            env={"AUTORL_TEST_VAR": "hello from the spec"},
            limits=SandboxLimits(**limits),  # type: ignore[arg-type]
        )
        self.sandbox = factory(self.spec)

    def exec(self, command: str, timeout_s: float | None = 30) -> ExecResult:
        return self.sandbox.exec(command, timeout_s=timeout_s)


def _survivors(tag: str) -> list[str]:
    """Live (non-zombie) processes whose command line contains ``tag``."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.info["cmdline"] or [])
        except psutil.Error:
            continue
        if tag in cmd:
            found.append(f"{p.pid}: {cmd}")
    return found


def _wait_no_survivors(tag: str, within_s: float = 2.0) -> list[str]:
    end = time.monotonic() + within_s
    while True:
        left = _survivors(tag)
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


def _unique_sleep() -> str:
    """A sleep duration no other process uses, so psutil can find exactly ours."""
    return f"{1000 + uuid.uuid4().int % 9000}.{uuid.uuid4().int % 10**6:06d}"


# --- the checks --------------------------------------------------------------------------------


def check_write_read_list(c: Ctx) -> None:
    n = c.sandbox.write_file("a/b/notes.txt", "héllo\nworld\n")
    _check(n == len("héllo\nworld\n".encode()), f"write_file returned {n}, not the byte count")
    _check((c.ws / "a/b/notes.txt").read_text() == "héllo\nworld\n", "file not on the host")
    _check(c.sandbox.read_file("a/b/notes.txt") == "héllo\nworld\n", "relative read differs")
    absolute = str(c.ws / "a/b/notes.txt")
    _check(c.sandbox.read_file(absolute) == "héllo\nworld\n", "absolute read differs")
    _check(c.sandbox.read_file("a/b/notes.txt", offset=1, limit=4) == "éllo", "offset/limit")
    _check(c.sandbox.read_file("./a/../a/b/notes.txt") == "héllo\nworld\n", "./.. inside ws")
    c.sandbox.write_file(absolute, "replaced")
    _check(c.sandbox.read_file("a/b/notes.txt") == "replaced", "overwrite by absolute path")
    listing = c.sandbox.list_files(".")
    for part in ("a/", "b/", "notes.txt (8 B)"):
        _check(part in listing, f"listing lacks {part!r}:\n{listing}")
    _check("notes.txt" in c.sandbox.list_files("a/b"), "listing of a subfolder")
    _check(c.sandbox.resolve("a/b/notes.txt") == (c.ws / "a/b/notes.txt").resolve(), "resolve")


def check_exec_sees_tool_files(c: Ctx) -> None:
    c.sandbox.write_file("from_tool.txt", "tool wrote this")
    r = c.exec("pwd; cat from_tool.txt; echo; echo 'cmd wrote this' > from_cmd.txt")
    _check(r.exit_code == 0, f"exit {r.exit_code}: {r.output}")
    lines = r.output.splitlines()
    _check(Path(lines[0]).resolve() == c.ws.resolve(), f"cwd is {lines[0]}, not the workspace")
    _check("tool wrote this" in r.output, f"command cannot read the tool's file: {r.output}")
    _check(c.sandbox.read_file("from_cmd.txt") == "cmd wrote this\n", "tool cannot read cmd file")


def check_mount_readable_not_writable(c: Ctx) -> None:
    _check(c.sandbox.read_file(str(c.data / "data.txt")) == "mounted data\n", "read mount")
    _check("data.txt" in c.sandbox.list_files(str(c.data)), "list mount")
    r = c.exec(f"cat {c.data}/data.txt")
    _check(r.output == "mounted data\n", f"command cannot read the mount: {r.output!r}")
    _refused(
        lambda: c.sandbox.write_file(str(c.data / "new.txt"), "x"), "write into ro mount", "read"
    )
    _refused(lambda: c.sandbox.write_file(str(c.data / "data.txt"), "x"), "overwrite ro mount")
    _check((c.data / "data.txt").read_text() == "mounted data\n", "mount file changed")
    _check(not (c.data / "new.txt").exists(), "file created in the read-only mount")


def check_path_escapes_refused(c: Ctx) -> None:
    for bad in ("../hidden/secret.txt", "a/../../hidden/secret.txt", str(c.hidden / "secret.txt"),
                "/etc/passwd", "/"):
        _refused(lambda bad=bad: c.sandbox.read_file(bad), f"read_file({bad!r})", "escapes")
        _refused(lambda bad=bad: c.sandbox.list_files(bad), f"list_files({bad!r})", "escapes")
        _refused(lambda bad=bad: c.sandbox.resolve(bad), f"resolve({bad!r})", "escapes")
    _refused(lambda: c.sandbox.write_file("../escaped.txt", "x"), "write ../", "escapes")
    _refused(lambda: c.sandbox.write_file("/tmp/escaped.txt", "x"), "write /tmp", "escapes")
    _check(not (c.root / "escaped.txt").exists(), "a file was written outside the workspace")
    # a symlink pointing out of the workspace, to a file and to a folder
    (c.ws / "out_link").symlink_to(c.hidden / "secret.txt")
    (c.ws / "out_dir").symlink_to(c.hidden)
    _refused(lambda: c.sandbox.read_file("out_link"), "read through a symlink out", "escapes")
    _refused(lambda: c.sandbox.read_file("out_dir/secret.txt"), "read via dir symlink")
    _refused(lambda: c.sandbox.write_file("out_link", "x"), "write through a symlink out")
    _refused(lambda: c.sandbox.write_file("out_dir/new.txt", "x"), "write via dir symlink")
    _refused(lambda: c.sandbox.list_files("out_dir"), "list via dir symlink")
    _check((c.hidden / "secret.txt").read_text() == SECRET + "\n", "hidden file changed")
    _check(not (c.hidden / "new.txt").exists(), "file created through a symlink")
    # the listing shows symlinks as links, without following them
    listing = c.sandbox.list_files(".")
    _check(f"out_dir -> {c.hidden}" in listing, f"symlink not shown as a link:\n{listing}")
    _check("secret.txt (" not in listing, f"listing followed a symlink out:\n{listing}")
    # symlinks that stay inside are fine
    c.sandbox.write_file("real.txt", "inside")
    (c.ws / "in_link").symlink_to("real.txt")
    (c.ws / "data_link").symlink_to(c.data / "data.txt")
    _check(c.sandbox.read_file("in_link") == "inside", "symlink inside the workspace")
    _check(c.sandbox.read_file("data_link") == "mounted data\n", "symlink into a mount")
    _refused(lambda: c.sandbox.write_file("data_link", "x"), "write via link into ro mount")


def check_missing_and_bad_paths(c: Ctx) -> None:
    _refused(lambda: c.sandbox.read_file("nope.txt"), "read of a missing file", "no such")
    _refused(lambda: c.sandbox.list_files("nope"), "list of a missing folder", "no such")
    (c.ws / "dir").mkdir()
    _refused(lambda: c.sandbox.read_file("dir"), "read of a folder", "directory")
    _refused(lambda: c.sandbox.write_file("dir", "x"), "write onto a folder", "directory")
    (c.ws / "blob.bin").write_bytes(bytes(range(256)) * 4)
    _refused(lambda: c.sandbox.read_file("blob.bin"), "read of a binary file", "binary")
    _check("blob.bin (1.0 KB)" in c.sandbox.list_files("."), "binary file size in listing")


def check_file_size_limits(c: Ctx) -> None:
    _refused(lambda: c.sandbox.write_file("big.txt", "x" * 1001), "oversized write", "1001 bytes")
    _check(not (c.ws / "big.txt").exists(), "oversized write left a file")
    _check(c.sandbox.write_file("ok.txt", "x" * 1000) == 1000, "write at the limit")
    (c.ws / "huge.txt").write_text("0123456789" * 500)
    _refused(lambda: c.sandbox.read_file("huge.txt"), "read over max_file_bytes", "limit")
    part = c.sandbox.read_file("huge.txt", offset=4993, limit=7)
    _check(part == "3456789", f"windowed read of a large file gave {part!r}")


check_file_size_limits.limits = {"max_file_bytes": 1000}  # type: ignore[attr-defined]


def check_exit_codes_and_streams(c: Ctx) -> None:
    for cmd, code in (("true", 0), ("false", 1), ("exit 3", 3), ("kill -9 $$", 137)):
        r = c.exec(cmd)
        _check(r.exit_code == code, f"{cmd!r}: exit {r.exit_code}, wanted {code}: {r.output}")
        _check(not r.timed_out and r.killed_reason is None, f"{cmd!r} marked killed: {r}")
    r = c.exec("echo to-stdout; echo to-stderr >&2; echo again")
    _check(r.output == "to-stdout\nto-stderr\nagain\n", f"merged output: {r.output!r}")
    for bad in (0, -1):
        _refused(lambda bad=bad: c.sandbox.exec("true", timeout_s=bad), f"timeout {bad}")
    r = c.exec("no_such_command_xyz")
    _check(r.exit_code == 127 and "not found" in r.output, f"missing command: {r}")
    r = c.exec("printf 'ok \\377 end'")
    _check(r.output == "ok \ufffd end", f"invalid UTF-8 not replaced: {r.output!r}")
    _check(r.duration_s >= 0 and not r.truncated, "duration / truncated")


def check_huge_output_truncated(c: Ctx) -> None:
    r = c.exec("seq 1 200000; echo the-end >&2")
    full = "".join(f"{i}\n" for i in range(1, 200001)) + "the-end\n"
    _check(r.exit_code == 0, f"exit {r.exit_code}")
    _check(r.truncated, "not marked truncated")
    _check(len(r.output) <= 1000, f"output is {len(r.output)} chars > limit 1000")
    _check(r.output.startswith("1\n2\n3\n"), f"head lost: {r.output[:50]!r}")
    _check(r.output.endswith("199999\n200000\nthe-end\n"), f"tail lost: {r.output[-50:]!r}")
    m = re.search(r"\[\.\.\. (\d+) characters omitted \.\.\.\]\n", r.output)
    _check(m is not None, f"no omission marker in {r.output!r}")
    assert m is not None
    _check(int(m.group(1)) == r.omitted_chars, "marker and omitted_chars disagree")
    head, tail = r.output[: m.start()], r.output[m.end() :]
    _check(head.endswith("\n"), "the marker is not on a line of its own")
    if not (full.startswith(head) and full[len(head) :].endswith(tail)):
        head = head[:-1]  # the newline before the marker was added, not printed
    _check(full.startswith(head) and full.endswith(tail), "head/tail are not the real output")
    kept = len(head) + len(tail)
    _check(kept + r.omitted_chars == len(full), f"kept {kept} + omitted {r.omitted_chars}")


check_huge_output_truncated.limits = {"output_limit_chars": 1000}  # type: ignore[attr-defined]


def check_timeout_kills_tree(c: Ctx) -> None:
    tag = _unique_sleep()
    start = time.monotonic()
    r = c.exec(f"echo begin; sleep {tag} & sleep {tag} & setsid sleep {tag} & wait", timeout_s=1)
    took = time.monotonic() - start
    _check(r.timed_out, f"not timed_out: {r}")
    _check(r.exit_code is None, f"exit code {r.exit_code} for a killed command")
    _check(r.killed_reason and "timed out" in r.killed_reason, f"reason {r.killed_reason!r}")
    _check("begin" in r.output, f"output before the timeout lost: {r.output!r}")
    _check(0.9 <= took < 5, f"took {took:.2f} s for a 1 s timeout")
    left = _wait_no_survivors(tag)
    _check(not left, f"processes survived the timeout: {left}")


def check_background_processes_end_with_command(c: Ctx) -> None:
    tag = _unique_sleep()
    start = time.monotonic()
    r = c.exec(f"sleep {tag} & setsid sleep {tag} & echo started")
    _check(r.exit_code == 0 and r.output == "started\n", f"{r}")
    _check(time.monotonic() - start < 5, "waited for background processes")
    left = _wait_no_survivors(tag)
    _check(not left, f"background processes outlived the command: {left}")


def check_memory_limit(c: Ctx) -> None:
    tag = _unique_sleep()
    r = c.exec(
        f"sleep {tag} & python -c \"import time; x = b'x' * (400 << 20); time.sleep(60)\"",
        timeout_s=30,
    )
    _check(r.exit_code is None and not r.timed_out, f"not killed for memory: {r}")
    reason = r.killed_reason or ""
    # a watchdog's sample ("412 MB > 150 MB") or the engine's OOM kill ("at the 150 MB limit")
    _check(re.match(r"memory limit exceeded: .*\b150 MB\b", reason), f"reason {reason!r}")
    _check(r.duration_s < 15, f"took {r.duration_s:.1f} s to notice")
    _check(not _wait_no_survivors(tag), "processes survived the memory kill")


check_memory_limit.limits = {"memory_mb": 150}  # type: ignore[attr-defined]


def check_process_limit(c: Ctx) -> None:
    tag = _unique_sleep()
    r = c.exec(f"for i in $(seq 60); do sleep {tag} & done; wait", timeout_s=30)
    _check(r.exit_code is None and not r.timed_out, f"not killed for processes: {r}")
    reason = r.killed_reason or ""
    # a watchdog's count ("21 processes > 20") or the engine's refused fork ("at the limit of 20")
    _check(re.match(r"process limit exceeded: \d+ processes\b.*\b20\b", reason), f"{reason!r}")
    left = _wait_no_survivors(tag)
    _check(not left, f"{len(left)} processes survived the process-limit kill")
    r = c.exec("for i in $(seq 5); do sleep 0.3 & done; wait; echo fine")
    _check(r.exit_code == 0 and r.output == "fine\n", f"under the limit was killed: {r}")


check_process_limit.limits = {"max_processes": 20}  # type: ignore[attr-defined]


def check_fork_loop_stopped(c: Ctx) -> None:
    """A loop that forks without end is stopped at the process limit and reported as such."""
    tag = _unique_sleep()
    start = time.monotonic()
    r = c.exec(f"while true; do sleep {tag} & done", timeout_s=60)
    took = time.monotonic() - start
    _check(r.exit_code is None and not r.timed_out, f"fork loop not stopped by the limit: {r}")
    reason = r.killed_reason or ""
    _check(reason.startswith("process limit exceeded") and re.search(r"\b20\b", reason),
           f"reason {reason!r}")
    _check(took < 20, f"took {took:.1f} s to stop a fork loop")
    left = _wait_no_survivors(tag, within_s=5)
    _check(not left, f"{len(left)} processes of the fork loop survived")


check_fork_loop_stopped.limits = {"max_processes": 20}  # type: ignore[attr-defined]


def check_growing_allocation_killed(c: Ctx) -> None:
    """Memory allocated bit by bit past the limit: the command is killed, for memory."""
    r = c.exec(
        "python -c \"import time\nx = []\nwhile True:\n    x.append(b'x' * (8 << 20))\n"
        "    time.sleep(0.01)\"",
        timeout_s=60,
    )
    _check(r.exit_code is None and not r.timed_out, f"not killed for memory: {r}")
    reason = r.killed_reason or ""
    _check(re.match(r"memory limit exceeded: .*\b150 MB\b", reason), f"reason {reason!r}")
    _check(r.duration_s < 20, f"took {r.duration_s:.1f} s to notice")


check_growing_allocation_killed.limits = {"memory_mb": 150}  # type: ignore[attr-defined]


def check_env(c: Ctx) -> None:
    r = c.exec(
        'echo "$AUTORL_TEST_VAR|$HF_HUB_OFFLINE|$TRANSFORMERS_OFFLINE|$HF_DATASETS_OFFLINE'
        '|$PYTHONUNBUFFERED|$LANG"; mkdir -p "$HOME/sub" && echo home-ok; command -v python'
    )
    lines = r.output.splitlines()
    _check(lines[0] == "hello from the spec|1|1|1|1|C.UTF-8", f"env: {r.output!r}")
    _check(lines[1] == "home-ok", f"HOME not writable: {r.output!r}")
    _check(len(lines) > 2 and lines[2].endswith("/python"), f"python not on PATH: {r.output!r}")
    r = c.exec("python -c 'import sys; print(sys.prefix)'")
    _check(r.exit_code == 0, f"python does not start: {r.output}")


CHECKS: dict[str, Callable[[Ctx], None]] = {
    name[len("check_") :]: fn
    for name, fn in sorted(globals().items())
    if name.startswith("check_") and callable(fn) and name != "check_"
}


def run_check(factory: SandboxFactory, name: str, scratch: Path) -> None:
    """Run one check in a fresh folder under ``scratch``; raises ConformanceFailure."""
    fn = CHECKS[name]
    root = scratch / name
    root.mkdir(parents=True, exist_ok=False)
    ctx = Ctx(factory, root, **getattr(fn, "limits", {}))
    try:
        fn(ctx)
    finally:
        ctx.sandbox.close()


def run_conformance(factory: SandboxFactory, scratch: Path) -> dict[str, str | None]:
    """Every check: ``{name: None if it passed, else the failure with its traceback}``."""
    results: dict[str, str | None] = {}
    for name in CHECKS:
        try:
            run_check(factory, name, scratch)
            results[name] = None
        except Exception:
            results[name] = traceback.format_exc()
    return results


__all__ = ["CHECKS", "ConformanceFailure", "SandboxFactory", "run_check", "run_conformance"]
