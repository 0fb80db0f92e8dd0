"""The script the executor runs in every HumanEval sandbox (copied there as ``harness.py``).

Standard library only; it never imports this package. Run as ``python -I -S -B harness.py`` in
a folder holding ``program.py`` (the problem's prompt + the completion: the candidate's code
only) and ``test.json`` (the prompt, the test, the entry point and a random per-run token).

Two processes, so that nothing the candidate's code does can reach the test or its verdict:

* The harness opens ``test.json`` and unlinks it, then forks. The **candidate** process (the
  child) closes that descriptor at once, points its stdin, stdout and stderr at ``/dev/null`` and
  waits until the parent is sealed. Then it installs an audit hook (:pep:`578`, never removed)
  that refuses starting processes and opening any file but the standard library's, executes
  ``program.py`` and serves calls: each call's arguments arrive serialised, its result goes back
  serialised (:func:`encode`). It never sees the test, the expected values or the token.
* The **checker** process (the parent) makes itself non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``:
  no ``/proc/<pid>/mem``, ``fd``, ``environ`` or ptrace for a process without
  ``CAP_SYS_PTRACE``, which no sandbox grants), lets the child go, and only then reads the test.
  It executes the prompt (the problem's own helper functions: ``poly``, ``encode_cyclic``) and
  the test in a namespace of its own, and calls ``check`` with a proxy for the entry point. The
  proxy sends the arguments to the child and rebuilds the result with :func:`decode`, which makes
  values of exact builtin types only (``None``, ``bool``, ``int``, ``float``, ``complex``,
  ``str``, ``bytes``, lists, tuples, dicts, sets, ranges, iterators over decoded items;
  ``fractions.Fraction`` and ``decimal.Decimal``); an object of any other type comes back as a
  :class:`ForeignObject`, which refuses every comparison and operation. The comparisons the test
  makes therefore run on the checker's own values, with its own builtins, in a process the
  candidate's code never ran in. Only the checker writes the harness's stdout: the token, on its
  own last line, after ``check`` returned.

What this closes: objects that compare equal to everything (or builtin subclasses that do),
patched builtins, ``math`` or ``__import__``, rebinding the test's helpers, trace functions,
``atexit`` hooks, reading the test or the token from the stack, the source or ``/proc``, early
exits (``os._exit``, ``SystemExit``, ``KeyboardInterrupt``, any ``BaseException``: the candidate's
process ending is a failure), fake success lines (the candidate cannot write the harness's
output), and killing the checker (a failure). A candidate exception is rebuilt in the checker as
the builtin exception of the same name (so a test that expects one still works) and a
non-``Exception`` one as :class:`CandidateAborted`.

Guard trips are printed by the checker as ``AUTORL_HUMANEVAL_GUARD <kind> <detail>`` lines (the
executor turns them into ``code.guard`` integrity events): ``foreign_object`` (a result of a type
that is not a builtin), ``builtin_subclass`` (a result of a subclass of a builtin type, compared
as its builtin value), ``early_exit`` (the candidate's process ended or raised a
``BaseException`` that is not an ``Exception``), ``denied`` (the audit hook refused a file or a
process).
"""

import builtins
import json
import os
import sys
from contextlib import suppress

TEST_FILE = "test.json"
PROGRAM_FILE = "program.py"
SYNTAX_EXIT = 3
HARNESS_EXIT = 4
SYNTAX_MARK = "AUTORL_HUMANEVAL_SYNTAX_ERROR"
DENIED_MARK = "AUTORL_HUMANEVAL_DENIED"
EXITED_MARK = "AUTORL_HUMANEVAL_EXITED"
GUARD_MARK = "AUTORL_HUMANEVAL_GUARD"
HARNESS_MARK = "AUTORL_HUMANEVAL_HARNESS"
MAX_MESSAGE = 64 << 20  # bytes of one serialised call or result
MAX_ITEMS = 1 << 20  # items taken from an iterator the candidate returned

PROCESS_EVENTS = frozenset({"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system",
                            "os.exec", "subprocess.Popen"})
PROCESS_MODULES = frozenset({"ctypes", "_ctypes", "_posixsubprocess"})
PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4


def _make_guard(stdlib):
    """The candidate's audit hook. Builtins it uses are bound now, so a program that rebinds
    them later cannot change what the hook does."""

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


