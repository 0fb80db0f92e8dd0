"""``autorl-gym export harbor``: the task folder against Harbor's own models and linter (Harbor
runs in its own Python 3.12 venv, ``HARBOR_VENV``, made by ``.ci/harbor``), the hidden splits'
places, the agent's image scanned for hidden items, and (slow) the oracle under ``harbor run``
on local Docker against ``autorl-gym run --agent scripted``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import ReadmeEpisode, skip_or_fail_without_docker
from typer.testing import CliRunner

from autorl_gym.cli.main import app
from autorl_gym.core.family import resolve_assets
from autorl_gym.report.harbor import DEFAULT_BASE_IMAGE, HarborExportError, export_task
from autorl_gym.report.harbor.export import GRADER_DISTS
from autorl_gym.scenarios.catalog import get_scenario

sys.path.insert(0, str(Path(__file__).parent))
from harbor_base import ensure_local_base  # noqa: E402

SCENARIO = "AutoRL-Micro-Arith-v0"
HARBOR_VENV = Path(os.environ.get("HARBOR_VENV", Path(__file__).resolve().parents[1] / ".venv-harbor"))
HARBOR_PY = HARBOR_VENV / "bin" / "python"


def _harbor() -> Path:
    if not HARBOR_PY.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"Harbor must be installed in CI (.ci/harbor): no {HARBOR_PY}")
        pytest.skip(f"Harbor is not installed at {HARBOR_VENV} (run .ci/harbor)")
    return HARBOR_PY


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_task(SCENARIO, tmp_path_factory.mktemp("harbor"))


def _hidden_items(split: str) -> list[str]:
    path = resolve_assets(get_scenario(SCENARIO)).hidden_splits[split]
    return [json.loads(line)["question"] for line in path.read_text().splitlines() if line.strip()]


def test_task_toml_loads_with_harbors_parser(task: Path) -> None:
    code = """
import json, sys
from pathlib import Path
from harbor.models.task.task import Task
from harbor.models.task.verifier_mode import resolve_verifier_environment_definition
t = Task(Path(sys.argv[1]))
c = t.config
d = resolve_verifier_environment_definition(c, t.paths)
print(json.dumps({"name": c.task.name, "mode": c.verifier.environment_mode.value,
  "user": c.agent.user, "agent_timeout": c.agent.timeout_sec, "memory_mb": c.environment.memory_mb,
  "workdir": c.environment.workdir, "verifier_dir": str(d.directory), "bundled": d.bundled_tests,
  "artifacts": [[a.source, a.service] for a in c.artifacts], "instruction": t.instruction[:200]}))
"""
    out = subprocess.run([str(_harbor()), "-c", code, str(task)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    scenario = get_scenario(SCENARIO)
    assert cfg["name"] == "autorl-gym/autorl-micro-arith-v0"
    assert cfg["mode"] == "separate" and cfg["bundled"] and cfg["verifier_dir"] == str(task / "tests")
    assert cfg["user"] == "agent"
    assert cfg["agent_timeout"] == scenario.budget.seconds
    assert cfg["memory_mb"] == scenario.sandbox.memory_mb
    assert cfg["workdir"] == "/workspace"
    assert ["/workspace/output", None] in cfg["artifacts"]
    assert ["/var/lib/autorl-grading", "grader"] in cfg["artifacts"]
    assert scenario.title in cfg["instruction"]


def test_harbor_lint_select_all_is_clean(task: Path) -> None:
    harbor = _harbor().parent / "harbor"
    out = subprocess.run([str(harbor), "lint", "--select", "ALL", "--json", str(task)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout) == []
    assert f"FROM {DEFAULT_BASE_IMAGE}" in (task / "environment" / "Dockerfile").read_text()


def test_harbor_lint_catches_what_it_should(task: Path, tmp_path: Path) -> None:
    """The linter is not blind here: a shared verifier, a root agent and a moving tag fail it."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(task, bad)
    toml = (bad / "task.toml").read_text()
    toml = toml.replace('environment_mode = "separate"', 'environment_mode = "shared"')
    toml = toml.replace('user = "agent"', 'user = "root"')
    (bad / "task.toml").write_text(toml)
    df = bad / "environment" / "Dockerfile"
    df.write_text(df.read_text().replace(DEFAULT_BASE_IMAGE, "python:3.11"))
    harbor = _harbor().parent / "harbor"
    out = subprocess.run([str(harbor), "lint", "--select", "ALL", "--json", str(bad)],
                         capture_output=True, text=True, timeout=120)
    rules = {f["rule"] for f in json.loads(out.stdout)}
    assert {"shared-verifier", "root-agent", "unpinned-image"} <= rules


