"""autorl_gym.core.envvars.ENV_VARS (the source of the docs' environment-variable reference) against
the package's source: every variable the package reads is listed, every listed one is used."""

from __future__ import annotations

import re
from pathlib import Path

from autorl_gym.core.envvars import ENV_VARS, env_var

PACKAGE = Path(__file__).resolve().parents[1] / "autorl_gym"
NAME = r"([A-Z][A-Z0-9_]{2,})"
READS = [
    re.compile(rf"environ(?:\.get|\.setdefault|\.pop)?\(\s*[\"']{NAME}[\"']"),  # os.environ.get("X")
    re.compile(rf"environ\[\s*[\"']{NAME}[\"']\s*\]"),                           # os.environ["X"]
    re.compile(rf"getenv\(\s*[\"']{NAME}[\"']"),                                  # os.getenv("X")
    re.compile(rf"^\s*[A-Z_]*_(?:ENV|VAR)\s*(?::\s*str)?\s*=\s*[\"']{NAME}[\"']", re.M),  # X_ENV = "X"
    re.compile(r"[\"'](AUTORL_GYM_[A-Z0-9_]+)[\"']"),                            # any AUTORL_GYM_* literal
    re.compile(rf"[\"']{NAME[:-1]}_API_KEY)[\"']"),                                # key variables
]
# read by the package but not a setting of autorl-gym: why each is left out of the reference
NOT_SETTINGS = {
    "CUBLAS_WORKSPACE_CONFIG": "set (and restored) by the micro build for deterministic CUDA kernels",
    "ANTHROPIC_BASE_URL": "set for a CLI agent inside the sandbox: the gateway's address",
    "GOOGLE_GEMINI_BASE_URL": "set for a CLI agent inside the sandbox: the gateway's address",
    "PYENV_ROOT": "pyenv's own: where the pip agents' installer looks for pyenv's Python 3.12",
    "TMPDIR": "the standard temporary folder, read inside the Harbor task's grading container",
}
# the agents' training scripts (scripted, example_shell) run inside the sandbox; their knobs (train_env) are
# generated into the scripted agent's page from the scripts themselves (docs/hooks.py)
SANDBOX_SCRIPTS = "agents/*/train_*.py"
# and their time limit (TRAIN_SECONDS), written beside them in the sandbox; in the same table
SANDBOX_DEADLINE = "agents/scripted/deadline.py"
# the pip agents' runners (OpenHands, mini-swe-agent) run inside the sandbox; their knobs are the agent.yaml
# options, documented on the agents' page (docs/agents/openhands.md)
SANDBOX_RUNNERS = "agents/*/run_*.py"


def package_reads() -> dict[str, set[str]]:
    """Every variable name the package's source reads or names, with the files naming it."""
    skip = set(PACKAGE.glob(SANDBOX_SCRIPTS))
    assert skip, SANDBOX_SCRIPTS
    skip.add(PACKAGE / SANDBOX_DEADLINE)
    skip |= set(PACKAGE.glob(SANDBOX_RUNNERS))
    found: dict[str, set[str]] = {}
    for file in PACKAGE.rglob("*.py"):
        if file in skip or file.name == "envvars.py":
            continue
        text = file.read_text()
        for pattern in READS:
            for name in pattern.findall(text):
                found.setdefault(name, set()).add(str(file.relative_to(PACKAGE.parent)))
    return found


def test_every_variable_the_package_reads_is_listed():
    listed = {v.name for v in ENV_VARS}
    missing = {name: sorted(files) for name, files in package_reads().items()
               if name not in listed and name not in NOT_SETTINGS}
    assert not missing, f"add these to autorl_gym/core/envvars.py (or NOT_SETTINGS, with why): {missing}"


def test_every_listed_variable_is_used_by_the_package():
    sources = "\n".join(f.read_text() for f in PACKAGE.rglob("*.py") if f.name != "envvars.py")
    unused = [v.name for v in ENV_VARS if not re.search(rf"[\"'$]{v.name}\b", sources)]
    assert not unused, f"listed in autorl_gym/core/envvars.py but named nowhere in the package: {unused}"


def test_the_list_has_one_entry_per_name_and_a_lookup():
    names = [v.name for v in ENV_VARS]
    assert len(names) == len(set(names))
    assert env_var("AUTORL_GYM_CACHE").default == "~/.cache/autorl_gym"
    assert all(v.purpose and v.read_in for v in ENV_VARS)
