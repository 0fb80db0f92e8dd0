"""The scenario schema: what a scenario YAML may say (:class:`Scenario` and its blocks). Loading,
finding and registering scenario files is :mod:`autorl_gym.scenarios.catalog`'s.

The ``judge:`` block (:class:`JudgeSpec`): the judge runs on the host, in the grading process;
nothing of it reaches the sandbox: the key is
read from a host environment variable named here (never written in a file), and the grading
child process is the only one that calls the endpoint. On the host, ``AUTORL_GYM_JUDGE_MODEL`` and
``AUTORL_GYM_JUDGE_BASE_URL`` replace ``model`` and ``base_url`` without editing the YAML.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autorl_gym.core.sandbox import SandboxLimits
from autorl_gym.interactive.prompt import PromptSpec

ID_RE = re.compile(r"^(?:[\w.-]+/)?[A-Za-z][\w-]*?-v(\d+)$")


class ScenarioError(ValueError):
    """A scenario file is missing, unreadable or invalid; the message names file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    """Where a scenario's splits come from; which ``source`` values exist, and what the other
    fields mean for them, is up to the scenario's task family (``autorl_gym/tasks/<family>.py``).

    ``path`` (relative to the YAML file) is a local folder; ``hub_id``/``hub_config`` a Hugging
    Face dataset (each family has its default); a hidden dev slice of ``dev_size`` items is drawn
    with ``dev_seed`` where the family carves one out of the visible data.
    """

    source: str = Field(min_length=1)
    name: str | None = None
    path: Path | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    dev_size: int = Field(0, ge=0)
    dev_seed: int = 0


class Protocol(_Strict):
    """How a problem is prompted and an answer read: every grader backend follows it."""

    prompt_template: str = "Question: {question}\nAnswer:"
    few_shot: int = Field(0, ge=0)
    chat_template: bool = False
    max_new_tokens: int = Field(256, gt=0)
    stop: list[str] = Field(default_factory=lambda: ["Question:"])
    filter: str = Field("strict-match", description="how an answer is read (the family's names)")


class GraderSpec(_Strict):
    backend: str = Field("hf", description="a registered generation backend: hf, vllm, lm_eval")
    lm_eval_model: Literal["hf", "vllm"] = Field(
        "hf", description="the lm-evaluation-harness model type the lm_eval backend runs")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vllm only")
    max_lora_rank: int = Field(64, gt=0, description="vllm only: largest LoRA rank accepted")
    batch_size: int = Field(32, gt=0)
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    isolation: Literal["process", "inline"] = Field(
        "process", description="grade in a child process with the limits below (inline: in the "
                               "caller's process, for debugging trusted models only)")
    memory_mb: int = Field(16384, gt=0, description="resident memory of the grading process tree")
    timeout_s: float = Field(7200.0, gt=0, description="wall-clock limit of one grading")
    max_params: int | None = Field(None, gt=0, description="largest submission, in parameters")
    max_params_factor: float = Field(
        4.0, gt=0, description="when max_params is unset: this multiple of the base model's")
    max_submission_bytes: int | None = Field(
        None, gt=0, description="largest submission on disk (weights, config and tokenizer "
                                "files), refused before anything is read")
    max_submission_bytes_factor: float = Field(
        4.0, gt=0, description="when max_submission_bytes is unset: this multiple of the base "
                               "model's weight files (at least 64 MiB)")


class InteractiveSpec(_Strict):
    """How a policy is rolled out on the games (level 3): the evaluator's ReAct-style loop."""

    max_steps: int = Field(50, gt=0, description="steps per game; not won by then is a loss")
    prompt: PromptSpec = Field(default_factory=PromptSpec)
    max_new_tokens: int = Field(32, gt=0)
    stop: list[str] = Field(default_factory=lambda: ["\n"])
    choose: Literal["generate", "admissible"] = Field(
        "generate", description="generate the command, or pick the most likely admissible one")
    train_split: str = "train"
    dev_split: str = "valid_seen"
    test_split: str = "valid_unseen"


class Budget(_Strict):
    seconds: float = Field(gt=0, description="wall-clock budget of an episode")
    max_steps: int = Field(gt=0, description="tool calls allowed")
    max_submissions: int = Field(gt=0)


class ReferenceBaseline(_Strict):
    """A published baseline, kept for reference; the reward uses the grader's own measurement."""

    score: float
    protocol: str
    correct: int | None = None
    total: int | None = None
    split: str = "test"
    model: str | None = None


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
    review_prompt: str = Field("contamination_review_v1", description="the contamination audit's "
                                                                      "review prompt (judge/prompts.py)")
    review_max_tokens: int = Field(512, gt=0, description="a review names item IDs")
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


class AuditSpec(BaseModel):
    """The contamination audit's optional LLM review (:mod:`autorl_gym.audit.review`): a judge
    reads a sample of the hidden items beside what the agent could have trained on, for reworded
    items the n-gram scan cannot see. It can only raise a clean verdict to suspect."""

    model_config = ConfigDict(extra="forbid")

    llm_review: JudgeSpec | None = Field(None, description="the reviewing judge (None: no review)")
    review_items: int = Field(40, gt=0, le=500, description="hidden items shown to the judge")
    review_chars: int = Field(30000, gt=0, le=1_000_000, description="characters of material shown")


class Scenario(_Strict):
    id: str
    title: str
    level: Literal[1, 2, 3]
    task_family: str = Field(description="a registered task family (autorl_gym/tasks/<name>.py)")
    task: str = Field(description="the task text the agent reads (description.md)")
    base_model: str = Field(description="hub id, local path, or micro:<name>")
    data: DataSpec
    metric: str = Field("accuracy", description="one of the task family's metrics")
    feedback_split: Literal["dev", "test"] = "dev"
    protocol: Protocol = Field(default_factory=Protocol)
    grader: GraderSpec = Field(default_factory=GraderSpec)
    budget: Budget
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)
    reference_baseline: ReferenceBaseline | None = None
    interactive: InteractiveSpec | None = None
    judge: JudgeSpec | None = Field(None, description="the judge of a judge-graded task (level 2)")
    audit: AuditSpec = Field(default_factory=AuditSpec, description="the contamination audit's options")
    task_options: dict[str, Any] = Field(
        default_factory=dict, description="the task family's own settings (its options_model)")
    source_file: Path | None = Field(None, exclude=True)

    @field_validator("id")
    @classmethod
    def _versioned(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError(f"id {v!r} must be versioned like 'AutoRL-Name-v0'")
        return v

    @property
    def version(self) -> int:
        match = ID_RE.match(self.id)
        assert match
        return int(match.group(1))
