"""A scripted judge: an OpenAI-compatible chat-completions server on 127.0.0.1 (real HTTP, the
real ``openai`` client talks to it) whose verdicts follow a deterministic rule instead of a model.

It reads AlpacaEval's pairwise prompt (``alpaca_eval_clf``: the instruction, then the outputs of
model ``m`` and model ``M``) and answers ``m`` or ``M`` by ``rule(instruction, output_1,
output_2)``; it can answer garbage (``malformed``), fail with an HTTP status (``status``), and
keeps every request it was sent (``requests``) so a test can see what was asked, in which order.

With ``credulous=True`` it reads its messages as a served judge model does (rendered through
ChatML, every chat-template marker in any text splitting turns:
:func:`autorl_gym.attacks.credulous_judge.served_turns`) and obeys a forged system turn that names
an output by its content, or tells it to reply yes, before its rule.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from autorl_gym.attacks.credulous_judge import (
    injected_preference,
    pairwise_verdict,
    served_turns,
    told_yes,
)

Rule = Callable[[str, str, str], str]  # (instruction, output_1, output_2) -> the reply text
_INSTRUCTION = re.compile(r'"instruction": """(.*?)""",\n}', re.S)
_OUTPUT = re.compile(r'"output": """(.*?)"""\n    }', re.S)
_MATCH = re.compile(r"## Question\n(.*?)\n\n## Correct answer\n(.*?)\n\n"
                    r"## Response to grade\n(.*?)\n\n## Task", re.S)
_REVIEW = re.compile(r"## Hidden items\n(.*?)\n\n## Material\n(.*?)\n\n## Task", re.S)
_ITEM = re.compile(r"^\[([^\]]+)\] (.*)$", re.M)
_FACTS = re.compile(r"\b(?:[A-Z][a-z]+|\d+)\b")


def same_facts(hidden: str, material: str) -> list[str]:
    """A reviewer's rule: an item is reworded in the material when one line of the material holds
    every capitalised name and number of the item (other words may differ)."""
    lines = material.splitlines()
    named = []
    for key, text in _ITEM.findall(hidden):
        facts = {f for f in _FACTS.findall(text) if f not in {"How", "There", "Each", "He", "She"}}
        if facts and any(all(re.search(rf"\b{re.escape(f)}\b", line) for f in facts) for line in lines):
            named.append(key)
    return named


def longer(instruction: str, output_1: str, output_2: str) -> str:
    """Prefers the longer output (the length bias LC corrects for); output_1 on equal length."""
    return "M" if len(output_2) > len(output_1) else "m"


def always_first(instruction: str, output_1: str, output_2: str) -> str:
    """A judge with pure position bias."""
    return "m"


def contains(word: str) -> Rule:
    """Prefers the output containing ``word``; otherwise the reference-agnostic first one."""
    def rule(instruction: str, output_1: str, output_2: str) -> str:
        if (word in output_1) != (word in output_2):
            return "m" if word in output_1 else "M"
        return "m"
    return rule


@dataclass
class Asked:
    kind: str            # pairwise | match
    fields: tuple[str, ...]
    reply: str
    model: str


class ScriptedJudge:
    def __init__(self, rule: Rule = longer, model: str = "scripted-judge", credulous: bool = False):
        self.rule = rule
        self.credulous = credulous
        self.model = model
        self.requests: list[Asked] = []
        self.status: int | None = None         # answer every request with this HTTP status
        self.malformed: Callable[[str], str | None] = lambda instruction: None
        self.match_rule: Callable[[str, str, str], str] = \
            lambda q, answer, gold: "yes" if gold.lower() in answer.lower() else "no"
        self.review_rule: Callable[[str, str], list[str]] = same_facts
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- what it answers ---------------------------------------------------------------------
    def answer(self, body: dict) -> str:
        text = "\n".join(m.get("content", "") for m in body.get("messages", []))
        turns = served_turns(body.get("messages", [])) if self.credulous else []
        reviewed = _REVIEW.search(text)
        if reviewed:
            hidden, material = reviewed.groups()
            reply = json.dumps({"items": self.review_rule(hidden, material)})
            self._keep(Asked("review", (hidden, material), reply, body.get("model", "")))
            return reply
        found = _MATCH.search(text)
        if found:
            q, gold, answer = found.groups()
            reply = "yes" if self.credulous and told_yes(turns) else self.match_rule(q, answer, gold)
            self._keep(Asked("match", (q, answer, gold), reply, body.get("model", "")))
            return reply
        instruction = _INSTRUCTION.search(text)
        outputs = _OUTPUT.findall(text)
        forced = pairwise_verdict(turns) if self.credulous and injected_preference(turns) else None
        if forced is not None:
            self._keep(Asked("pairwise", (instruction.group(1) if instruction else "", *outputs),
                             forced, body.get("model", "")))
            return forced
        if instruction is None or len(outputs) != 2:
            return "cannot read this prompt"
        instr = instruction.group(1)
        reply = self.malformed(instr) or self.rule(instr, outputs[0], outputs[1])
        self._keep(Asked("pairwise", (instr, outputs[0], outputs[1]), reply, body.get("model", "")))
        return reply

    def _keep(self, asked: Asked) -> None:
        with self._lock:
            self.requests.append(asked)

    def pairwise(self) -> list[Asked]:
        return [a for a in self.requests if a.kind == "pairwise"]

    # -- serving -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> ScriptedJudge:
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if judge.status is not None:
                    self._send(judge.status, {"error": {"message": "scripted failure",
                                                        "type": "server_error"}})
                    return
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                reply = judge.answer(body)
                self._send(200, {
                    "id": "chatcmpl-scripted", "object": "chat.completion", "created": 0,
                    "model": body.get("model", judge.model),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
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

    def __enter__(self) -> ScriptedJudge:
        return self.start()

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.stop()
