"""The script the executor runs in every HumanEval sandbox (copied there compiled, as
``harness.pyc``, made once per interpreter by the executor).

Standard library only; it never imports this package. Run as ``python -I -S -B harness.pyc`` in
a folder holding ``program.py`` (the problem's prompt + the completion: the candidate's code
only) and ``test.txt`` (the prompt, the test, the entry point and a random per-run token).

Two processes, so that nothing the candidate's code does can reach the test or its verdict:

* The harness opens ``test.txt`` and unlinks it, then forks. The **candidate** process (the
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
  proxy sends the arguments to the child and rebuilds the result with :func:`loads`, which makes
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
the builtin exception of the same name (so a test that expects one still works; not
``StopIteration``, which would end a ``map`` or ``all`` in the test early: a ``RuntimeError``), and
a non-``Exception`` one as :class:`CandidateAborted`.

Guard trips are printed by the checker as ``AUTORL_HUMANEVAL_GUARD <kind> <detail>`` lines (the
executor turns them into ``code.guard`` integrity events): ``foreign_object`` (a result of a type
that is not a builtin), ``builtin_subclass`` (a result of a subclass of a builtin type, compared
as its builtin value), ``early_exit`` (the candidate's process ended or raised a
``BaseException`` that is not an ``Exception``), ``denied`` (the audit hook refused a file or a
process).
"""

import builtins
import os
import sys
from contextlib import suppress

TEST_FILE = "test.txt"
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
# A value is written as text: a tag, then its payload. Numbers are hexadecimal, each ended by
# ";"; strings are "<length>;<characters>"; containers "<count>;" then their items.
#   N None   T True   F False   i int   f float (float.hex)   c complex   s str   y bytes
#   Y bytearray   l list   t tuple   S set   Z frozenset   d dict (key, value, ...)   r range
#   I iterator (its items)   K V D dict keys / values / items views   q Fraction   m Decimal
#   o an object of another type (its type's name only)   ! a subclass of a builtin type: its
#   name, then its builtin value
MAX_DEPTH = 200
_SCALARS = ((int, "i"), (float, "f"), (complex, "c"), (str, "s"), (bytes, "y"),
            (bytearray, "Y"), (list, "l"), (tuple, "t"), (set, "S"), (frozenset, "Z"),
            (dict, "d"))
_VIEWS = {"dict_keys": "K", "dict_values": "V", "dict_items": "D"}


def _name(text, out):
    text = str(text)
    out.append(format(len(text), "d") + ";" + text)


def _enc(v, out, depth):
    if depth > MAX_DEPTH:
        raise RecursionError("the value is nested too deeply")
    depth += 1
    if v is None:
        out.append("N")
        return
    if v is True or v is False:
        out.append("T" if v else "F")
        return
    t = type(v)
    for base, tag in _SCALARS:
        if isinstance(v, base):
            if t is not base:
                out.append("!")
                _name(t.__name__, out)
            out.append(tag)
            if tag == "i":
                out.append(format(int.__index__(v), "x") + ";")
            elif tag == "f":
                out.append(float.hex(v) + ";")
            elif tag == "c":
                out.append(float.hex(v.real) + ";" + float.hex(v.imag) + ";")
            elif tag == "s":
                _name(str.__str__(v), out)
            elif tag in "yY":
                out.append(base.hex(v) + ";")
            elif tag == "d":
                items = list(dict.items(v))
                out.append(format(len(items), "d") + ";")
                for key, value in items:
                    _enc(key, out, depth)
                    _enc(value, out, depth)
            else:
                items = list(base.__iter__(v))
                out.append(format(len(items), "d") + ";")
                for x in items:
                    _enc(x, out, depth)
            return
    if t is range:
        out.append("r" + format(v.start, "x") + ";" + format(v.stop, "x") + ";"
                   + format(v.step, "x") + ";")
        return
    if t.__name__ in _VIEWS and t.__module__ == "builtins":
        items = list(v)
        out.append(_VIEWS[t.__name__] + format(len(items), "d") + ";")
        for x in items:
            if t.__name__ == "dict_items":
                _enc(x[0], out, depth)
                _enc(x[1], out, depth)
            else:
                _enc(x, out, depth)
        return
    if t.__name__ == "Fraction" and t.__module__ == "fractions":
        out.append("q" + format(v.numerator, "x") + ";" + format(v.denominator, "x") + ";")
        return
    if t.__name__ == "Decimal" and t.__module__ in ("decimal", "_decimal", "_pydecimal"):
        out.append("m")
        _name(str(v), out)
        return
    if hasattr(t, "__next__") and hasattr(t, "__iter__"):  # generators, map, filter, ...
        items = []
        for x in v:
            if len(items) >= MAX_ITEMS:
                break
            items.append(x)
        out.append("I" + format(len(items), "d") + ";")
        for x in items:
            _enc(x, out, depth)
        return
    out.append("o")
    _name(t.__name__, out)


