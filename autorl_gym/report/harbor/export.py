"""``autorl-gym export harbor SCENARIO OUT_DIR``: a scenario as a Harbor task folder.

::

    OUT_DIR/<task>/
      task.toml            separate verifier, artifacts, the scenario's resources and budget
      instruction.md       our task text and instructions, with the grading sidecar's address
      environment/
        Dockerfile         the agent's image: base model and train split only, user `agent`
        docker-compose.yaml  `main` and the `grader` sidecar on an internal network (no other
                           network), the shared `output` volume (read-only in the sidecar)
        workspace/         model/ and data/: the base model and the train split
        grader/            the sidecar's image: the package, the base model, the dev split
      tests/
        Dockerfile         the verifier's image: the package, the base model, the test split
        docker-compose.yaml  the verifier's container with Docker's init (every service has it:
                           a stop ends them at once), its build network when one is named
        test.sh            grades the ledger's best submission on test, writes reward.json
      solution/
        solve.sh           the scripted recipe (SFT), submitted to the sidecar: Harbor's oracle

The hidden splits are each in one image only: dev in the sidecar's, test in the verifier's,
neither in the agent's (``tests/test_harbor_export.py`` builds the agent's image and scans it).
Every ``FROM`` names ``base_image``; the default is a public image pinned by digest, as Harbor's
linter asks; tests pass a locally built one, since no registry is reachable where they run.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
from pathlib import Path

import yaml

from autorl_gym.core.family import family_of, resolve_assets
from autorl_gym.core.paths import PACKAGE_DIR
from autorl_gym.core.scenario import Scenario, ScenarioError
from autorl_gym.episode.workspace import instructions_text, task_text
from autorl_gym.runtime.cpu_threads import CPU_THREAD_DEFAULTS
from autorl_gym.scenarios.catalog import get_scenario

__all__ = ["DEFAULT_BASE_IMAGE", "HarborExportError", "export_dataset", "export_task", "task_name"]

#: CUDA PyTorch 2.6.0 with Python 3.11, pinned by digest (Harbor's linter refuses a moving tag)
DEFAULT_BASE_IMAGE = ("pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime@sha256:"
                      "77f17f843507062875ce8be2a6f76aa6aa3df7f9ef1e31d9d7432f4b0f563dee")
#: what the agent's image installs over the base (its training stack), pinned to this machine's
AGENT_DISTS = ("transformers", "tokenizers", "safetensors", "accelerate", "datasets", "peft", "trl")
#: what the grader's images install: the training stack and what grading imports
GRADER_DISTS = (*AGENT_DISTS, "pydantic", "PyYAML", "gymnasium", "numpy", "scipy", "pandas",
                "jinja2", "psutil", "filelock", "httpx", "rich", "starlette", "python-multipart",
                # imported on the grading path through others' optional imports (anyio, requests,
                # pandas), which their own requirements do not name
                "sniffio", "charset-normalizer", "pytz")
GRADER_PORT = 8000
STATE_DIR = "/var/lib/autorl-grading"      # the sidecar's ledger and pinned snapshots
OPT = "/opt/autorl"                        # package, scenario, base model, the one split
SCRIPTED_DIR = PACKAGE_DIR / "agents" / "scripted"   # the oracle's recipe (files, not imports)
# package files that never go into an image: shipped micro assets (hidden splits among them)
_PACKAGE_SKIP = ("__pycache__", "*.pyc", "artifacts")
STATIC_FAMILIES_KIND = "static"


class HarborExportError(RuntimeError):
    """The scenario cannot be exported; the message says why."""


def task_name(scenario: Scenario) -> str:
    """Harbor's package name for a scenario: ``autorl-gym/<id in lower case>``."""
    return "autorl-gym/" + scenario.id.lower()


def _pins(dists: tuple[str, ...]) -> str:
    lines = []
    for d in dists:
        try:
            lines.append(f"{d}=={importlib.metadata.version(d)}")
        except importlib.metadata.PackageNotFoundError as e:
            raise HarborExportError(f"{d} is not installed here; its version pins the image") from e
    return "\n".join(lines) + "\n"


def _copy_package(dest: Path) -> None:
    shutil.copytree(PACKAGE_DIR, dest / "autorl_gym", symlinks=False,
                    ignore=shutil.ignore_patterns(*_PACKAGE_SKIP))


