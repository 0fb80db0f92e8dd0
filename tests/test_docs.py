"""The documentation cannot drift: the site builds with ``mkdocs build --strict`` (its reference
pages generated from the package), every Python and shell block of docs/ and README.md runs as
written or is marked not run with a reason (tests/docs_blocks.py), and the README's three commands
are the ones CI runs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from docs_blocks import ROOT, Block, MarkupError, all_blocks, blocks_of, readme_commands

BLOCKS = all_blocks()
RUN = [b for b in BLOCKS if b.run]
BIN = Path(sys.executable).parent  # the venv's python and autorl-gym


def _params(blocks: list[Block]) -> list:
    return [pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.slow else []) for b in blocks]


def block_env() -> dict[str, str]:
    """The user's shell: this venv first on PATH, this checkout importable, a wide console."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": path, "COLUMNS": "160"}


def run_block(block: Block, cwd: Path) -> subprocess.CompletedProcess[str]:
    for name, content in block.files:
        (cwd / name).write_text(content)
    if block.lang == "python":
        script = cwd / "block.py"
        script.write_text(block.code)
        cmd = [sys.executable, script.name]
    else:
        script = cwd / "block.sh"
        script.write_text(block.code)
        cmd = ["bash", "-e", "-o", "pipefail", script.name]
    return subprocess.run(cmd, cwd=cwd, env=block_env(), capture_output=True, text=True,
                          timeout=1800 if block.slow else 600)


@pytest.mark.parametrize("block", _params(RUN))
def test_docs_code_block_runs(block: Block, tmp_path: Path, micro_assets) -> None:
    """Each block as a user runs it: a script file (python) or bash -e, in a fresh folder."""
    proc = run_block(block, tmp_path)
    assert proc.returncode == 0, (f"{block.id} exited {proc.returncode}\n--- code ---\n{block.code}"
                                  f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n"
                                  f"{proc.stderr[-3000:]}")
    print(proc.stdout[-2000:])  # pytest -s / -rP shows what the block printed


def test_every_code_block_is_run_or_marked_with_a_reason() -> None:
    assert RUN, "no docs code block runs"
    for block in BLOCKS:
        assert block.run or len(block.reason) > 10, f"{block.id}: say why it is not run"


def test_a_malformed_marker_or_unclosed_fence_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- notrun because -->\n```bash\ntrue\n```\n")
    blocks = blocks_of(page)  # not a marker at all: the block runs
    assert len(blocks) == 1 and blocks[0].run
    page.write_text("<!-- not run -->\n```bash\ntrue\n```\n")
    with pytest.raises(MarkupError, match="malformed marker"):
        blocks_of(page)
    page.write_text("<!-- not run: needs a GPU -->\n\n```python\nimport vllm\n```\n```text\nx\n```\n")
    (block,) = blocks_of(page)
    assert not block.run and block.reason == "needs a GPU"
    page.write_text("<!-- file: a.yaml -->\n```yaml\nx: 1\n```\n```bash\ncat a.yaml\n```\n")
    (block,) = blocks_of(page)
    assert block.run and block.files == (("a.yaml", "x: 1\n"),)
    page.write_text("```bash\ntrue\n")
    with pytest.raises(MarkupError, match="never closed"):
        blocks_of(page)


def test_readme_commands_are_what_ci_and_the_episode_test_run() -> None:
    """1 and 3 are .ci/run's install and test command; 2 is what tests/test_episode.py runs
    (through conftest's readme_episode fixture)."""
    setup, episode, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    installs = [c.strip() for c in setup.split("&&")]
    assert installs[0] == "python -m venv .venv" and "python3 -m venv .venv" in ci
    for pip in installs[2:]:
        words = shlex.split(pip)
        assert words[:2] == ["pip", "install"], pip
        ci_line = f"python -m pip install -q {shlex.join(words[2:])}".replace("'", '"')
        assert ci_line in ci, f"README installs {pip!r}; .ci/run has no {ci_line!r}"
    assert re.search(rf"^{re.escape(tests)}( |$)", ci, re.M), f".ci/run does not run {tests!r}"
    assert episode == "autorl-gym run --env AutoRL-Micro-Arith-v0 --agent scripted"
    assert "readme_commands()[1]" in (ROOT / "tests" / "conftest.py").read_text()
    assert "readme_episode" in (ROOT / "tests" / "test_episode.py").read_text()


def test_readme_scenario_table_lists_every_shipped_scenario() -> None:
    from autorl_gym.core.paths import PACKAGE_DIR
    from autorl_gym.scenarios.catalog import discover

    readme = (ROOT / "README.md").read_text()
    table = set(re.findall(r"^\| `(AutoRL-[\w-]+-v\d+)` \|", readme, re.M))
    assert table == set(discover([PACKAGE_DIR / "scenarios"]).scenarios)


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """The site builds with every warning an error; the generated reference pages are there."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, env={**block_env(), "NO_MKDOCS_2_WARNING": "1"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    print(f"\nmkdocs build --strict: {time.perf_counter() - start:.1f} s")
    site = tmp_path / "site"
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert "autorl-gym run" in cli and "--agent-option" in cli
    assert "AUTORL_GYM_CACHE" in (site / "reference" / "environment" / "index.html").read_text()
    assert "task_family" in (site / "reference" / "scenario-yaml" / "index.html").read_text()
    assert (site / "scenarios" / "AutoRL-Micro-Arith-v0" / "index.html").is_file()
    api = site / "reference" / "api"
    assert "make_agent" in (api / "autorl_gym.agents.spec" / "index.html").read_text()
    assert "unknown_message" in (api / "autorl_gym.core.registry" / "index.html").read_text()
    home = (site / "index.html").read_text()  # the nav: every security page, every scenario page
    for page in (ROOT / "docs" / "security").glob("*.md"):
        target = "security/" if page.stem == "index" else f"security/{page.stem}/"
        assert f'href="{target}"' in home, f"{page.name} is not in the nav"
    for scenario in (site / "scenarios").iterdir():
        assert f'href="scenarios/{scenario.name}/"' in home
