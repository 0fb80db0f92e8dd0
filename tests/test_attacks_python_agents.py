"""The Python coding agents' attacks (autorl_gym/attacks/cases/python_agents.py), run as the
attack suite runs them: a stand-in install (a bare venv made by the real install code) in a
scratch cache, the agent's real sandbox built as a run builds it (gateway bridged in, install and
base interpreter mounted). Each must hold on ``local``; the tampered pyvenv.cfg is refused before
any sandbox starts, with the reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_server import bwrap_ok  # noqa: F401 - a fixture

from autorl_gym.agents.py_cli import BadInstall, check_base_prefix, find_python
from autorl_gym.attacks.runner import run_attacks

MICRO_ID = "AutoRL-Micro-Arith-v0"
NAMES = ["python_agent_venv_writable", "python_agent_key_in_sandbox", "python_agent_reaches_upstream",
         "python_agent_venv_home_mounts_cache"]


@pytest.mark.parametrize("name", NAMES)
def test_python_agent_attack_holds_on_local(name, micro_assets, bwrap_ok, tmp_path) -> None:  # noqa: F811
    report = run_attacks(MICRO_ID, "local", scratch=tmp_path, names=[name])
    (outcome,) = report.outcomes
    assert outcome.status == "held", f"{name}: {outcome.status}: {outcome.detail}"
    if name == "python_agent_venv_home_mounts_cache":
        assert "refused at the mount" in outcome.detail


def test_base_prefix_rules(tmp_path: Path, monkeypatch) -> None:
    """The real interpreter passes; the root, the cache, a folder holding the cache and a folder
    that is no Python installation are refused."""
    cache = tmp_path / "cache"
    (cache / "micro").mkdir(parents=True)
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(cache))
    cfg = tmp_path / "pyvenv.cfg"
    real = Path(os.path.realpath(find_python())).parent.parent
    assert check_base_prefix(real, cfg) == real
    for bad in (Path("/"), cache, cache / "micro", tmp_path, tmp_path / "elsewhere"):
        with pytest.raises(BadInstall):
            check_base_prefix(bad, cfg)