# -- values across the boundary ------------------------------------------------------------------
def encode(v, depth=0):
    """A JSON-able form of ``v``: builtin values by value (a subclass of a builtin type as its
    builtin value, marked), anything else as its type's name only."""
    if depth > 200:
        raise RecursionError("the value is nested too deeply")
    d = depth + 1
    if v is None:
        return ["N"]
    if isinstance(v, bool):
        return ["b", 1 if v else 0] + ([] if type(v) is bool else [type(v).__name__])
    kinds = ((int, "i", lambda x: int.__index__(x).__format__("x")), (float, "f", float.hex),
             (complex, "c", lambda x: [float.hex(x.real), float.hex(x.imag)]),
             (str, "s", str.__str__), (bytes, "y", bytes.hex), (bytearray, "Y", bytearray.hex))
    for typ, tag, conv in kinds:
        if isinstance(v, typ):
            return [tag, conv(v)] + ([] if type(v) is typ else [type(v).__name__])
    seqs = ((list, "l"), (tuple, "t"), (set, "S"), (frozenset, "F"))
    for typ, tag in seqs:
        if isinstance(v, typ):
            items = [encode(x, d) for x in typ.__iter__(v)]
            return [tag, items] + ([] if type(v) is typ else [type(v).__name__])
    if isinstance(v, dict):
        pairs = [[encode(k, d), encode(x, d)] for k, x in dict.items(v)]
        return ["d", pairs] + ([] if type(v) is dict else [type(v).__name__])
    if type(v) is range:
        return ["r", [format(v.start, "x"), format(v.stop, "x"), format(v.step, "x")]]
    tname = type(v).__name__
    if tname in ("dict_keys", "dict_values", "dict_items"):
        return [{"dict_keys": "K", "dict_values": "V", "dict_items": "D"}[tname],
                [encode(x, d) for x in v]]
    if tname in ("Fraction", "Decimal") and type(v).__module__ in ("fractions", "decimal",
                                                                   "_pydecimal"):
        return ["q", [format(v.numerator, "x"), format(v.denominator, "x")]] \
            if tname == "Fraction" else ["m", str(v)]
    if hasattr(type(v), "__next__") and hasattr(type(v), "__iter__"):  # generators, map, ...
        items = []
        for x in v:
            if len(items) >= MAX_ITEMS:
                break
            items.append(encode(x, d))
        return ["I", items]
    return ["o", tname]


class ForeignObject:
    """What an object of a non-builtin type becomes on the checker's side: it takes part in no
    comparison, truth test, hash or operation (each raises ``TypeError``)."""

    __slots__ = ("type_name",)

    def __init__(self, type_name):
        object.__setattr__(self, "type_name", type_name)

    def _refuse(self, *args, **kwargs):
        raise TypeError("the candidate returned an object of type " + self.type_name
                        + ", not a value of a builtin type: it is not compared")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __hash__ = _refuse
    __len__ = __iter__ = __contains__ = __getitem__ = __call__ = __abs__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = _refuse
    __float__ = __int__ = __index__ = __round__ = __neg__ = __format__ = _refuse

    def __repr__(self):
        return "<" + self.type_name + " object made by the candidate>"


def _short(text, limit=80):
    """One printable line of at most ``limit`` characters (for names the candidate chose)."""
    keep = "".join(c if c.isprintable() else "?" for c in str(text)[:limit]).strip()
    return keep or "?"


def decode(x, guards, depth=0):
    """The checker's own value for an encoded one: exact builtin types, built here."""
    if depth > 200:
        raise RecursionError("the value is nested too deeply")
    if type(x) is not list or not x or type(x[0]) is not str:
        raise ValueError("malformed value from the candidate")
    d = depth + 1
    tag = x[0]
    if len(x) == 3 and type(x[2]) is str:
        guards.add("builtin_subclass " + _short(x[2]))
    if tag == "N":
        return None
    if tag == "b":
        return x[1] == 1
    if tag == "o":
        guards.add("foreign_object " + _short(x[1]))
        return ForeignObject(_short(x[1]))
    if tag == "K":
        return dict.fromkeys(decode(v, guards, d) for v in x[1]).keys()
    if tag == "V":
        return dict(enumerate(decode(v, guards, d) for v in x[1])).values()
    if tag == "D":
        return dict(decode(v, guards, d) for v in x[1]).items()
    if tag == "I":
        return iter([decode(v, guards, d) for v in x[1]])
    body = x[1]
    if tag == "i":
        return int(_text(body), 16)
    if tag == "f":
        return float.fromhex(_text(body))
    if tag == "c":
        return complex(float.fromhex(_text(body[0])), float.fromhex(_text(body[1])))
    if tag == "s":
        return _text(body)
    if tag in ("y", "Y"):
        return (bytes if tag == "y" else bytearray).fromhex(_text(body))
    if tag == "r":
        return range(*(int(_text(b), 16) for b in body))
    if tag == "q":
        import fractions

        return fractions.Fraction(int(_text(body[0]), 16), int(_text(body[1]), 16))
    if tag == "m":
        import decimal

        return decimal.Decimal(_text(body))
    if type(body) is not list:
        raise ValueError("malformed value from the candidate")
    if tag == "d":
        return {decode(k, guards, d): decode(v, guards, d) for k, v in body}
    items = [decode(v, guards, d) for v in body]
    kinds = {"l": list, "t": tuple, "S": set, "F": frozenset}
    if tag not in kinds:
        raise ValueError("malformed value from the candidate")
    return kinds[tag](items)