def _copy_model(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, symlinks=False)


def _scenario_yaml(scenario: Scenario) -> str:
    raw = scenario.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(raw, sort_keys=False)


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _task_toml(scenario: Scenario, base_image: str, agent_internet: bool) -> str:
    s = scenario.sandbox
    env_lines = [f"build_timeout_sec = {1800.0}", 'workdir = "/workspace"',
                 f"memory_mb = {s.memory_mb}"]
    if s.cpus:
        env_lines.append(f"cpus = {s.cpus:g}")
    if s.gpus:
        count = len(s.gpus.split(",")) if s.gpus not in ("all",) else 1
        env_lines.append(f"gpus = {count}")
    keywords = ", ".join(_toml_str(k) for k in ("autorl-gym", "post-training", scenario.task_family))
    return f"""# Exported by autorl-gym from {scenario.id}: `autorl-gym export harbor {scenario.id} OUT_DIR`.
# The verifier is separate (its own image, tests/Dockerfile, the test split only): the agent's
# container never holds a hidden split and cannot write the reward.
schema_version = "1.4"

[task]
name = {_toml_str(task_name(scenario))}
version = "{scenario.version}"
description = {_toml_str(scenario.title)}
keywords = [{keywords}]

[metadata]
scenario = {_toml_str(scenario.id)}
task_family = {_toml_str(scenario.task_family)}
metric = {_toml_str(scenario.metric)}
feedback_split = {_toml_str(scenario.feedback_split)}
max_submissions = {scenario.budget.max_submissions}
grading_sidecar = "http://grader:{GRADER_PORT}"
base_image = {_toml_str(base_image)}
agent_internet = {str(agent_internet).lower()}

[agent]
timeout_sec = {scenario.budget.seconds:g}
user = "agent"

[verifier]
environment_mode = "separate"
timeout_sec = {scenario.grader.timeout_s:g}

[environment]
{chr(10).join(env_lines)}

# the agent's output and code, and the sidecar's ledger and pinned snapshots (collected from the
# sidecar, where the agent cannot write): the verifier grades the snapshots
[[artifacts]]
source = "/workspace/output"

[[artifacts]]
source = "/workspace/code"

[[artifacts]]
source = "{STATE_DIR}"
service = "grader"
"""


def _instruction(scenario: Scenario) -> str:
    b = scenario.budget
    return (task_text(scenario) + "\n"
            + instructions_text(scenario, b.seconds, b.max_steps, b.max_submissions)
            + f"""
## On Harbor

Your working folder is `/workspace`: `model/` (the base model, read-only), `data/` (the train
split), `code/` (yours), `output/` (save models here). Submit a model folder for feedback on the
hidden {scenario.feedback_split} split with

    curl -s -X POST http://grader:{GRADER_PORT}/submit -H 'Content-Type: application/json' \\
         -d '{{"model_path": "output/v1"}}'

(or Python's urllib: the answer is JSON with `score`, `baseline`, `improvement` and `best`;
`GET http://grader:{GRADER_PORT}/health` says how many submissions are left, of
{b.max_submissions}). When the episode ends, the submission that scored best on that split is
graded once on the hidden test split; the reward is its score minus the base model's, in points.
Only submitted models count: the bytes graded are those taken at submit.
""")


def _env_words(env: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in env.items())


def _agent_dockerfile(base_image: str) -> str:
    # the container's commands run torch as the sandbox's do (autorl_gym.runtime.cpu_threads)
    return f"""# The agent's container: the base model and the train split, nothing hidden (the grading
# sidecar and the verifier are separate images, built from their own folders).
FROM {base_image}
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \\
    {_env_words(CPU_THREAD_DEFAULTS)}
COPY requirements.txt /tmp/requirements.txt
RUN python -m pip install -r /tmp/requirements.txt && useradd -m -u 1000 agent \\
    && mkdir -p /workspace/code /workspace/output \\
    && chown agent /workspace /workspace/code /workspace/output
COPY workspace /workspace
USER agent
WORKDIR /workspace
"""


