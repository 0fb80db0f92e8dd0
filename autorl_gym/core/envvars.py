"""Every environment variable autorl-gym reads, in one list.

The documentation's environment-variable reference is generated from :data:`ENV_VARS`, and
``tests/test_envvars.py`` checks the list against the package's source: a variable read with
``os.environ`` / ``os.getenv`` (or named in a ``*_ENV`` / ``*_VAR`` constant) that is not listed
here, or one listed here that the package no longer reads, fails the test.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Side = Literal["host", "sandbox"]


class EnvVar(BaseModel):
    """One environment variable: who reads it, what it does, and its default."""

    model_config = ConfigDict(frozen=True)

    name: str
    side: Side  # "host": read by autorl-gym itself; "sandbox": set for or read inside the sandbox
    purpose: str
    default: str = ""
    read_in: str  # the module that reads (or sets) it


ENV_VARS: tuple[EnvVar, ...] = (
    # the host: autorl-gym's own settings
    EnvVar(name="AUTORL_GYM_CACHE", side="host", read_in="autorl_gym.core.paths",
           default="~/.cache/autorl_gym",
           purpose="the grader-side cache: installed micro assets, baselines, prepared splits, judge "
                   "verdicts, search results, installed agent CLIs; never mounted in a sandbox"),
    EnvVar(name="AUTORL_GYM_DATA_DIR", side="host", read_in="autorl_gym.tasks (gsm8k, humaneval, alpaca, "
           "alfworld, webshop, deepsearchqa)", default="unset: the Hugging Face hub",
           purpose="a folder holding real datasets in their own layouts (gsm8k/, humaneval/, "
                   "alpaca/, alpaca_eval/, alfworld/, webshop/, deepsearchqa/); the tests that need "
                   "real data read it too (default there: ../shared/data beside the checkout)"),
    EnvVar(name="AUTORL_GYM_SCENARIOS", side="host", read_in="autorl_gym.core.paths",
           purpose="more folders of scenario YAML files (os.pathsep-separated), registered beside "
                   "the shipped ones on import autorl_gym"),
    EnvVar(name="AUTORL_GYM_AGENTS", side="host", read_in="autorl_gym.core.paths",
           purpose="more folders of agents/<name>/agent.yaml (os.pathsep-separated), searched before "
                   "./agents and the shipped agents"),
    EnvVar(name="AUTORL_GYM_DOCKER_IMAGE", side="host", read_in="autorl_gym.sandbox.docker.backend",
           default="the local hostbind image",
           purpose="the image of the docker sandbox when the scenario's sandbox.image is not set"),
    EnvVar(name="AUTORL_GYM_GRADING_FORKSERVER", side="host", read_in="autorl_gym.grading.forkserver",
           default="on",
           purpose="0 grades every submission in a fresh python -m autorl_gym.grading.worker instead "
                   "of a child forked from the warm grading server"),
    EnvVar(name="AUTORL_GYM_GRADING_WARM", side="host", read_in="autorl_gym.grading.warm",
           default="on",
           purpose="0: the warm grading server forks each grading without first doing, once per "
                   "scenario, the work that does not depend on the submission"),
    EnvVar(name="AUTORL_GYM_PYTHON312", side="host", read_in="autorl_gym.agents.py_cli",
           default="pyenv's 3.12, else python3.12 in /usr/bin or /usr/local/bin",
           purpose="the Python 3.12 interpreter that `autorl-gym agents install` builds the pip "
                   "agents' venvs (OpenHands, mini-swe-agent) with"),
    EnvVar(name="AUTORL_GYM_JUDGE_MODEL", side="host", read_in="autorl_gym.core.scenario",
           purpose="the judge model, overriding the scenario's judge.model"),
    EnvVar(name="AUTORL_GYM_JUDGE_BASE_URL", side="host", read_in="autorl_gym.core.scenario",
           purpose="the judge's OpenAI-compatible endpoint, overriding the scenario's judge.base_url"),
    EnvVar(name="AUTORL_GYM_JUDGE_API_KEY", side="host", read_in="autorl_gym.core.scenario",
           purpose="the judge's key (the default of the scenario's judge.api_key_env); host only, "
                   "never in the sandbox"),
    EnvVar(name="ALFWORLD_DATA", side="host", read_in="autorl_gym.tasks.alfworld",
           purpose="ALFWorld's data folder (ALFWorld's own variable), tried after the scenario's "
                   "data.path"),
    EnvVar(name="WEBSHOP_DATA", side="host", read_in="autorl_gym.tasks.webshop",
           purpose="WebShop's data folder, tried after the scenario's data.path"),
    EnvVar(name="SERPER_API_KEY", side="host", read_in="autorl_gym.search.web",
           purpose="the web search backend's key (the default of search.api_key_env); host only"),
    EnvVar(name="OPENAI_API_KEY", side="host", read_in="autorl_gym.agents.rdagent.llm, autorl_gym.gateway",
           purpose="rdagent's chat model key; the LLM gateway's upstream key for CLI agents "
                   "speaking the OpenAI API (inside the sandbox the CLI sees a per-run token instead)"),
    EnvVar(name="OPENAI_BASE_URL", side="host", read_in="autorl_gym.agents.rdagent.llm",
           default="https://api.openai.com/v1",
           purpose="rdagent's chat endpoint when --llm-base-url is not given"),
    EnvVar(name="ANTHROPIC_API_KEY", side="host", read_in="autorl_gym.gateway.settings",
           purpose="the LLM gateway's upstream key for CLI agents speaking the Anthropic API"),
    EnvVar(name="GEMINI_API_KEY", side="host", read_in="autorl_gym.gateway.settings",
           purpose="the LLM gateway's upstream key for CLI agents speaking the Gemini API"),
    EnvVar(name="GOOGLE_API_KEY", side="host", read_in="autorl_gym.gateway.settings",
           purpose="the Gemini upstream key when GEMINI_API_KEY is not set"),
    EnvVar(name="DOCKER_HOST", side="host", read_in="autorl_gym.sandbox.docker.engine",
           default="unix:///var/run/docker.sock",
           purpose="the Docker engine the docker sandbox talks to (the docker SDK's own variable)"),
    EnvVar(name="CUDA_VISIBLE_DEVICES", side="host", read_in="autorl_gym.sandbox.docker.gpus",
           purpose="the GPUs; with docker's gpus: the grader keeps the ones the sandbox was not given"),
    # inside the sandbox: set by the episode for the agent's code
    EnvVar(name="AUTORL_GYM_EXEC_ID", side="sandbox", read_in="autorl_gym.runtime.process",
           purpose="a fresh id set on every command, to find and kill processes that escaped it"),
    EnvVar(name="AUTORL_INTERACTIVE", side="sandbox", read_in="autorl_gym.interactive.settings",
           purpose="an interactive episode's settings (JSON) for autorl_gym.interactive.scenario_settings()"),
    EnvVar(name="AUTORL_SEARCH_URL", side="sandbox", read_in="autorl_gym.interactive.search",
           purpose="the host's search, bridged into the sandbox (search backend remote)"),
    EnvVar(name="TASK", side="sandbox", read_in="autorl_gym.episode.episode",
           purpose="the scenario id"),
    EnvVar(name="BASE_MODEL", side="sandbox", read_in="autorl_gym.episode.episode",
           purpose="the base model's id or path"),
    EnvVar(name="MODEL_PATH", side="sandbox", read_in="autorl_gym.episode.episode",
           purpose="the read-only base model folder (model/)"),
    EnvVar(name="DATA_PATH", side="sandbox", read_in="autorl_gym.episode.episode",
           purpose="the read-only train split (data/)"),
    EnvVar(name="OUTPUT_DIR", side="sandbox", read_in="autorl_gym.episode.episode",
           purpose="where models go (output/)"),
    EnvVar(name="WORKSPACE", side="sandbox", read_in="autorl_gym.episode.episode",
           purpose="the workspace folder"),
    EnvVar(name="GRADING_SERVER_URL", side="sandbox", read_in="autorl_gym.server.service",
           purpose="external agents: the grading server, bridged onto the sandbox's loopback"),
    EnvVar(name="RUN_ID", side="sandbox", read_in="autorl_gym.server.service",
           purpose="external agents: the run's id on the grading server"),
    EnvVar(name="RUN_TOKEN", side="sandbox", read_in="autorl_gym.server.service",
           purpose="external agents: the run's bearer token"),
)


def env_var(name: str) -> EnvVar:
    """The entry for ``name``; KeyError when autorl-gym does not know the variable."""
    for var in ENV_VARS:
        if var.name == name:
            return var
    raise KeyError(name)
