"""Checks of ``exec``: exit codes and output, the workspace, the environment, and the limits
(output truncation, timeout, memory, processes) with the whole process tree killed."""

from __future__ import annotations

import os
import re
import time

from autorl_gym.sandbox.conformance.base import (
    Layout,
    conformance_check,
    ensure,
    refused,
    unique_sleep,
    wait_no_survivors,
)


@conformance_check()
def exit_codes_and_streams(c: Layout) -> None:
    """exit codes, stdout and stderr merged in order, invalid UTF-8 replaced, bad timeouts refused"""
    for cmd, code in (("true", 0), ("false", 1), ("exit 3", 3), ("kill -9 $$", 137)):
        r = c.exec(cmd)
        ensure(r.exit_code == code, f"{cmd!r}: exit {r.exit_code}, wanted {code}: {r.output}")
        ensure(not r.timed_out and r.killed_reason is None, f"{cmd!r} marked killed: {r}")
    r = c.exec("echo to-stdout; echo to-stderr >&2; echo again")
    ensure(r.output == "to-stdout\nto-stderr\nagain\n", f"merged output: {r.output!r}")
    for bad in (0, -1):
        refused(lambda bad=bad: c.sandbox.exec("true", timeout_s=bad), f"timeout {bad}")
    r = c.exec("no_such_command_xyz")
    ensure(r.exit_code == 127 and "not found" in r.output, f"missing command: {r}")
    r = c.exec("printf 'ok \\377 end'")
    ensure(r.output == "ok \ufffd end", f"invalid UTF-8 not replaced: {r.output!r}")
    ensure(r.duration_s >= 0 and not r.truncated, "duration / truncated")


@conformance_check()
def workspace_writable(c: Layout) -> None:
    """commands create, change and delete files in the workspace and output/; the host sees it"""
    r = c.exec("mkdir -p code/sub && echo one > code/sub/f.txt && echo two >> code/sub/f.txt && "
               "echo model > output/weights.bin && touch gone.txt && rm gone.txt && "
               "mv code/sub/f.txt code/g.txt && ln -s g.txt code/link && echo ok")
    ensure(r.exit_code == 0 and r.output == "ok\n", f"writing the workspace failed: {r}")
    ensure((c.ws / "code/g.txt").read_text() == "one\ntwo\n", "the host does not see the write")
    ensure((c.ws / "output/weights.bin").read_text() == "model\n", "output/ not writable")
    ensure(not (c.ws / "gone.txt").exists() and not (c.ws / "code/sub/f.txt").exists(),
           "a delete or move did not reach the host")
    ensure(os.readlink(c.ws / "code/link") == "g.txt", "a symlink made inside is wrong on the host")
    (c.ws / "from_host.txt").write_text("host")
    r = c.exec("cat from_host.txt")
    ensure(r.output == "host", f"a host write is not seen by the next command: {r.output!r}")


@conformance_check()
def environment(c: Layout) -> None:
    """spec variables, offline and OpenMP defaults set, HOME writable, python on PATH, no host variable"""
    leak_key, leak_value = "AUTORL_CONFORMANCE_HOST_ONLY", "host-only-value-9d1c"
    os.environ[leak_key] = leak_value
    try:
        r = c.exec(
            'echo "$AUTORL_TEST_VAR|$HF_HUB_OFFLINE|$TRANSFORMERS_OFFLINE|$HF_DATASETS_OFFLINE'
            '|$PYTHONUNBUFFERED|$LANG|$OMP_WAIT_POLICY"; mkdir -p "$HOME/sub" && echo home-ok; '
            "command -v python; env"
        )
    finally:
        del os.environ[leak_key]
    lines = r.output.splitlines()
    ensure(lines and lines[0] == "hello from the spec|1|1|1|1|C.UTF-8|PASSIVE", f"env: {r.output!r}")
    ensure(len(lines) > 1 and lines[1] == "home-ok", f"HOME not writable: {r.output!r}")
    ensure(len(lines) > 2 and lines[2].endswith("/python"), f"python not on PATH: {r.output!r}")
    ensure(leak_key not in r.output and leak_value not in r.output,
           f"the host's environment leaked into the command: {leak_key}")
    r = c.exec("python -c 'import sys; print(sys.prefix)'")
    ensure(r.exit_code == 0, f"python does not start: {r.output}")