def _grader_dockerfile(base_image: str, split: str, tag: str) -> str:
    # the verifier's image owns /tests/test.sh (Harbor runs a bundled verifier's own script)
    extra = (f" \\\n    && mkdir -p /tests /logs/verifier && cp {OPT}/test.sh /tests/test.sh"
             if split == "test" else
             # the shared output volume takes this folder's owner if the sidecar mounts it first
             " \\\n    && mkdir -p /workspace/output && chown 1000:1000 /workspace/output")
    return f"""# The {tag}: this package, the scenario, the base model and the {split} split only.
FROM {base_image}
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \\
    HF_DATASETS_OFFLINE=1 PYTHONPATH={OPT}/pkg AUTORL_GYM_CACHE=/tmp/autorl-cache
COPY . {OPT}
RUN python -m pip install -r {OPT}/requirements.txt{extra}
"""


def _build_network(build_network: str | None) -> dict[str, str]:
    return {"network": build_network} if build_network else {}


def _compose(agent_internet: bool, build_network: str | None) -> str:
    networks = ["grading", "default"] if agent_internet else ["grading"]
    # init: Docker's init (tini) as PID 1 passes SIGTERM on, so `docker compose stop` ends the
    # services at once (Harbor's `sleep infinity` or the grading server as PID 1 ignore it, and
    # each stop waited out Docker's 10 s grace period)
    main: dict[str, object] = {"init": True, "networks": networks,
                               "volumes": ["output:/workspace/output"],
                               "depends_on": {"grader": {"condition": "service_healthy"}}}
    if build_network:
        main["build"] = _build_network(build_network)
    doc = {
        "services": {
            "main": main,
            "grader": {
                "init": True,
                "build": {"context": "./grader", **_build_network(build_network)},
                "networks": ["grading"],
                "volumes": ["output:/workspace/output:ro"],
                "command": ["python", "-m", "autorl_gym.report.harbor.grading", "serve",
                            "--scenario", f"{OPT}/scenario.yaml", "--model", f"{OPT}/model",
                            "--split", "dev", "--split-file", f"{OPT}/dev.jsonl",
                            "--state", STATE_DIR, "--workspace", "/workspace",
                            "--port", str(GRADER_PORT)],
                "healthcheck": {
                    "test": ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen("
                             f"'http://127.0.0.1:{GRADER_PORT}/health', timeout=5)"],
                    "interval": "2s", "timeout": "10s", "retries": 60},
            },
        },
        # internal: the agent reaches the sidecar and nothing else
        "networks": {"grading": {"internal": True}},
        "volumes": {"output": {}},
    }
    head = ("# The agent (main) and the grading sidecar (dev split) on an internal network; the\n"
            "# sidecar reads the agent's output/ through a named volume, read-only.\n")
    return head + yaml.safe_dump(doc, sort_keys=False)


def _test_sh() -> str:
    return f"""#!/usr/bin/env bash
# The separate verifier: the sidecar's ledger and snapshots arrive as artifacts at {STATE_DIR};
# the ledger's best submission on dev is graded once on the test split (in this image only).
set -euo pipefail
mkdir -p /logs/verifier
exec python -m autorl_gym.report.harbor.grading verify --scenario {OPT}/scenario.yaml \\
    --model {OPT}/model --split test --split-file {OPT}/test.jsonl --state {STATE_DIR} \\
    --out /logs/verifier
"""


def _solve_sh() -> str:
    return f"""#!/usr/bin/env bash
# Harbor's oracle: autorl-gym's scripted recipe (sft): train_sft.py on the train split, then the
# model submitted to the grading sidecar for feedback (the verifier grades the best submitted).
set -euo pipefail
cd /workspace
mkdir -p code output
cp /solution/train_sft.py code/train_sft.py
MODEL_PATH=/workspace/model DATA_PATH=/workspace/data OUTPUT_DIR=/workspace/output \\
    OUTPUT_NAME=v1 python code/train_sft.py
python - <<'PY'
import json, urllib.request
req = urllib.request.Request("http://grader:{GRADER_PORT}/submit",
                             data=json.dumps({{"model_path": "output/v1"}}).encode(),
                             headers={{"Content-Type": "application/json"}})
print(urllib.request.urlopen(req, timeout=3600).read().decode())
PY
"""


