"""A non-editable install works without the checkout: the wheel holds the scenarios, the shipped
agents, the templates, the conformance suite and the micro artifacts (and no test double), and
installed on its own (``pip install --no-deps --target``) it registers every scenario, finds every
agent and verifies the micro artifacts' hashes from a folder outside the repository."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "autorl_gym"
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", ".ruff_cache", "results", "workspace")

PROBE = """
import json
import gymnasium as gym
import autorl_gym
from autorl_gym.agents.spec import find_agents, load_agent_spec
from autorl_gym.scenarios.catalog import catalog
from autorl_gym.sandbox import sandbox_kinds
from autorl_gym.sandbox.conformance import CHECKS
from autorl_gym.micro.shipped import ARTIFACTS_DIR, read_manifest, verify_files
for key, entry in read_manifest().artifacts.items():
    verify_files(ARTIFACTS_DIR / key, entry.files, "")
specs = {name: load_agent_spec(name)[0] for name in find_agents()}
print(json.dumps({
    "file": autorl_gym.__file__,
    "registered": sorted(k for k in gym.registry if k.startswith("AutoRL-")),
    "errors": catalog().errors,
    "agents": {k: str(v) for k, v in find_agents().items()},
    "entries": {k: s.entry for k, s in specs.items()},
    "kinds": sandbox_kinds(),
    "checks": sorted(CHECKS),
    "artifacts": [str(ARTIFACTS_DIR), sorted(read_manifest().artifacts)],
}))
"""


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)
    assert res.returncode == 0, f"{argv}: {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of this source tree (the build leaves nothing in it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=_NOT_SOURCE, symlinks=True)
    # the installed setuptools when there is one (offline); else pip's isolated build env
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", str(src),
          "-w", str(tmp / "dist")])
    (built,) = (tmp / "dist").glob("autorl_gym-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("target")
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
          str(target), str(wheel)])
    return target


def _outside_env(target: Path) -> dict[str, str]:
    """Only the installed copy on the path (the dependencies come from this interpreter's
    site-packages); no variable pointing back at the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "AUTORL_GYM_SCENARIOS", "AUTORL_GYM_AGENTS")}
    return {**env, "PYTHONPATH": str(target)}


def _repo_files(folder: Path) -> set[str]:
    return {str(p.relative_to(REPO)) for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_wheel_holds_the_package_data_and_no_test_double(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("scenarios", "agents", "report/templates", "tools/conformance", "interactive",
                   "gateway", "micro/artifacts"):
        missing = _repo_files(PACKAGE / folder) - names
        assert not missing, f"the wheel lacks {sorted(missing)}"
    assert "autorl_gym/sandbox/bridge_forward.py" in names  # bound into every bridged sandbox
    assert "autorl_gym/py.typed" in names
    assert "autorl_gym/micro/artifacts/arith-v1/model/model.safetensors" in names
    assert wheel.stat().st_size < 16 * 2**20, f"the wheel is {wheel.stat().st_size} bytes"
    assert not [n for n in names if "fake_openai" in n or "fake_llm" in n or n.startswith("tests/")]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "autorl-gym = autorl_gym.cli.main:app" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_alone_registers_every_scenario_and_agent(installed: Path,
                                                            tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    res = _run([sys.executable, "-c", PROBE], cwd=outside, env=_outside_env(installed))
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert Path(got["file"]).is_relative_to(installed), got["file"]
    ids = sorted(yaml.safe_load(p.read_text())["id"] for p in (PACKAGE / "scenarios").glob("*.yaml")
                 if p.name != "index.yaml")
    assert got["registered"] == ids and not got["errors"], got
    assert {"scripted", "rdagent", "example_shell"} <= set(got["agents"])
    assert all(Path(p).is_relative_to(installed) for p in got["agents"].values()), got["agents"]
    assert got["entries"]["scripted"] and got["entries"]["example_shell"] is None
    assert Path(got["artifacts"][0]).is_relative_to(installed), got["artifacts"]
    assert {"arith-v1", "textworld-v3"} <= set(got["artifacts"][1])   # shipped, hashes verified
    assert got["kinds"][:2] == ["local", "none"] and "hidden_splits_unreachable" in got["checks"]
    # the console entry point's module runs from there too
    res = _run([sys.executable, "-m", "autorl_gym.cli.main", "list", "--json"], cwd=outside,
               env={**_outside_env(installed), "COLUMNS": "200"})
    assert sorted(s["id"] for s in json.loads(res.stdout)["scenarios"]) == ids
