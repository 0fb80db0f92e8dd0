"""The script the executor runs in every HumanEval sandbox (copied there as ``harness.py``).

Standard library only; it never imports this package. Run as ``python -I -S -B harness.py`` in
a folder holding ``program.py`` (prompt + completion + test + ``check(entry_point)``) and
``token`` (a random per-run value). It reads and deletes the token, installs an audit hook
(:pep:`578`), executes the program, and writes the token on its own last line only if the
program ran to the end. The hook (never removed; it cannot be from Python) refuses, while the
program runs:

* starting processes (``os.fork``, ``os.posix_spawn``, ``os.system``, ``os.exec*``,
  ``subprocess``, and importing ``ctypes`` or ``_posixsubprocess``), so a fork bomb fails at its
  first fork instead of racing the sandbox's process watchdog;
* opening any file but the standard library's own modules: not ``program.py`` (whose source
  holds the test), not ``/proc/self/mem``, nothing the sandbox shows of the system.

The sandbox around it is the security boundary; the hook turns hostile programs into fast, clear
failures. What it does not stop: introspection (``sys._getframe``, ``gc``, a function's
``__code__``; the standard library itself uses them, ``typing.TypeVar`` for one), so a
completion written to read the test function's constants, or the token from the harness's
frame, could still pass without solving the problem, as in every in-process HumanEval harness.
Completions are kept with the results, where such code is plain to see.
"""

import os
import sys
from contextlib import suppress

TOKEN_FILE = "token"
PROGRAM_FILE = "program.py"
SYNTAX_EXIT = 3
SYNTAX_MARK = "AUTORL_HUMANEVAL_SYNTAX_ERROR"
DENIED_MARK = "AUTORL_HUMANEVAL_DENIED"

PROCESS_EVENTS = frozenset({"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system",
                            "os.exec", "subprocess.Popen"})
PROCESS_MODULES = frozenset({"ctypes", "_ctypes", "_posixsubprocess"})


def _make_guard(stdlib: tuple[str, ...]):
    """The audit hook. Builtins it uses are bound now, so a program that rebinds them later
    cannot change what the hook does."""

    def guard(event, args, _str=str, _perm=PermissionError, _mark=DENIED_MARK,
              _stdlib=tuple(d + os.sep for d in stdlib), _proc=PROCESS_EVENTS,
              _mods=PROCESS_MODULES):
        if event in _proc:
            raise _perm(_mark + ": process creation is not allowed (" + event + ")")
        if event == "import":
            name = args[0]
            if type(name) is _str and name.partition(".")[0] in _mods:
                raise _perm(_mark + ": process creation is not allowed (import " + name + ")")
        elif event == "open":
            path = args[0]
            if not (type(path) is _str and path.startswith(_stdlib) and ".." not in path):
                raise _perm(_mark + ": opening files is not allowed")

    return guard


def _describe(exc, _type=type, _str=str):
    """``Type: message`` and the program line where it was raised (no traceback module: that
    would run code the program may have changed)."""
    tb, line = exc.__traceback__, 0
    while tb is not None:
        line = tb.tb_lineno
        tb = tb.tb_next
    return _type(exc).__name__ + ": " + _str(exc) + " (line " + _str(line) + ")"


def main():
    write, exit_now = os.write, os._exit
    flushes = (sys.stdout.flush, sys.stderr.flush)  # the streams' own methods, bound now

    def finish(fd, text, code):
        for flush in flushes:
            with suppress(BaseException):  # a closed or broken stream
                flush()
        write(fd, ("\n" + text + "\n").encode("utf-8", "replace"))
        exit_now(code)

    with open(TOKEN_FILE, encoding="utf-8") as fh:
        token = fh.read().strip()
    os.remove(TOKEN_FILE)
    with open(PROGRAM_FILE, encoding="utf-8") as fh:
        source = fh.read()
    stdlib = os.path.dirname(os.__file__)  # as imports name it, and with links resolved
    sys.addaudithook(_make_guard((stdlib, os.path.realpath(stdlib))))
    try:
        code = compile(source, PROGRAM_FILE, "exec")
    except (SyntaxError, ValueError) as e:
        finish(1, SYNTAX_MARK + " " + type(e).__name__ + ": " + str(e), SYNTAX_EXIT)
    try:
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except BaseException as e:  # noqa: BLE001 - whatever the program raised is its failure
        try:
            message = _describe(e)
        except BaseException:  # noqa: BLE001 - an exception whose str() raises
            message = "the program raised an exception that cannot be described"
        finish(2, message, 1)
    finish(1, token, 0)


if __name__ == "__main__":
    main()
