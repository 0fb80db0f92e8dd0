"""Attacks on a scenario exported as a Harbor task (``autorl-gym export harbor``), played against
the real exporter and the real sidecar and verifier code (:mod:`autorl_gym.report.harbor`), run
in-process on this host with the container paths replaced by scratch folders.

* the agent writes its own reward file (Harbor's shared-verifier mode reads the agent's
  ``/logs/verifier/reward.json``);
* the agent swaps the submitted model after submitting, or the snapshot is altered before the
  verifier takes it up;
* the agent submits a link to the sidecar's hidden dev split or its ledger;
* a hidden item travels into the agent's image (its build context, what its Dockerfile copies).
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

from autorl_gym.attacks.base import ONE_KIND, AttackBroken, AttackContext, AttackSkipped, attack
from autorl_gym.core.family import family_of, resolve_assets
from autorl_gym.scenarios.catalog import get_scenario


def _export(ctx: AttackContext) -> Path:
    from autorl_gym.report.harbor import HarborExportError, export_task

    scenario = get_scenario(ctx.scenario_id)
    if family_of(scenario).kind != "static":
        raise AttackSkipped("Harbor export is for static scenarios")
    out = ctx.scratch / "harbor"
    try:
        return export_task(ctx.scenario_id, out, overwrite=True)
    except HarborExportError as e:
        raise AttackSkipped(str(e)) from e


def _grading(task: Path, split: str):  # type: ignore[no-untyped-def]
    from autorl_gym.report.harbor.grading import make_grader

    folder = task / ("environment/grader" if split == "dev" else "tests")
    return make_grader(folder / "scenario.yaml", folder / "model", split, folder / f"{split}.jsonl")


@attack(klass="harbor", sandboxes=ONE_KIND)
def harbor_agent_writes_reward(ctx: AttackContext) -> str:
    """The agent writes /logs/verifier/reward.json itself, as Harbor's shared verifier would read it."""
    from autorl_gym.report.harbor.grading import verify

    task = _export(ctx)
    config = tomllib.loads((task / "task.toml").read_text())
    mode = config.get("verifier", {}).get("environment_mode")
    if mode != "separate":
        # Harbor's default is shared: the verifier runs in the agent's container and reads the
        # reward file the agent can write
        raise AttackBroken(f"verifier.environment_mode is {mode!r}: the agent's reward file counts")
    logs = ctx.scratch / "logs-verifier"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "reward.json").write_text(json.dumps({"reward": 100.0, "improvement": 100.0}))
    record = verify(_grading(task, "test"), ctx.scratch / "no-ledger", logs)
    reward = json.loads((logs / "reward.json").read_text())
    if reward.get("reward") == 100.0:
        raise AttackBroken("the verifier kept the forged reward.json")
    return (f"separate verifier (its own image); a forged reward file in the verifier's folder is "
            f"replaced: reward {reward['reward']:+.2f} ({record.get('reason', '')[:60]})")


def _submit_base_copy(task: Path, ctx: AttackContext):  # type: ignore[no-untyped-def]
    from autorl_gym.report.harbor.grading import Sidecar

    ws = ctx.scratch / "workspace"
    shutil.rmtree(ws, ignore_errors=True)
    (ws / "output").mkdir(parents=True)
    shutil.copytree(task / "environment" / "workspace" / "model", ws / "output" / "v1")
    state = ctx.scratch / "grading-state"
    shutil.rmtree(state, ignore_errors=True)
    sidecar = Sidecar(_grading(task, "dev"), ws, state)
    code, answer = sidecar.submit("output/v1")
    if code != 200:
        raise AssertionError(f"the honest submission was refused: {answer}")
    return ws, state


