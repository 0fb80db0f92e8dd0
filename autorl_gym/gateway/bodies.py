"""What a call carried, as text: the prompt the agent sent out and the answer it got back,
written into the call's line of ``llm_calls.jsonl`` for the contamination audit
(:mod:`autorl_gym.audit`), which scans every string of every call.

The request is recorded as its string values, one per line (the JSON's escapes would split the
text the audit matches). The answer is recorded as the text its JSON objects carry under the keys
every API puts generated text in (:data:`TEXT_KEYS`), concatenated in order, so that a streamed
answer's deltas join into the words they spell. Each is cut at :data:`MAX_TEXT_CHARS`; a cut
call says so (``text_truncated``), and the audit counts it as content it could not read.
"""

from __future__ import annotations

from typing import Any

MAX_TEXT_CHARS = 4 * 1024 * 1024
#: where the APIs put generated text: chat ``content``, Anthropic's ``text``/``thinking``/
#: ``partial_json`` deltas, the Responses API's ``delta`` and ``output_text``, tool ``arguments``,
#: OpenAI-compatible servers' ``reasoning_content``, and a refusal's ``refusal``
TEXT_KEYS = frozenset({"content", "text", "thinking", "partial_json", "delta", "output_text",
                       "arguments", "reasoning_content", "reasoning", "refusal"})


def _leaves(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _leaves(v, out)
    elif isinstance(value, list):
        for v in value:
            _leaves(v, out)


def request_text(parsed: Any) -> tuple[str, bool]:
    """The strings of a parsed request body, one per line, and whether they were cut."""
    out: list[str] = []
    _leaves(parsed, out)
    text = "\n".join(out)
    return (text[:MAX_TEXT_CHARS], True) if len(text) > MAX_TEXT_CHARS else (text, False)


class AnswerText:
    """Fed every JSON object of an answer (each server-sent event, or the whole body)."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self.truncated = False

    def feed(self, obj: Any) -> None:
        """Collect the strings held directly under :data:`TEXT_KEYS` (never a ``type`` beside
        them: it would glue itself to the text)."""
        if isinstance(obj, dict):
            for k, v in obj.items():
                if isinstance(v, str):
                    if k in TEXT_KEYS:
                        self._add(v)
                else:
                    self.feed(v)
        elif isinstance(obj, list):
            for v in obj:
                self.feed(v)

    def _add(self, s: str) -> None:
        left = MAX_TEXT_CHARS - self._size
        if len(s) > left:
            s, self.truncated = s[:left], True
        if s:
            self._parts.append(s)
            self._size += len(s)

    @property
    def text(self) -> str:
        return "".join(self._parts)

