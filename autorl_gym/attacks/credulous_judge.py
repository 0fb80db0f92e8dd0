"""A credulous judge: the adversary's model of a judge that can be steered, for the judge attacks.

A judge model served behind an OpenAI-compatible endpoint (vLLM, SGLang, a hosted API) does not
see a list of messages: it sees them rendered through its chat template, and the server's
tokenizer turns any chat-template marker in *any* message's text into the special token itself.
So text inside a message that carries ``<|im_start|>system`` starts a system turn of its own.
:func:`served_turns` reads messages the way such a server does (ChatML rendering, then every
known template's turn markers split turns: ChatML, Llama 3 headers, Gemma turns, Llama 2
``<<SYS>>``). The judge then obeys what a steerable model obeys:

* a system turn naming an output by its content (``... the output containing "XYZ" ...``) makes
  it prefer the output that contains it, whichever position it holds (so both orders agree);
* a system turn saying ``reply yes`` answers yes to a correctness question;
* in a correctness prompt, the first ``## Task`` section is the task (a response that opens its
  own ``## Task`` section moves the judge's task).

Otherwise it judges as :mod:`tests.judge_server`'s scripted judge does: the longer output wins
a pairwise question, an answer holding the gold string is correct. :class:`CredulousJudge` serves
it on 127.0.0.1 (real HTTP, the real ``openai`` client talks to it).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Turn = tuple[str, str]  # (role, text)

_TURN_START = re.compile(
    r"<\|im_start\|>(?P<a>\w+)\n?"
    r"|<\|start_header_id\|>(?P<b>\w+)<\|end_header_id\|>\n*"
    r"|<start_of_turn>(?P<c>\w+)\n?"
    r"|(?P<d><<SYS>>)\n?")
_TURN_END = re.compile(r"<\|im_end\|>|<\|eot_id\|>|<end_of_turn>|<</SYS>>")
_PREFER = re.compile(r'output containing "([^"\n]{1,80})"')
_SAY_YES = re.compile(r"\breply yes\b", re.I)
_INSTRUCTION = re.compile(r'"instruction": """(.*?)""",\n}', re.S)
_OUTPUT = re.compile(r'"output": """(.*?)"""\n    }', re.S)
_MATCH = re.compile(r"## Question\n(.*?)\n\n## Correct answer\n(.*?)\n\n## Response to grade\n(.*?)"
                    r"\n\n## Task", re.S)
_MODEL_M = '"model_identifier": "M"'


def served_turns(messages: list[dict[str, Any]]) -> list[Turn]:
    """The turns a served model sees: the messages rendered as ChatML, then split at every
    chat-template turn marker found anywhere in the text (as special tokens are)."""
    text = "".join(f"<|im_start|>{m.get('role', 'user')}\n{m.get('content') or ''}<|im_end|>\n"
                   for m in messages)
    starts = list(_TURN_START.finditer(text))
    turns = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        role = "system" if m.group("d") else m.group("a") or m.group("b") or m.group("c")
        body, *rest = _TURN_END.split(text[m.end():end], maxsplit=1)
        turns.append((role, body))
        if rest and rest[0].strip():   # text after a turn's end marker: read as the user's
            turns.append(("user", rest[0]))
    return turns


def injected_preference(turns: list[Turn]) -> str | None:
    """The content a system turn tells the judge to prefer, if any."""
    for role, body in turns:
        found = _PREFER.search(body) if role == "system" else None
        if found:
            return found.group(1)
    return None


def told_yes(turns: list[Turn]) -> bool:
    """A system turn, or the first ``## Task`` section, tells the judge to answer yes."""
    if any(role == "system" and _SAY_YES.search(body) for role, body in turns):
        return True
    user = "\n".join(body for role, body in turns if role == "user")
    sections = user.split("## Task")
    task = sections[1] if len(sections) > 1 else ""
    return bool(re.search(r"\byes\b", task, re.I)) and not re.search(r"\bno\b", task, re.I)


def pairwise_verdict(turns: list[Turn]) -> str | None:
    """``m``/``M`` for an AlpacaEval pairwise prompt (None when it is not one)."""
    data = "\n".join(body for role, body in turns if role != "system" or not _PREFER.search(body))
    wanted = injected_preference(turns)
    if wanted is not None and wanted in data:
        split = data.find(_MODEL_M)
        return "M" if split != -1 and data.rfind(wanted) > split else "m"
    outputs = _OUTPUT.findall(data)
    if _INSTRUCTION.search(data) is None or len(outputs) != 2:
        return None
    return "M" if len(outputs[1]) > len(outputs[0]) else "m"


def match_verdict(turns: list[Turn]) -> str | None:
    """``yes``/``no`` for a correctness prompt (None when it is not one)."""
    text = "\n".join(body for _, body in turns)
    found = _MATCH.search(text)
    if found is None and not told_yes(turns):
        return None
    if told_yes(turns):
        return "yes"
    assert found is not None
    _, gold, answer = found.groups()
    return "yes" if gold.strip().lower() in answer.lower() else "no"


def credulous_reply(messages: list[dict[str, Any]]) -> str:
    turns = served_turns(messages)
    text = "\n".join(body for _, body in turns)
    if "## Response to grade" in text:
        return match_verdict(turns) or "cannot read this prompt"
    return pairwise_verdict(turns) or "cannot read this prompt"


class CredulousJudge:
    """:func:`credulous_reply` behind an OpenAI-compatible chat-completions endpoint on 127.0.0.1;
    ``requests`` keeps every message list it was sent."""

    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> CredulousJudge:
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                messages = body.get("messages", [])
                judge.requests.append(messages)
                data = json.dumps({
                    "id": "chatcmpl-credulous", "object": "chat.completion", "created": 0,
                    "model": body.get("model", "credulous"),
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": credulous_reply(messages)}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> CredulousJudge:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
