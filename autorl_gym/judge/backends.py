"""Judge backends, registered by name (``judge.backend`` in a scenario): ``openai``, a model
behind any OpenAI-compatible chat-completions endpoint. Another package can register its own
with :func:`register_judge_backend`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from autorl_gym.core.registry import Registry
from autorl_gym.judge.base import JudgeBackend, JudgeUnavailable, Reply
from autorl_gym.judge.prompts import JudgePrompt, Messages, get_prompt

if TYPE_CHECKING:
    from autorl_gym.core.scenario import JudgeSpec

B = TypeVar("B", bound=type)
#: the judge backends (the built-in is this module's ``openai``)
JUDGE_BACKENDS: Registry[type] = Registry("judge backend")


def register_judge_backend(cls: B) -> B:
    """Class decorator: a judge backend under ``cls.name``, built as ``cls(spec)``."""
    JUDGE_BACKENDS.add(cls.name, cls, owner=f"{cls.__module__}.{cls.__qualname__}")  # type: ignore[attr-defined]
    return cls


def judge_backend_names() -> list[str]:
    return JUDGE_BACKENDS.names()


def make_judge_backend(spec: JudgeSpec) -> JudgeBackend:
    return JUDGE_BACKENDS.get(spec.backend)(spec)


def ask_until_parsed(send: Callable[[], str], parse: Callable[[str], Any], retries: int) -> Reply:
    """Send until a reply parses, at most ``1 + retries`` times; the last reply when none does."""
    raw = ""
    for attempt in range(1, retries + 2):
        raw = send()
        choice = parse(raw)
        if choice is not None:
            return Reply(choice=choice, raw=raw, attempts=attempt)
    return Reply(choice=None, raw=raw, attempts=retries + 1)


@register_judge_backend
class OpenAIJudgeBackend:
    """A judge model behind an OpenAI-compatible endpoint (OpenAI, vLLM, SGLang, a gateway...)."""

    name: ClassVar[str] = "openai"

    def __init__(self, spec: JudgeSpec):
        from openai import OpenAI

        self.spec = spec
        self.pairwise_prompt: JudgePrompt = get_prompt(spec.prompt)
        self.match_prompt: JudgePrompt = get_prompt(spec.match_prompt)
        self.review_prompt: JudgePrompt = get_prompt(spec.review_prompt)
        key = spec.api_key()
        self._key_note = "" if key or not spec.api_key_env else \
            f"; the key is read from ${spec.api_key_env}, which is not set on this host"
        self.client = OpenAI(base_url=spec.base_url, api_key=key or "EMPTY",
                             timeout=spec.timeout_s, max_retries=spec.retries)

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.spec.model,
                "temperature": self.spec.temperature, "max_tokens": self.spec.max_tokens,
                "pairwise": self.pairwise_prompt.identity(), "match": self.match_prompt.identity()}

    def delimiters(self, kind: str) -> tuple[str, ...]:
        return {"pairwise": self.pairwise_prompt, "match": self.match_prompt,
                "review": self.review_prompt}[kind].delimiters

    def _send(self, messages: Messages, max_tokens: int | None = None) -> str:
        import openai

        where = self.spec.base_url or "the default OpenAI endpoint"
        try:
            resp = self.client.chat.completions.create(
                model=self.spec.model, messages=messages,  # type: ignore[arg-type]
                temperature=self.spec.temperature, max_tokens=max_tokens or self.spec.max_tokens)
            return resp.choices[0].message.content or ""
        except openai.APIStatusError as e:
            raise JudgeUnavailable(
                f"the judge {self.spec.model} at {where} refused the request: HTTP {e.status_code} "
                f"{str(e)[:200]}{self._key_note}") from e
        except openai.APIError as e:  # connection refused, timeouts, a malformed body
            raise JudgeUnavailable(
                f"the judge {self.spec.model} at {where} did not answer after "
                f"{self.spec.retries + 1} tries: {e.__class__.__name__}: {str(e)[:200]}") from e
        except (IndexError, AttributeError, TypeError, ValueError) as e:
            raise JudgeUnavailable(f"the judge {self.spec.model} at {where} sent a reply that is "
                                   f"not a chat completion: {e.__class__.__name__}: {e}") from e

    def pairwise(self, instruction: str, output_1: str, output_2: str) -> Reply:
        p = self.pairwise_prompt
        messages = p.render(instruction=instruction, output_1=output_1, output_2=output_2)
        return ask_until_parsed(lambda: self._send(messages), p.parse, self.spec.parse_retries)

    def correct(self, question: str, answer: str, gold: str) -> Reply:
        p = self.match_prompt
        messages = p.render(question=question, answer=answer, gold=gold)
        return ask_until_parsed(lambda: self._send(messages), p.parse, self.spec.parse_retries)

    def review(self, hidden: str, material: str) -> Reply:
        p = self.review_prompt
        messages = p.render(hidden=hidden, material=material)
        return ask_until_parsed(lambda: self._send(messages, self.spec.review_max_tokens), p.parse,
                                self.spec.parse_retries)
