"""The Python coding agents' specs (no install needed): their ``cli:`` blocks (pinned PyPI
requirements, the venv's launcher), the rules of the block, where they are installed and what a
run mounts, finding a Python 3.12, and the sweep treating them as the other CLI agents (crossed
with driver models, each defaulting to its agent.yaml's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from autorl_gym.agents.npm_cli import (
    CLINotInstalled,
    CLISpec,
    bin_dir,
    install_dir,
    installed,
    require_installed,
)
from autorl_gym.agents.py_cli import LAUNCHER, find_python
from autorl_gym.agents.spec import load_agent_spec
from autorl_gym.sweep.cells import expand
from autorl_gym.sweep.spec import parse_sweep

MICRO = "AutoRL-Micro-Arith-v0"


@pytest.mark.parametrize(("name", "provider", "model"), [("openhands", "anthropic", "claude-sonnet-4-6"),
                                                         ("mini_swe_agent", "openai", "gpt-5-mini")])
def test_python_agents_are_pip_cli_agents(name, provider, model, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path))
    spec, folder = load_agent_spec(name)
    assert spec.cli is not None and spec.cli.npm is None and spec.cli.bin == LAUNCHER
    assert all("==" in r for r in spec.cli.pip) and spec.cli.provider == provider
    assert spec.options["llm_model"] == model and spec.cli.env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert install_dir(name, spec.cli) == tmp_path / "agents" / name / spec.cli.version
    assert bin_dir(name, spec.cli) == install_dir(name, spec.cli) / "bin"
    runner = {"openhands": "run_openhands.py", "mini_swe_agent": "run_mini.py"}[name]
    assert (folder / runner).is_file() and f"code/{runner}" in spec.start
    assert not installed(name, spec.cli)
    with pytest.raises(CLINotInstalled, match=f"autorl-gym agents install {name}"):
        require_installed(name, spec.cli)


def test_cli_block_rules() -> None:
    base = {"version": "1", "provider": "openai", "instructions_file": "AGENTS.md"}
    with pytest.raises(ValidationError, match="exactly one of 'npm'"):
        CLISpec(**base, bin="x")
    with pytest.raises(ValidationError, match="exactly one of 'npm'"):
        CLISpec(**base, bin="x", npm="a", pip=["b==1"])
    with pytest.raises(ValidationError, match="pin every requirement"):
        CLISpec(**base, bin=LAUNCHER, pip=["mini-swe-agent>=2"])
    with pytest.raises(ValidationError, match="launcher"):
        CLISpec(**base, bin="mini", pip=["mini-swe-agent==2.4.6"])
    assert CLISpec(**base, bin="codex", npm="@openai/codex").package == "@openai/codex@1"


def test_find_python_prefers_312_and_says_what_it_looked_at(monkeypatch, tmp_path: Path) -> None:
    found = find_python()
    assert found.name.startswith("python3.1") and not str(found).endswith("shims/python3.12")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("AUTORL_GYM_PYTHON312", str(tmp_path / "none"))
    try:
        other = find_python((3, 99))
    except RuntimeError as e:
        assert "AUTORL_GYM_PYTHON312" in str(e)
    else:
        pytest.fail(f"a Python 3.99 was found: {other}")


def test_the_sweep_crosses_them_with_driver_models() -> None:
    spec = parse_sweep({"name": "py-agents", "scenarios": [MICRO],
                        "agents": [{"name": n} for n in ("openhands", "mini_swe_agent", "claude_code")],
                        "seeds": [0]})
    cells = expand(spec)
    assert {(c.agent, c.driver) for c in cells} == {("openhands", "claude-sonnet-4-6"),
                                                    ("mini_swe_agent", "gpt-5-mini"),
                                                    ("claude_code", "claude-sonnet-4-6")}
    crossed = expand(spec.model_copy(update={"drivers": ["model-a", "model-b"]}))
    assert {c.driver for c in crossed if c.agent == "mini_swe_agent"} == {"model-a", "model-b"}


@pytest.mark.parametrize("name", ["openhands", "mini_swe_agent"])
def test_each_python_agent_pins_its_whole_resolved_set(name) -> None:
    """The named packages are pinned in agent.yaml; everything pip resolves under them is pinned
    in the folder's constraints.txt (a yanked or compromised release of a dependency cannot slip
    in), and the named pins agree with it."""
    spec, folder = load_agent_spec(name)
    lines = [ln for ln in (folder / "constraints.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines and all("==" in ln for ln in lines), lines[:3]
    pinned = dict(ln.lower().replace("_", "-").split("==") for ln in lines)
    assert spec.cli is not None
    for req in spec.cli.pip:
        pkg, version = req.lower().replace("_", "-").split("==")
        assert pinned[pkg] == version


def test_install_passes_the_constraints_to_pip(tmp_path: Path) -> None:
    """A real install (PyPI is reachable on these machines): the constraint decides the version."""
    import json
    import subprocess

    from autorl_gym.agents.py_cli import install_venv, venv_dir

    pins = tmp_path / "constraints.txt"
    pins.write_text("six==1.16.0\n")
    target = install_venv(tmp_path / "agent" / "1", ["six"], constraints=pins)
    out = subprocess.run([str(venv_dir(target) / "bin" / "python"), "-c",
                          "import six; print(six.__version__)"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1.16.0"
    assert json.loads((target / ".installed.json").read_text())["constraints"] == str(pins)
