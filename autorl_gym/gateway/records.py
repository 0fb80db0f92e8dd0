"""``llm_calls.jsonl``: one line per call the gateway saw, answered or refused, and the run's
totals read back from it."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, Field

from autorl_gym.gateway.tokens import TokenTrace


class LLMCall(BaseModel):
    time: datetime = Field(description="when the request reached the gateway (UTC)")
    route: str = Field(description="method and path, e.g. 'POST /v1/messages'")
    model: str | None
    stream: bool
    status: int
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float = Field(description="request arrival to the answer's last byte")
    ttft_s: float | None = Field(None, description="request arrival to the answer's first byte")
    request_bytes: int = 0
    response_bytes: int = 0
    refused: str | None = Field(None, description="why the gateway refused it (not forwarded)")
    reserved_tokens: int | None = Field(None, description="held against the token cap while in flight: "
                                        "the input estimate plus the output the request may generate")
    charged_tokens: int | None = Field(None, description="counted against the token cap: the usage the "
                                       "upstream reported, or the reservation when it reported none")
    client_closed: bool = Field(False, description="the client hung up first; the gateway read the "
                                "answer to its end for its usage")
    request_text: str | None = Field(None, description="the request's strings, one per line (what the "
                                      "agent sent out), for the contamination audit")
    response_text: str | None = Field(None, description="the text the answer carried (streamed deltas "
                                       "joined), for the contamination audit")
    text_truncated: bool = Field(False, description="request_text or response_text was cut at the cap")
    tokens: TokenTrace | None = Field(None, description="the token ids and log-probabilities the upstream "
                                      "returned (a vLLM asked for them), else None")


class Usage(BaseModel):
    """A run's LLM usage, summed over its ``llm_calls.jsonl``."""

    calls: int = 0
    refused: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    models: list[str] = []

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class CallLog:
    """Appends calls to the file (one JSON line each, flushed, so a reader sees every line as it
    is written), thread-safe. The file is opened once (at the first call) and kept open until
    :meth:`close`: a call costs one write, not an open and a close."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()

    def add(self, call: LLMCall) -> None:
        if self.path is None:
            return
        line = call.model_dump_json() + "\n"
        with self._lock:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_calls(path: Path) -> list[LLMCall]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(LLMCall.model_validate(json.loads(line)))
    return out


def summarize(calls: list[LLMCall]) -> Usage:
    answered = [c for c in calls if c.refused is None]
    costs = [c.cost_usd for c in answered if c.cost_usd is not None]
    return Usage(calls=len(answered), refused=len(calls) - len(answered),
                 input_tokens=sum(c.input_tokens or 0 for c in answered),
                 output_tokens=sum(c.output_tokens or 0 for c in answered),
                 cached_tokens=sum(c.cached_tokens or 0 for c in answered),
                 cost_usd=round(sum(costs), 6) if costs else None,
                 models=sorted({c.model for c in answered if c.model}))