def test_every_container_runs_dockers_init(task: Path) -> None:
    """Harbor's ``sleep infinity`` and the grading server as PID 1 ignore SIGTERM: without an init,
    each ``docker compose stop`` of a trial (the agent's before the sidecar's evidence is taken,
    then all of them) waited out Docker's 10 s grace period."""
    import yaml

    env = yaml.safe_load((task / "environment" / "docker-compose.yaml").read_text())
    verifier = yaml.safe_load((task / "tests" / "docker-compose.yaml").read_text())
    assert {name: svc.get("init") for name, svc in env["services"].items()} == \
        {"main": True, "grader": True}
    assert verifier["services"]["main"]["init"] is True


def test_hidden_splits_each_in_one_image_context(task: Path) -> None:
    dev, test = _hidden_items("dev"), _hidden_items("test")
    files = {p.relative_to(task).as_posix(): p for p in task.rglob("*") if p.is_file()}
    assert [f for f in files if f.endswith("dev.jsonl")] == ["environment/grader/dev.jsonl"]
    assert [f for f in files if f.endswith("test.jsonl")] == ["tests/test.jsonl"]
    agent_files = [p for f, p in files.items() if f.startswith("environment/workspace/")]
    blob = b"".join(p.read_bytes() for p in agent_files)
    assert not [q for q in dev + test if q.encode() in blob]
    agent_df = (task / "environment" / "Dockerfile").read_text()
    assert "grader" not in agent_df and "jsonl" not in agent_df
    assert not any("/tests" in line for line in agent_df.splitlines() if line.startswith("COPY"))


