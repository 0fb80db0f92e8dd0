"""Token ids and log-probabilities from an OpenAI-compatible upstream that returns them.

A vLLM server asked for them (``"return_token_ids": true``, ``"logprobs": true`` in the request)
answers a chat completion with the prompt's token ids (``prompt_token_ids``, at the top level or
on the choice), the completion's (``choices[0].token_ids``) and each generated token's
log-probability (``choices[0].logprobs.content[i].logprob``, or ``token_logprobs`` from the
completions API); streamed, the first chunk carries the prompt's ids and each chunk its share of
the rest. :class:`TokenMeter` reads them from the answer's bytes as they pass (the gateway's
:class:`~autorl_gym.gateway.usage.UsageMeter`, which it extends, reads the usage from the same
bytes) and ``llm_calls.jsonl`` keeps them per call, for exports that train on them (ATIF's
``prompt_token_ids``, ``completion_token_ids`` and ``logprobs``). Only the first choice is kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from autorl_gym.gateway.usage import UsageMeter


class TokenTrace(BaseModel):
    """One call's token ids and log-probabilities, as the upstream returned them."""

    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    logprobs: list[float] | None = Field(None, description="one per generated token")

    @property
    def empty(self) -> bool:
        return self.prompt_token_ids is None and self.completion_token_ids is None and self.logprobs is None


def _ints(v: Any) -> list[int] | None:
    if isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return list(v)
    return None


def _logprobs(lp: Any) -> list[float] | None:
    if not isinstance(lp, dict):
        return None
    if isinstance(lp.get("content"), list):  # chat completions
        vals = [c.get("logprob") for c in lp["content"] if isinstance(c, dict)]
    elif isinstance(lp.get("token_logprobs"), list):  # completions
        vals = lp["token_logprobs"]
    else:
        return None
    return [float(v) for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]


class TokenMeter(UsageMeter):
    """A :class:`UsageMeter` that also collects the answer's token ids and log-probabilities."""

    def __init__(self, streaming: bool):
        super().__init__(streaming)
        self._trace = TokenTrace()

    def _absorb(self, obj: Any) -> None:
        super()._absorb(obj)
        if isinstance(obj, dict):
            self._collect(obj)

    def _collect(self, obj: dict[str, Any]) -> None:
        t = self._trace
        choices = obj.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        prompt = _ints(obj.get("prompt_token_ids")) or _ints(choice.get("prompt_token_ids"))
        if prompt is not None and t.prompt_token_ids is None:
            t.prompt_token_ids = prompt
        ids = _ints(choice.get("token_ids"))
        if ids is not None:
            t.completion_token_ids = (t.completion_token_ids or []) + ids
        lps = _logprobs(choice.get("logprobs"))
        if lps is not None:
            t.logprobs = (t.logprobs or []) + lps

    @property
    def trace(self) -> TokenTrace | None:
        """What the answer carried (None when it carried none); read after the answer ended."""
        _ = self.usage  # parses what is still buffered
        return None if self._trace.empty else self._trace
