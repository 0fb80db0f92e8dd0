"""The chat model behind the loop: any OpenAI-compatible endpoint through the ``openai`` client.

Transient API errors (HTTP 408/409/429/5xx, connection errors, timeouts) are retried by the
client itself with exponential backoff and jitter, honouring ``Retry-After``; ``max_retries``
sets how many times. What still fails after that is raised as :class:`LLMUnavailable`, which the
loop turns into a clean finish with the best model so far. Every call is logged (latency,
usage, the reply) to a JSONL file when one is given.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import openai
from openai import OpenAI


class LLMUnavailable(RuntimeError):
    """The endpoint could not answer (after the client's retries), or refused the request."""


class ChatLLM:
    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 temperature: float | None = 0.2, max_retries: int = 6, timeout_s: float = 600,
                 log_path: Path | None = None):
        key = api_key or os.environ.get("OPENAI_API_KEY")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        if not key:
            if base_url is None:
                raise ValueError("rdagent needs an API key: set OPENAI_API_KEY (or give --llm-base-url "
                                 "for a local OpenAI-compatible server that takes none)")
            key = "not-needed"  # local servers (vLLM, llama.cpp, ...) accept any key
        self.model = model
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.log_path = log_path
        self.client = OpenAI(api_key=key, base_url=base_url, max_retries=max_retries,
                             timeout=timeout_s)
        self.calls = 0
        self.seconds = 0.0

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
             tool_choice: str | dict[str, Any] = "auto", purpose: str = "",
             deadline: float | None = None) -> Any:
        """One chat completion; returns the assistant message (``openai`` model)."""
        timeout = self.timeout_s
        client = self.client
        if deadline is not None:
            room = deadline - time.time()
            timeout = max(2.0, min(timeout, room))
            # the client's retries back off 0.5, 1, 2, 4, 8, 8 ... s: keep them inside the deadline
            client = client.with_options(max_retries=retries_within(room / 2, self.client.max_retries))
        t0 = time.perf_counter()
        error: str | None = None
        message = None
        usage = None
        try:
            resp = client.chat.completions.create(
                model=self.model, messages=messages, tools=tools, tool_choice=tool_choice,
                temperature=openai.omit if self.temperature is None else self.temperature,
                timeout=timeout)
            if not resp.choices:
                raise LLMUnavailable("the endpoint returned no choices")
            message = resp.choices[0].message
            usage = resp.usage.model_dump() if resp.usage else None
            return message
        except openai.APIStatusError as e:
            error = f"HTTP {e.status_code} from the chat endpoint: {_short(e.message)}"
            raise LLMUnavailable(error) from e
        except openai.APIError as e:  # connection errors, timeouts, malformed responses
            error = f"{e.__class__.__name__}: {_short(str(e))}"
            raise LLMUnavailable(error) from e
        finally:
            dt = time.perf_counter() - t0
            self.calls += 1
            self.seconds += dt
            if self.log_path is not None:
                self._log({"call": self.calls, "purpose": purpose, "seconds": round(dt, 4),
                           "messages": len(messages),
                           "prompt_chars": sum(len(str(m.get("content") or "")) for m in messages),
                           "usage": usage, "error": error,
                           "reply": message.model_dump(exclude_none=True) if message else None})

    def _log(self, record: dict[str, Any]) -> None:
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")


def retries_within(seconds: float, max_retries: int) -> int:
    """How many of the ``openai`` client's retries fit in ``seconds`` of backoff (its delays are
    0.5 s doubling up to 8 s)."""
    total, n = 0.0, 0
    while n < max_retries:
        delay = min(0.5 * 2**n, 8.0)
        if total + delay > seconds:
            break
        total += delay
        n += 1
    return n


def _short(text: str, n: int = 500) -> str:
    return text if len(text) <= n else text[:n] + "..."