def dumps(v):
    """``v`` as text: builtin values by value (a subclass of a builtin type as its builtin
    value, marked), an object of any other type as its type's name only."""
    out = []
    _enc(v, out, 0)
    return "".join(out)


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


class _Reader:
    """Parses :func:`dumps`'s text into values of exact builtin types, built here."""

    def __init__(self, text, guards):
        self.text, self.pos, self.guards = text, 0, guards

    def field(self):
        end = self.text.index(";", self.pos)  # ValueError when missing
        out = self.text[self.pos:end]
        self.pos = end + 1
        return out

    def count(self):
        n = int(self.field(), 10)
        if n < 0 or n > len(self.text) - self.pos:
            raise ValueError("malformed value from the candidate")
        return n

    def chars(self):
        n = self.count()
        out = self.text[self.pos:self.pos + n]
        self.pos += n
        return out

    def value(self, depth=0):
        if depth > MAX_DEPTH:
            raise RecursionError("the value is nested too deeply")
        depth += 1
        tag = self.text[self.pos]
        self.pos += 1
        if tag == "!":
            self.guards.add("builtin_subclass " + _short(self.chars()))
            return self.value(depth)
        if tag in "NTF":
            return {"N": None, "T": True, "F": False}[tag]
        if tag == "i":
            return int(self.field(), 16)
        if tag == "f":
            return float.fromhex(self.field())
        if tag == "c":
            return complex(float.fromhex(self.field()), float.fromhex(self.field()))
        if tag == "s":
            return self.chars()
        if tag in "yY":
            return (bytes if tag == "y" else bytearray).fromhex(self.field())
        if tag == "r":
            return range(int(self.field(), 16), int(self.field(), 16), int(self.field(), 16))
        if tag == "q":
            import fractions

            return fractions.Fraction(int(self.field(), 16), int(self.field(), 16))
        if tag == "m":
            import decimal

            return decimal.Decimal(self.chars())
        if tag == "o":
            name = _short(self.chars())
            self.guards.add("foreign_object " + name)
            return ForeignObject(name)
        n = self.count()
        if tag in "dD":
            pairs = [(self.value(depth), self.value(depth)) for _ in range(n)]
            return dict(pairs) if tag == "d" else dict(pairs).items()
        items = [self.value(depth) for _ in range(n)]
        if tag == "K":
            return dict.fromkeys(items).keys()
        if tag == "V":
            return dict(enumerate(items)).values()
        if tag == "I":
            return iter(items)
        kinds = {"l": list, "t": tuple, "S": set, "Z": frozenset}
        if tag not in kinds:
            raise ValueError("malformed value from the candidate")
        return kinds[tag](items)


def loads(text, guards):
    """The checker's own value for :func:`dumps`'s text; guard trips are added to ``guards``."""
    reader = _Reader(text, guards)
    value = reader.value()
    if reader.pos != len(text):
        raise ValueError("malformed value from the candidate")
    return value


# -- the channel ---------------------------------------------------------------------------------
def send_text(fd, text, _write=os.write):
    """One message: its length (8 bytes), then :func:`dumps`'s text in UTF-8."""
    data = text.encode("utf-8", "surrogatepass")
    data = len(data).to_bytes(8, "big") + data
    view = memoryview(data)
    while view:
        view = view[_write(fd, view):]


def send(fd, value):
    send_text(fd, dumps(value))


def _read_exact(fd, n):
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(fd, guards):
    """The next message (a tuple), or None when the other side is gone."""
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
    message = loads(body.decode("utf-8", "surrogatepass"), guards)
    if type(message) is not tuple or not message:
        raise ValueError("malformed message from the candidate")
    return message


def _exc_record(e):
    tb, line = e.__traceback__, 0
    while tb is not None:
        line = tb.tb_lineno
        tb = tb.tb_next
    try:
        message = str(e)[:2000]
    except BaseException:  # noqa: BLE001 - an exception whose str() raises
        message = "(the exception cannot be described)"
    return ("raise", type(e).__name__[:100], message, isinstance(e, Exception), line)