def test_cli_exports_a_dataset_and_refuses_an_interactive_scenario(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["export", "harbor", SCENARIO, str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ds" / "autorl-micro-arith-v0" / "task.toml").is_file()
    res = CliRunner().invoke(app, ["export", "harbor", SCENARIO, str(tmp_path / "ds")])
    assert res.exit_code == 2 and "exists" in res.output
    with pytest.raises(HarborExportError, match="static"):
        export_task("AutoRL-Micro-TextWorld-v0", tmp_path / "tw")


# --------------------------------------------------------------------------- docker
@pytest.fixture(scope="module")
def local_base(docker_problem: str | None, tmp_path_factory: pytest.TempPathFactory) -> str:
    import docker

    if docker_problem:
        skip_or_fail_without_docker(docker_problem)
    return ensure_local_base(docker.from_env(), list(GRADER_DISTS), tmp_path_factory.mktemp("base"))


def _build(context: Path, tag: str) -> float:
    started = time.time()
    out = subprocess.run(["docker", "build", "--network", "none", "-t", tag, str(context)],
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return time.time() - started


def test_agent_image_holds_no_hidden_item(local_base: str, tmp_path: Path) -> None:
    """Build the exported agent image and scan every file of it: no dev or test question is in
    it, while the train split is (the scan can find what is there)."""
    task = export_task(SCENARIO, tmp_path, base_image=local_base)
    tag = "autorl-gym/harbor-agent-scan:test"
    seconds = _build(task / "environment", tag)
    cid = subprocess.run(["docker", "create", tag], capture_output=True, text=True,
                         check=True).stdout.strip()
    import ahocorasick  # every item at once: 600 `in` scans cost ~13 s per 100 MB, this ~2 s

    train_path = resolve_assets(get_scenario(SCENARIO)).train_dir / "train.jsonl"
    train_q = json.loads(train_path.read_text().splitlines()[0])["question"]
    matcher = ahocorasick.Automaton()
    for q in _hidden_items("dev") + _hidden_items("test"):
        matcher.add_word(q.encode().decode("latin-1"), q[:40])  # latin-1: one char per byte
    matcher.add_word(train_q.encode().decode("latin-1"), None)
    matcher.make_automaton()
    found_hidden: list[str] = []
    found_train = False
    names: list[str] = []
    size = 0
    # the image's files streamed from `docker export` (1.4 GB: never written to disk)
    export = subprocess.Popen(["docker", "export", cid], stdout=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
            for member in tar:
                names.append(member.name)
                if not member.isfile():
                    continue
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                size += len(data)
                for _end, item in matcher.iter(data.decode("latin-1")):
                    if item is None:
                        found_train = True
                    else:
                        found_hidden.append(f"{member.name}: {item!r}")
    finally:
        export.stdout.close()  # type: ignore[union-attr]
        rc = export.wait()
        subprocess.run(["docker", "rm", cid], capture_output=True)
        subprocess.run(["docker", "rmi", tag], capture_output=True)  # 1.4 GB under vfs
    assert rc == 0, f"docker export exited {rc}"
    print(f"agent image: {size / 1e6:.0f} MB of files, built in {seconds:.0f} s")
    assert found_train, "the scan did not find the train split: it cannot see files"
    assert not found_hidden, found_hidden[:5]
    assert not [n for n in names if n.endswith(("dev.jsonl", "test.jsonl"))]
    assert not [n for n in names if "autorl_gym" in n], "the grader's package is in the agent image"


def test_the_grading_images_pin_everything_the_container_code_imports() -> None:
    """The sidecar's and verifier's ``python -m autorl_gym.report.harbor.grading`` imports only
    distributions that their requirements.txt pins or that those pull in."""
    import importlib.metadata as md

    from harbor_base import _closure

    code = ("import sys; before = set(sys.modules); import autorl_gym.report.harbor.grading, "
            "autorl_gym.grading.worker; print(' '.join(sorted({m.split('.')[0] for m in sys.modules}"
            " - {m.split('.')[0] for m in before})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    dists = md.packages_distributions()
    needed = {d.lower().replace("_", "-") for m in out.stdout.split() for d in dists.get(m, [])}
    pinned = {d.metadata["Name"].lower().replace("_", "-") for d in _closure(list(GRADER_DISTS))}
    assert needed - pinned - {"autorl-gym"} == set()


@pytest.mark.slow
def test_oracle_under_harbor_run_matches_autorl_gym_run(local_base: str, tmp_path: Path,
                                                        readme_episode: ReadmeEpisode) -> None:
    """Harbor's oracle (the scripted sft recipe) on local Docker: its reward is our improvement,
    and it lies within the bootstrap interval of `autorl-gym run --agent scripted`'s (the README's
    command, run once for the session), and the other way round."""
    task = export_task(SCENARIO, tmp_path / "tasks", base_image=local_base, build_network="none")
    harbor = _harbor().parent / "harbor"
    started = time.time()
    out = subprocess.run([str(harbor), "run", "-p", str(task), "-a", "oracle", "-e", "docker",
                          "-o", str(tmp_path / "jobs"), "-n", "1"], capture_output=True,
                         text=True, timeout=5400, cwd=tmp_path)
    harbor_s = time.time() - started
    rewards = sorted((tmp_path / "jobs").rglob("verifier/reward.json"))
    assert rewards, out.stdout[-3000:] + out.stderr[-3000:]
    reward = json.loads(rewards[0].read_text())
    feedback = json.loads((rewards[0].parent / "feedback.json").read_text())
    assert feedback["chosen"]["id"] == 1 and reward["reward"] == reward["improvement"]
    assert readme_episode.proc.returncode == 0, readme_episode.proc.stderr[-3000:]
    ours = readme_episode.feedback()
    print(f"harbor oracle: {reward} in {harbor_s:.0f} s; autorl-gym run: {ours['elapsed_s']:.0f} s")
    assert reward["baseline"] == pytest.approx(ours["baseline"])
    assert reward["ci_low"] <= ours["improvement"] <= reward["ci_high"]
