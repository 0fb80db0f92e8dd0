"""How a scenario names its judge (the ``judge:`` block of a scenario YAML).

The judge runs on the host, in the grading process; nothing of it reaches the sandbox: the key is
read from a host environment variable named here (never written in a file), and the grading
child process is the only one that calls the endpoint. On the host, ``AUTORL_GYM_JUDGE_MODEL`` and
``AUTORL_GYM_JUDGE_BASE_URL`` replace ``model`` and ``base_url`` without editing the YAML.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

MODEL_ENV = "AUTORL_GYM_JUDGE_MODEL"
BASE_URL_ENV = "AUTORL_GYM_JUDGE_BASE_URL"


class JudgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: str = Field("openai", description="a registered judge backend: openai (any "
                                                "OpenAI-compatible endpoint)")
    model: str = Field(min_length=1, description="the judge model the endpoint serves")
    base_url: str | None = Field(None, description="the endpoint (None: the client's default)")
    api_key_env: str | None = Field(
        "AUTORL_GYM_JUDGE_API_KEY", description="host environment variable holding the key")
    prompt: str = Field("alpaca_eval_clf", description="the pairwise prompt (judge/prompts.py)")
    match_prompt: str = Field("match_v1", description="the correctness prompt (judge/prompts.py)")
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(8, gt=0, description="a verdict is one identifier")
    timeout_s: float = Field(60.0, gt=0, description="one request")
    retries: int = Field(3, ge=0, description="a request that fails (connection, 429, 5xx) is "
                                              "sent again this many times, with backoff")
    parse_retries: int = Field(2, ge=0, description="an unparseable verdict is asked again this "
                                                    "many times, then counted as a tie")
    concurrency: int = Field(8, gt=0, description="requests in flight at once")

    def on_host(self) -> JudgeSpec:
        """This spec with the host's overrides (``AUTORL_GYM_JUDGE_MODEL``, ``..._BASE_URL``)."""
        update = {}
        if os.environ.get(MODEL_ENV):
            update["model"] = os.environ[MODEL_ENV]
        if os.environ.get(BASE_URL_ENV):
            update["base_url"] = os.environ[BASE_URL_ENV]
        return self.model_copy(update=update)

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None