@conformance_check(output_limit_chars=1000)
def huge_output_truncated(c: Layout) -> None:
    """output past the limit keeps its head and tail, with an exact omission marker"""
    r = c.exec("seq 1 200000; echo the-end >&2")
    full = "".join(f"{i}\n" for i in range(1, 200001)) + "the-end\n"
    ensure(r.exit_code == 0, f"exit {r.exit_code}")
    ensure(r.truncated, "not marked truncated")
    ensure(len(r.output) <= 1000, f"output is {len(r.output)} chars > limit 1000")
    ensure(r.output.startswith("1\n2\n3\n"), f"head lost: {r.output[:50]!r}")
    ensure(r.output.endswith("199999\n200000\nthe-end\n"), f"tail lost: {r.output[-50:]!r}")
    m = re.search(r"\[\.\.\. (\d+) characters omitted \.\.\.\]\n", r.output)
    ensure(m is not None, f"no omission marker in {r.output!r}")
    assert m is not None
    ensure(int(m.group(1)) == r.omitted_chars, "marker and omitted_chars disagree")
    head, tail = r.output[: m.start()], r.output[m.end() :]
    ensure(head.endswith("\n"), "the marker is not on a line of its own")
    if not (full.startswith(head) and full[len(head) :].endswith(tail)):
        head = head[:-1]  # the newline before the marker was added, not printed
    ensure(full.startswith(head) and full.endswith(tail), "head/tail are not the real output")
    kept = len(head) + len(tail)
    ensure(kept + r.omitted_chars == len(full), f"kept {kept} + omitted {r.omitted_chars}")


@conformance_check()
def timeout_kills_tree(c: Layout) -> None:
    """a timed-out command is killed with every process it started, setsid ones included"""
    tag = unique_sleep()
    ref = c.reference_s()
    start = time.monotonic()
    r = c.exec(f"echo begin; sleep {tag} & sleep {tag} & setsid sleep {tag} & wait", timeout_s=1)
    took = time.monotonic() - start
    ensure(r.timed_out, f"not timed_out: {r}")
    ensure(r.exit_code is None, f"exit code {r.exit_code} for a killed command")
    ensure(r.killed_reason and "timed out" in r.killed_reason, f"reason {r.killed_reason!r}")
    ensure("begin" in r.output, f"output before the timeout lost: {r.output!r}")
    # the sleeps last over 1000 s: a kill at the timeout takes the timeout and a few commands' time
    ensure(0.9 <= took < 5 + 10 * ref, f"took {took:.2f} s for a 1 s timeout (a no-op command: "
                                       f"{ref:.2f} s)")
    left = wait_no_survivors(tag)
    ensure(not left, f"processes survived the timeout: {left}")


@conformance_check()
def background_processes_end_with_command(c: Layout) -> None:
    """background processes do not outlive their command, nor make exec wait for them"""
    tag = unique_sleep()
    ref = c.reference_s()
    start = time.monotonic()
    r = c.exec(f"sleep {tag} & setsid sleep {tag} & echo started")
    took = time.monotonic() - start
    ensure(r.exit_code == 0 and r.output == "started\n", f"{r}")
    # the sleeps last over 1000 s; returning is a few commands' time (a no-op's, measured now)
    ensure(took < 5 + 10 * ref, f"waited for background processes ({took:.1f} s; a no-op "
                                f"command: {ref:.2f} s)")
    left = wait_no_survivors(tag)
    ensure(not left, f"background processes outlived the command: {left}")


@conformance_check(memory_mb=150)
def memory_limit(c: Layout) -> None:
    """a command tree over memory_mb is killed, with the reason"""
    tag = unique_sleep()
    r = c.exec(
        f"sleep {tag} & python -c \"import time; x = b'x' * (400 << 20); time.sleep(60)\"",
        timeout_s=30,
    )
    ensure(r.exit_code is None and not r.timed_out, f"not killed for memory: {r}")
    reason = r.killed_reason or ""
    # a watchdog's sample ("412 MB > 150 MB") or the engine's OOM kill ("at the 150 MB limit")
    # noticed before the 30 s timeout (the reason says so); how soon is the bench's figure
    ensure(re.match(r"memory limit exceeded: .*\b150 MB\b", reason), f"reason {reason!r}")
    ensure(not wait_no_survivors(tag), "processes survived the memory kill")


@conformance_check(max_processes=20)
def process_limit(c: Layout) -> None:
    """a command tree over max_processes is killed, with the reason; one under it is not"""
    tag = unique_sleep()
    r = c.exec(f"for i in $(seq 60); do sleep {tag} & done; wait", timeout_s=30)
    ensure(r.exit_code is None and not r.timed_out, f"not killed for processes: {r}")
    reason = r.killed_reason or ""
    # a watchdog's count ("21 processes > 20") or the engine's refused fork ("at the limit of 20")
    ensure(re.match(r"process limit exceeded: \d+ processes\b.*\b20\b", reason), f"{reason!r}")
    left = wait_no_survivors(tag)
    ensure(not left, f"{len(left)} processes survived the process-limit kill")
    r = c.exec("for i in $(seq 5); do sleep 0.3 & done; wait; echo fine")
    ensure(r.exit_code == 0 and r.output == "fine\n", f"under the limit was killed: {r}")