def _text(v):
    if type(v) is not str:
        raise ValueError("malformed value from the candidate")
    return v


# -- the channel ---------------------------------------------------------------------------------
def send(fd, obj, _write=os.write):
    data = json.dumps(obj, ensure_ascii=True, allow_nan=False).encode("ascii")
    data = len(data).to_bytes(8, "big") + data
    view = memoryview(data)
    while view:
        view = view[_write(fd, view):]


def _read_exact(fd, n):
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(fd):
    """The next message, or None when the other side is gone."""
    head = _read_exact(fd, 8)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > MAX_MESSAGE:
        raise ValueError("a message from the candidate is larger than "
                         + str(MAX_MESSAGE >> 20) + " MB")
    body = _read_exact(fd, size)
    if body is None:
        return None
    return json.loads(body.decode("ascii"))


def _exc_record(e):
    tb, line = e.__traceback__, 0
    while tb is not None:
        line = tb.tb_lineno
        tb = tb.tb_next
    try:
        message = str(e)[:2000]
    except BaseException:  # noqa: BLE001 - an exception whose str() raises
        message = "(the exception cannot be described)"
    return ["raise", type(e).__name__[:100], message, isinstance(e, Exception), line]


# -- the candidate's process ---------------------------------------------------------------------
def candidate_main(requests, replies, send=send, recv=recv, encode=encode, decode=decode,
                   _exc_record=_exc_record):
    """Execute the program, then serve calls until the checker closes the channel (the
    helpers are bound now: a program that rebinds the module's names breaks only itself)."""
    exit_now = os._exit
    try:
        with open(PROGRAM_FILE, encoding="utf-8") as fh:
            source = fh.read()
        stdlib = os.path.dirname(os.__file__)  # as imports name it, and with links resolved
        sys.addaudithook(_make_guard((stdlib, os.path.realpath(stdlib))))
        try:
            code = compile(source, PROGRAM_FILE, "exec")
        except (SyntaxError, ValueError) as e:
            send(replies, ["syntax", type(e).__name__ + ": " + str(e)])
            exit_now(0)
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        del source
        try:
            exec(code, namespace)
        except BaseException as e:  # noqa: BLE001 - reported to the checker
            send(replies, _exc_record(e))
            exit_now(0)
        send(replies, ["ready"])
        while True:
            msg = recv(requests)
            if msg is None:
                exit_now(0)
            try:
                if msg[1] not in namespace:
                    raise NameError("name '" + msg[1] + "' is not defined")
                args = decode(msg[2], set())
                kwargs = decode(msg[3], set())
                out = ["return", encode(namespace[msg[1]](*args, **kwargs))]
            except BaseException as e:  # noqa: BLE001 - reported to the checker
                out = _exc_record(e)
            send(replies, out)
    except BaseException:  # noqa: BLE001 - the channel broke: the checker sees the end
        exit_now(1)


# -- the checker's process -----------------------------------------------------------------------
class CandidateAborted(BaseException):
    """The candidate raised a BaseException that is not an Exception (SystemExit, ...)."""


class CandidateExited(BaseException):
    """The candidate's process ended before the test finished."""


