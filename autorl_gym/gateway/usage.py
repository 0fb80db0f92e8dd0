"""Token counts read from what the upstream answered, streamed or not, in every API's format.

One reader for all of them: every JSON object of the answer (the whole body, each server-sent
event's ``data:`` line, or each element of Gemini's JSON-array stream) is searched for a usage
block where the APIs put it (``usage``; Anthropic's ``message.usage`` in ``message_start``; the
Responses API's ``response.usage`` in ``response.completed``; Gemini's ``usageMetadata``). Counts
are cumulative in every API's stream, so the largest value seen is the call's.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from pydantic import BaseModel

from autorl_gym.gateway.bodies import AnswerText

_MAX_BODY = 32 * 1024 * 1024  # a non-streamed body is parsed whole up to this size


class Usage(BaseModel):
    input_tokens: int | None = None  # all input tokens, cached ones included
    output_tokens: int | None = None
    cached_tokens: int | None = None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _usage_block(obj: dict[str, Any]) -> dict[str, Any] | None:
    for holder in (obj, obj.get("message"), obj.get("response")):
        if isinstance(holder, dict):
            u = holder.get("usage") or holder.get("usageMetadata")
            if isinstance(u, dict):
                return u
    return None


def _counts(u: dict[str, Any]) -> Usage:
    if "promptTokenCount" in u or "candidatesTokenCount" in u:  # Gemini
        out = _int(u.get("candidatesTokenCount"))
        thoughts = _int(u.get("thoughtsTokenCount"))
        return Usage(input_tokens=_int(u.get("promptTokenCount")),
                     output_tokens=(out or 0) + (thoughts or 0) if out is not None or thoughts else None,
                     cached_tokens=_int(u.get("cachedContentTokenCount")))
    if "prompt_tokens" in u or "completion_tokens" in u:  # OpenAI Chat Completions
        details = u.get("prompt_tokens_details") or {}
        return Usage(input_tokens=_int(u.get("prompt_tokens")),
                     output_tokens=_int(u.get("completion_tokens")),
                     cached_tokens=_int(details.get("cached_tokens")) if isinstance(details, dict) else None)
    cache_read = _int(u.get("cache_read_input_tokens"))  # Anthropic counts these apart
    cache_write = _int(u.get("cache_creation_input_tokens"))
    details = u.get("input_tokens_details") or {}  # the Responses API counts them inside
    base = _int(u.get("input_tokens"))
    total = (None if base is None and cache_read is None
             else (base or 0) + (cache_read or 0) + (cache_write or 0))
    cached = cache_read if cache_read is not None else (
        _int(details.get("cached_tokens")) if isinstance(details, dict) else None)
    return Usage(input_tokens=total, output_tokens=_int(u.get("output_tokens")), cached_tokens=cached)


class UsageMeter:
    """Fed the answer's bytes as they pass; ``usage`` once it has ended."""

    def __init__(self, streaming: bool):
        self.streaming = streaming
        self._buf = bytearray()
        self._best = Usage()
        self.answer = AnswerText()  # the answer's text, for the audit

    def feed(self, chunk: bytes) -> None:
        if not self.streaming:
            if len(self._buf) < _MAX_BODY:
                self._buf += chunk
            return
        self._buf += chunk
        *lines, rest = bytes(self._buf).split(b"\n")
        self._buf = bytearray(rest)
        for line in lines:
            self._line(line.strip())

    def _line(self, line: bytes) -> None:
        if line.startswith(b"data:"):
            line = line[5:].strip()
        elif line.startswith((b"[", b",", b"]")):  # Gemini's JSON-array stream without alt=sse
            line = line.strip(b"[],")
        if not line.startswith(b"{"):
            return
        with contextlib.suppress(ValueError):
            self._absorb(json.loads(line))

    def _absorb(self, obj: Any) -> None:
        if isinstance(obj, list):
            for x in obj:
                self._absorb(x)
            return
        if not isinstance(obj, dict):
            return
        self.answer.feed(obj)
        block = _usage_block(obj)
        if block is None:
            return
        got = _counts(block)
        merged = {}
        for field in ("input_tokens", "output_tokens", "cached_tokens"):
            vals = [v for v in (getattr(self._best, field), getattr(got, field)) if v is not None]
            merged[field] = max(vals) if vals else None
        self._best = Usage(**merged)

    @property
    def usage(self) -> Usage:
        if self._buf:
            if self.streaming:
                self._line(bytes(self._buf).strip())
            else:
                with contextlib.suppress(ValueError):
                    self._absorb(json.loads(bytes(self._buf)))
            self._buf = bytearray()
        return self._best


_EVENT_END = re.compile(rb"\r?\n\r?\n")


class UsageChunkStripper:
    """Removes, from an OpenAI stream, the usage-only chunk (``"choices": []`` and a ``usage``) that
    the gateway asked for on the client's behalf: the client gets the stream it asked for. Works on
    whole server-sent events; a partial event waits for its end (the client could not parse it)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        out, start = [], 0
        for m in _EVENT_END.finditer(self._buf):
            event = self._buf[start:m.end()]
            if not self._usage_only(event):
                out.append(event)
            start = m.end()
        self._buf = self._buf[start:]
        return b"".join(out)

    def flush(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest

    @staticmethod
    def _usage_only(event: bytes) -> bool:
        for line in event.splitlines():
            if line.startswith(b"data:"):
                try:
                    obj = json.loads(line[5:])
                except ValueError:
                    return False
                return (isinstance(obj, dict) and obj.get("choices") == []
                        and isinstance(obj.get("usage"), dict))
        return False