# -- the candidate's process ---------------------------------------------------------------------
def candidate_main(requests, replies, send=send, send_text=send_text, recv=recv, dumps=dumps,
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
            send(replies, ("syntax", type(e).__name__ + ": " + str(e)))
            exit_now(0)
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        del source
        try:
            exec(code, namespace)
        except BaseException as e:  # noqa: BLE001 - reported to the checker
            send(replies, _exc_record(e))
            exit_now(0)
        send(replies, ("ready",))
        while True:
            msg = recv(requests, set())
            if msg is None:
                exit_now(0)
            try:
                _, name, args, kwargs = msg
                if name not in namespace:
                    raise NameError("name '" + name + "' is not defined")
                text = dumps(("return", namespace[name](*args, **kwargs)))
            except BaseException as e:  # noqa: BLE001 - reported to the checker
                text = dumps(_exc_record(e))
            send_text(replies, text)
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
    if cls in (StopIteration, StopAsyncIteration):  # would end the test's map() or all() early
        cls = None
    if is_exception is True and isinstance(cls, type) and issubclass(cls, Exception):
        with suppress(BaseException):
            return cls(message)
    if is_exception is not True:
        guards.add("early_exit " + name)
        return CandidateAborted(name + ": " + message + " (raised by the candidate, line "
                                + str(line) + ")")
    return RuntimeError(name + ": " + message + " (line " + str(line) + ")")


def _seal():
    """Make this process non-dumpable; raise if that cannot be done. (``_ctypes`` directly:
    ``ctypes`` itself costs several milliseconds more to import, per problem.)"""
    import _ctypes

    class CInt(_ctypes._SimpleCData):
        _type_ = "i"

    class CFunc(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = CInt

    class Libc:
        _handle = _ctypes.dlopen(None, 2)  # the process's own symbols (libc), RTLD_NOW

    prctl = CFunc(("prctl", Libc()))
    if prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 or prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError("prctl(PR_SET_DUMPABLE, 0) failed")


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
        """Guard lines, then ``text`` on one line of its own (a message the candidate wrote
        cannot start a line), then exit."""
        for g in sorted(guards):
            write(1, ("\n" + GUARD_MARK + " " + g).encode("utf-8", "replace"))
        line = text.replace("\r", " ").replace("\n", " ")
        write(1, ("\n" + line + "\n").encode("utf-8", "replace"))
        exit_now(code)

    secret = os.open(TEST_FILE, os.O_RDONLY | os.O_CLOEXEC)
    os.unlink(TEST_FILE)
    with open(PROGRAM_FILE, "rb") as fh:  # both processes execute the prompt: import once
        if b"typing" in fh.read():
            import typing  # noqa: F401
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
    prompt, test, entry_point, token = loads(b"".join(chunks).decode("utf-8", "surrogatepass"),
                                             set())
    del chunks

    def ended():
        with suppress(BaseException):
            os.kill(pid, 9)
        guards.add("early_exit process_ended")
        return CandidateExited(EXITED_MARK + ": the candidate's process ended before check() "
                               "returned")

    def candidate(*args, **kwargs):
        send(req_w, ("call", entry_point, args, kwargs))
        reply = recv(rep_r, guards)
        if reply is None:
            raise ended()
        if reply[0] == "return" and len(reply) == 2:
            return reply[1]
        if reply[0] == "raise" and len(reply) == 5:
            raise _rebuild(reply, guards)
        raise ValueError("malformed reply from the candidate")

    candidate.__name__ = candidate.__qualname__ = str(entry_point)
    try:
        first = recv(rep_r, guards)
        if first is None:
            raise ended()
        if len(first) == 2 and first[0] == "syntax":
            finish(SYNTAX_MARK + " " + str(first[1])[:300].replace("\n", " "), SYNTAX_EXIT,
                   guards)
        if len(first) == 5 and first[0] == "raise":
            raise _rebuild(first, guards)
        if first != ("ready",):
            raise ValueError("malformed first message from the candidate")
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        exec(compile(prompt, "prompt.py", "exec"), namespace)
        namespace[entry_point] = candidate  # as in the one-file program: the name is the candidate
        exec(compile(test, "test.py", "exec"), namespace)
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