def _rebuild(reply, guards):
    """The exception the candidate raised, as the checker raises it."""
    name, message, is_exception, line = reply[1], reply[2], reply[3], reply[4]
    name, message = _short(name, 100), str(message)[:2000]
    if DENIED_MARK in message:
        guards.add("denied " + _short(message.split(DENIED_MARK + ": ", 1)[-1], 60))
    cls = getattr(builtins, name, None)
    if is_exception is True and isinstance(cls, type) and issubclass(cls, Exception):
        with suppress(BaseException):
            return cls(message)
    if is_exception is not True:
        guards.add("early_exit " + name)
        return CandidateAborted(name + ": " + message + " (raised by the candidate, line "
                                + str(line) + ")")
    return RuntimeError(name + ": " + message + " (line " + str(line) + ")")


def _seal():
    """Make this process non-dumpable; raise if that cannot be done."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 or libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _describe(exc):
    """``Type: message`` and the line where it was raised."""
    tb, line = exc.__traceback__, 0
    while tb is not None:
        line = tb.tb_lineno
        tb = tb.tb_next
    return type(exc).__name__ + ": " + str(exc) + " (line " + str(line) + ")"


def main():
    write, exit_now = os.write, os._exit

    def finish(text, code, guards=()):
        for g in sorted(guards):
            write(1, ("\n" + GUARD_MARK + " " + g).encode("utf-8", "replace"))
        write(1, ("\n" + text + "\n").encode("utf-8", "replace"))
        exit_now(code)

    secret = os.open(TEST_FILE, os.O_RDONLY | os.O_CLOEXEC)
    os.unlink(TEST_FILE)
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    go_r, go_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the candidate's process
        try:
            for fd in (secret, req_w, rep_r, go_w):
                os.close(fd)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
            if os.read(go_r, 1) != b"g":
                exit_now(1)
            os.close(go_r)
        except BaseException:  # noqa: BLE001
            exit_now(1)
        candidate_main(req_r, rep_w)
        exit_now(1)

    for fd in (req_r, rep_w, go_r):
        os.close(fd)
    guards = set()
    try:
        _seal()
    except BaseException as e:  # noqa: BLE001 - never run a test the candidate could read
        with suppress(OSError):
            os.kill(pid, 9)
        finish(HARNESS_MARK + ": cannot seal the checker process: " + _describe(e), HARNESS_EXIT)
    write(go_w, b"g")
    os.close(go_w)
    chunks = []
    while True:
        chunk = os.read(secret, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(secret)
    spec = json.loads(b"".join(chunks).decode("utf-8"))
    token, entry_point = spec["token"], spec["entry_point"]
    del chunks

    def ended():
        with suppress(BaseException):
            os.kill(pid, 9)
        guards.add("early_exit process_ended")
        return CandidateExited(EXITED_MARK + ": the candidate's process ended before check() "
                               "returned")

    def exchange(message):
        send(req_w, message)
        reply = recv(rep_r)
        if reply is None or type(reply) is not list or not reply:
            raise ended()
        return reply

    def candidate(*args, **kwargs):
        reply = exchange(["call", entry_point, encode(list(args)), encode(kwargs)])
        if reply[0] == "return" and len(reply) == 2:
            return decode(reply[1], guards)
        if reply[0] == "raise" and len(reply) == 5:
            raise _rebuild(reply, guards)
        raise ValueError("malformed reply from the candidate")

    candidate.__name__ = candidate.__qualname__ = str(entry_point)
    try:
        first = recv(rep_r)
        if first is None:
            raise ended()
        if type(first) is list and len(first) == 2 and first[0] == "syntax":
            finish(SYNTAX_MARK + " " + str(first[1])[:300].replace("\n", " "), SYNTAX_EXIT,
                   guards)
        if type(first) is list and len(first) == 5 and first[0] == "raise":
            raise _rebuild(first, guards)
        if first != ["ready"]:
            raise ValueError("malformed first message from the candidate")
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        exec(compile(spec["prompt"], "prompt.py", "exec"), namespace)
        namespace[entry_point] = candidate  # as in the one-file program: the name is the candidate
        exec(compile(spec["test"], "test.py", "exec"), namespace)
        namespace["check"](candidate)
    except BaseException as e:  # noqa: BLE001 - whatever happened is the candidate's failure
        with suppress(BaseException):
            os.kill(pid, 9)
        try:
            message = _describe(e)
        except BaseException:  # noqa: BLE001 - an exception whose str() raises
            message = "the program raised an exception that cannot be described"
        finish(message, 1, guards)
    with suppress(BaseException):
        os.kill(pid, 9)
    finish(token, 0, guards)


if __name__ == "__main__":
    main()