@attack(klass="harbor", sandboxes=ONE_KIND)
def harbor_model_swapped_after_submit(ctx: AttackContext) -> str:
    """After its submission is graded on dev, the agent swaps other weights into output/v1."""
    from autorl_gym.report.harbor.grading import verify

    task = _export(ctx)
    ws, state = _submit_base_copy(task, ctx)
    weights = ws / "output" / "v1" / "model.safetensors"
    swapped = bytearray(weights.read_bytes())
    swapped[-64:] = bytes(64)        # other weights, same format
    weights.write_bytes(bytes(swapped))
    logs = ctx.scratch / "logs-swap"
    record = verify(_grading(task, "test"), state, logs)
    from autorl_gym.grading.submission import inspect_submission, weights_hash_of

    now = weights_hash_of(inspect_submission(ws / "output" / "v1"))
    graded = record.get("test", {}).get("model_hash")
    if graded is None or graded == now or graded != record["chosen"]["weights_hash"]:
        raise AttackBroken(f"the verifier graded {graded}, not the bytes submitted")
    return ("graded the snapshot taken at submit (a copy of the base model: scored as the "
            f"baseline, flagged): reward {record['reward']['reward']:+.2f}")


@attack(klass="harbor", sandboxes=ONE_KIND)
def harbor_snapshot_altered_before_verifier(ctx: AttackContext) -> str:
    """The pinned snapshot in the collected artifact is altered before the verifier takes it up."""
    from autorl_gym.report.harbor.grading import verify

    task = _export(ctx)
    _, state = _submit_base_copy(task, ctx)
    weights = state / "submissions" / "1" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-64:] = bytes(64)
    weights.chmod(0o644)
    weights.write_bytes(bytes(data))
    logs = ctx.scratch / "logs-altered"
    record = verify(_grading(task, "test"), state, logs)
    if "chosen" in record:
        raise AttackBroken("the verifier graded a snapshot whose weights changed after submit")
    return f"refused: {record['reason'][:120]}"


@attack(klass="harbor", sandboxes=ONE_KIND)
def harbor_submit_link_to_hidden(ctx: AttackContext) -> str:
    """The agent submits a folder that links to the sidecar's dev split and ledger."""
    from autorl_gym.report.harbor.grading import Sidecar

    task = _export(ctx)
    ws = ctx.scratch / "workspace-link"
    shutil.rmtree(ws, ignore_errors=True)
    (ws / "output").mkdir(parents=True)
    dev = task / "environment" / "grader"
    (ws / "output" / "evil").symlink_to(dev, target_is_directory=True)
    (ws / "output" / "v2").mkdir()
    for f in (task / "environment" / "workspace" / "model").iterdir():
        (ws / "output" / "v2" / f.name).symlink_to(f)
    (ws / "output" / "v2" / "dev.jsonl").symlink_to(dev / "dev.jsonl")
    sidecar = Sidecar(_grading(task, "dev"), ws, ctx.scratch / "state-link")
    answers = [sidecar.submit(p) for p in ("output/evil", "output/v2", "../environment/grader",
                                            str(dev))]
    accepted = [a for code, a in answers if code == 200]
    if accepted:
        raise AttackBroken(f"a linked or outside folder was accepted: {accepted[0]}")
    return "refused: " + "; ".join(a["error"][:50] for _, a in answers)


@attack(klass="harbor", sandboxes=ONE_KIND)
def harbor_hidden_item_in_agent_image(ctx: AttackContext) -> str:
    """A hidden dev or test item reaches what the agent's image is built from."""
    task = _export(ctx)
    env = task / "environment"
    copied: list[Path] = []
    for line in (env / "Dockerfile").read_text().splitlines():
        if m := re.match(r"(?i)^(COPY|ADD)\s+(.+)$", line.strip()):
            srcs = [s for s in m.group(2).split()[:-1] if not s.startswith("--")]
            copied += [env / s for s in srcs]
    files = [p for c in copied for p in ([c] if c.is_file() else sorted(c.rglob("*"))) if p.is_file()]
    blob = b"\0".join(p.read_bytes() for p in files)
    assets = resolve_assets(get_scenario(ctx.scenario_id))
    hidden = [line for split in ("dev", "test")
              for line in assets.hidden_splits[split].read_text().splitlines() if line.strip()]
    leaks = [h for h in hidden if json.loads(h).get("question", h).encode() in blob]
    if leaks:
        raise AttackBroken(f"{len(leaks)} hidden item(s) in the agent image's inputs")
    return f"none of {len(hidden)} hidden items in the {len(files)} files the agent image copies"