def export_task(scenario_id: str, out_dir: Path, base_image: str = DEFAULT_BASE_IMAGE,
                agent_internet: bool = False, overwrite: bool = False,
                build_network: str | None = None) -> Path:
    """Write the Harbor task of ``scenario_id`` into ``out_dir/<scenario id in lower case>``;
    returns that folder. ``build_network``: the network the images build on (``none`` for an
    engine without a bridge, with a base image that already holds every pin; default: the
    engine's)."""
    try:
        scenario = get_scenario(scenario_id)
    except (ScenarioError, KeyError) as e:
        raise HarborExportError(str(e)) from e
    if family_of(scenario).kind != STATIC_FAMILIES_KIND:
        raise HarborExportError(
            f"{scenario.id}: only static (rule-graded, single-turn) scenarios export to Harbor so "
            f"far; its task family {scenario.task_family!r} is {family_of(scenario).kind}")
    assets = resolve_assets(scenario)
    if set(assets.hidden_splits) != {"dev", "test"} or not all(
            p.is_file() for p in assets.hidden_splits.values()):
        raise HarborExportError(f"{scenario.id}: its dev and test splits are not single files")
    if assets.extra_mounts or assets.bridges or assets.train_data is not None:
        raise HarborExportError(f"{scenario.id}: its sandbox needs more than data/ and model/")
    if not re.fullmatch(r"[^\s\"']+", base_image):
        raise HarborExportError(f"base image {base_image!r}: one image reference, no spaces")
    task = out_dir / scenario.id.lower()
    if task.exists():
        if not overwrite:
            raise HarborExportError(f"{task} exists; pass overwrite=True (--force) to replace it")
        shutil.rmtree(task)
    env, tests, solution = task / "environment", task / "tests", task / "solution"
    for d in (env / "grader", tests, solution):
        d.mkdir(parents=True)
    (task / "task.toml").write_text(_task_toml(scenario, base_image, agent_internet))
    (task / "instruction.md").write_text(_instruction(scenario))
    # the agent's image: model and train split only
    (env / "Dockerfile").write_text(_agent_dockerfile(base_image))
    (env / "requirements.txt").write_text(_pins(AGENT_DISTS))
    (env / "docker-compose.yaml").write_text(_compose(agent_internet, build_network))
    verifier: dict[str, object] = {"init": True}
    if build_network:
        verifier["build"] = _build_network(build_network)
    (tests / "docker-compose.yaml").write_text(
        "# the verifier's container: Docker's init as PID 1 (it stops at once); the network its\n"
        "# image builds on, when one is named\n" + yaml.safe_dump({"services": {"main": verifier}}))
    _copy_model(assets.base_model_dir, env / "workspace" / "model")
    shutil.copytree(assets.train_dir, env / "workspace" / "data", symlinks=False)
    # the sidecar (dev) and the verifier (test): one hidden split each
    for folder, split, what in ((env / "grader", "dev", "grading sidecar"),
                                (tests, "test", "separate verifier")):
        (folder / "Dockerfile").write_text(_grader_dockerfile(base_image, split, what))
        (folder / "requirements.txt").write_text(_pins(GRADER_DISTS))
        (folder / "scenario.yaml").write_text(_scenario_yaml(scenario))
        _copy_package(folder / "pkg")
        _copy_model(assets.base_model_dir, folder / "model")
        shutil.copyfile(assets.hidden_splits[split], folder / f"{split}.jsonl")
    (tests / "test.sh").write_text(_test_sh())
    (tests / "test.sh").chmod(0o755)
    (solution / "solve.sh").write_text(_solve_sh())
    (solution / "solve.sh").chmod(0o755)
    shutil.copyfile(SCRIPTED_DIR / "train_sft.py", solution / "train_sft.py")
    return task


def export_dataset(scenario_ids: list[str], out_dir: Path, base_image: str = DEFAULT_BASE_IMAGE,
                   agent_internet: bool = False, overwrite: bool = False,
                   build_network: str | None = None) -> list[Path]:
    """One task folder per scenario under ``out_dir``: a local Harbor dataset (``harbor run -p
    OUT_DIR`` runs every task in it; ``harbor publish`` pins their digests in its manifest)."""
    if len(set(scenario_ids)) != len(scenario_ids):
        raise HarborExportError("a scenario is named twice")
    out_dir.mkdir(parents=True, exist_ok=True)
    return [export_task(s, out_dir, base_image, agent_internet, overwrite, build_network)
            for s in scenario_ids]
