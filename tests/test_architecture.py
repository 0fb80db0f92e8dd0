"""The package's layout as rules: the import-linter contracts hold (and do catch an upward import),
``import autorl_gym`` registers every scenario without loading one, and the scenario index is in
step with the files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autorl_gym.cli.main import app
from autorl_gym.scenarios.catalog import INDEX_FILE, discover, read_index, scenario_ids

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "autorl_gym"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter's own command on the package under ``root``, with ``root``'s pyproject.toml."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}, timeout=300)


def test_the_import_contracts_hold() -> None:
    res = _lint_imports(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("core/paths.py", "import autorl_gym.episode.episode", "imports only go down the layers"),
    ("grading/stats.py", "import autorl_gym.tasks.arith", "grading/ never imports a task family"),
    ("interactive/state.py", "import autorl_gym.core.paths", "interactive/ imports nothing"),
    ("server/app.py", "import autorl_gym.dashboard.app", "only cli/ composes apps"),
    ("sweep/runner.py", "import typer", "only cli/ composes apps"),
])
def test_a_broken_rule_fails_the_check(tmp_path: Path, module: str, line: str, contract: str) -> None:
    """The same contracts on a copy of the package with one forbidden import added are broken."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(PACKAGE, tmp_path / "autorl_gym",
                    ignore=shutil.ignore_patterns("__pycache__", "artifacts", "*.yaml", "*.j2"))
    target = tmp_path / "autorl_gym" / module
    target.write_text(target.read_text() + f"\n{line}  # an import this layout forbids\n")
    res = _lint_imports(tmp_path)
    assert res.returncode != 0, res.stdout
    broken = [ln for ln in res.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), res.stdout


def test_import_registers_every_scenario_without_loading_one() -> None:
    """``import autorl_gym`` reads the scenario index and no scenario file, imports no task family
    (nor torch), and still registers every id with Gymnasium."""
    probe = textwrap.dedent("""
        import json, sys
        opened = []
        def hook(event, args):
            if event == "open" and isinstance(args[0], str) and args[0].endswith((".yaml", ".yml")):
                opened.append(args[0])
        sys.addaudithook(hook)
        import gymnasium as gym
        import autorl_gym
        ids = sorted(i for i in gym.registry if i.startswith("AutoRL-"))
        heavy = ("autorl_gym.tasks", "autorl_gym.micro", "torch", "transformers")
        loaded = sorted(m for m in sys.modules if m.startswith(heavy))
        print(json.dumps({"opened": opened, "ids": ids, "loaded": loaded}))
    """)
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": "/tmp"})
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen["opened"] == [str(PACKAGE / "scenarios" / INDEX_FILE)]
    assert seen["loaded"] == []
    assert seen["ids"] == sorted(read_index(PACKAGE / "scenarios"))


def test_making_a_scenario_loads_and_validates_only_it() -> None:
    probe = textwrap.dedent("""
        import json, sys
        from autorl_gym.scenarios.catalog import get_scenario
        sc = get_scenario("AutoRL-Micro-Arith-v0")
        print(json.dumps({"family": sc.task_family,
                          "tasks": sorted(m for m in sys.modules if m.startswith("autorl_gym.tasks."))}))
    """)
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": "/tmp"})
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen["family"] == "arith"
    # the arith family and the module it builds on (qa), no other family
    assert seen["tasks"] == ["autorl_gym.tasks.arith", "autorl_gym.tasks.qa"]


def test_the_index_names_every_shipped_scenario_file() -> None:
    folder = PACKAGE / "scenarios"
    loaded = discover([folder])
    assert not loaded.errors
    assert read_index(folder) == {sid: sc.source_file.name for sid, sc in loaded.scenarios.items()}
    assert scenario_ids([folder]) == {sid: sc.source_file for sid, sc in loaded.scenarios.items()}


def test_a_folder_without_an_index_is_read_for_its_ids(tmp_path: Path) -> None:
    src = (PACKAGE / "scenarios" / "micro_arith.yaml").read_text()
    (tmp_path / "mine.yaml").write_text(src.replace("AutoRL-Micro-Arith-v0", "AutoRL-Mine-v3"))
    (tmp_path / "broken.yaml").write_text("id: AutoRL-Broken-v0\ntask_family: nosuchfamily\n")
    ids = scenario_ids([tmp_path])
    assert ids == {"AutoRL-Mine-v3": tmp_path / "mine.yaml", "AutoRL-Broken-v0": tmp_path / "broken.yaml"}


def test_check_reports_a_broken_file_and_a_stale_index(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken scenario file is registered by id at import but refused, with its file and field
    named, by ``autorl-gym check`` and when it is made."""
    from autorl_gym.core.scenario import ScenarioError
    from autorl_gym.scenarios.catalog import catalog, get_scenario

    (tmp_path / "broken.yaml").write_text("id: AutoRL-Broken-v0\ntitle: x\nlevel: 1\n"
                                          "task_family: nosuchfamily\n")
    (tmp_path / INDEX_FILE).write_text("AutoRL-Other-v0: other.yaml\n")
    monkeypatch.setenv("AUTORL_GYM_SCENARIOS", str(tmp_path))
    try:
        res = CliRunner().invoke(app, ["check"])
        assert res.exit_code == 1
        assert "broken.yaml" in res.output and "index.yaml: does not match" in res.output
        with pytest.raises(ScenarioError, match="broken.yaml"):
            get_scenario("AutoRL-Broken-v0")
    finally:
        monkeypatch.delenv("AUTORL_GYM_SCENARIOS")
        catalog(refresh=True)
