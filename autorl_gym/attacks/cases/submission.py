"""Attacks on submissions: weights swapped after they were scored, weight files that make the
host allocate what they declare, pickles, configs that lie, and links out of the workspace.

Those that write the submission's files from the host and go through the submit tool alone (no
command in the sandbox) run once (:data:`~autorl_gym.attacks.base.ONE_KIND`): the submission
checks are the host's, the same whatever the sandbox. The link attacks make their links with a
command in the sandbox, so they run on every kind."""

from __future__ import annotations

import json
import shutil
import struct
import uuid
from pathlib import Path
from typing import Any

from autorl_gym.attacks.base import ONE_KIND, AttackBroken, AttackContext, attack


def _base_dir(ctx: AttackContext) -> Path:
    from autorl_gym.core.family import resolve_assets
    from autorl_gym.scenarios.catalog import get_scenario

    return resolve_assets(get_scenario(ctx.scenario_id), progress=False).base_model_dir


def _copy_base(ctx: AttackContext, dest: Path, perturb: float = 0.0) -> Path:
    """A copy of the base model in ``dest`` (config, tokenizer, weights); with ``perturb`` one
    norm weight is moved by that much (another model, whose score barely differs)."""
    base = _base_dir(ctx)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in base.iterdir():
        if f.is_file():
            shutil.copyfile(f, dest / f.name)
    if perturb:
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(dest / "model.safetensors"))
        key = next(k for k in sorted(tensors) if k.endswith("norm.weight"))
        tensors[key] = tensors[key].clone()
        tensors[key][0] += perturb
        save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return dest


class _GradedLog:
    """The weights hash of everything graded, per split (observation only: the episode's own
    grading runs unchanged)."""

    def __init__(self, episode: Any):
        self.graded: list[tuple[str, str]] = []
        original = episode.grading.grade

        def grade(checked: Any, split: str) -> Any:
            result = original(checked, split)
            self.graded.append((split, result.model_hash))
            return result

        episode.grading.grade = grade


def _swap_after_scored(ctx: AttackContext, first_base_copy: bool) -> str:
    with ctx.env() as env:
        _, info = env.reset(seed=0)
        ep = env.episode
        log = _GradedLog(ep)
        out = Path(info["workspace"]) / "output" / "m"
        _copy_base(ctx, out, perturb=0.0 if first_base_copy else 1e-3)
        _, _, _, _, sinfo = env.step({"tool": "submit", "model_path": "output/m"})
        sub = sinfo.get("submission") or {}
        if sub.get("error"):
            raise RuntimeError(f"the first submission was refused: {sub['error']}")
        # the agent now swaps the weights at the same path and names it at finish
        _copy_base(ctx, out, perturb=0.0 if not first_base_copy else 5e-3)
        env.step({"tool": "finish", "model_path": "output/m"})
        tests = [h for split, h in log.graded if split == "test"]
        if not tests:
            raise RuntimeError(f"nothing was graded on test: {log.graded}")
        if tests[-1] != sub["weights_hash"]:
            raise AttackBroken(f"test graded weights {tests[-1][:12]} but submission "
                               f"{sub['id']} was {sub['weights_hash'][:12]}: the swap was credited")
        return f"test graded the submitted bytes ({tests[-1][:12]}), not the swapped ones"


@attack(klass="submission", sandboxes=ONE_KIND)  # host-side files and the submit tool only
def swap_weights_after_dev_score(ctx: AttackContext) -> str:
    """Submit a model, get its dev score, then swap the weights at the same path before finish."""
    return _swap_after_scored(ctx, first_base_copy=False)


@attack(klass="submission", sandboxes=ONE_KIND)  # host-side files and the submit tool only
def swap_weights_after_base_copy_flag(ctx: AttackContext) -> str:
    """Submit a copy of the base model (flagged), then swap other weights in before finish."""
    return _swap_after_scored(ctx, first_base_copy=True)


@attack(klass="submission", sandboxes=ONE_KIND)  # host-side files and the submit tool only
def hash_cache_same_size_and_mtime(ctx: AttackContext) -> str:
    """Other bytes of the same size with the same mtime at the same path: a cache keyed on
    (path, size, mtime) returns the old hash."""
    import os

    from autorl_gym.grading.submission import check_model

    ws = ctx.scratch / "ws"
    out = ws / "output" / "m"
    _copy_base(ctx, out, perturb=1e-3)
    st = (out / "model.safetensors").stat()
    first = check_model("output/m", ws).weights_hash
    _copy_base(ctx, out, perturb=2e-3)
    if (out / "model.safetensors").stat().st_size != st.st_size:
        raise RuntimeError("the two weight files differ in size")
    os.utime(out / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns))
    second = check_model("output/m", ws).weights_hash
    if first == second:
        raise AttackBroken("other weights of the same size and mtime got the first hash")
    return "other bytes, other hash, whatever the stat says"


def _safetensors_header(tensors: dict[str, tuple[str, list[int], int]]) -> bytes:
    """A safetensors header declaring ``name -> (dtype, shape, nbytes)``, data laid end to end."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def _huge_submission(ctx: AttackContext, out: Path, declared: int, sparse: bool) -> None:
    _copy_base(ctx, out)
    n = declared // 2
    head = _safetensors_header({"model.embed_tokens.weight": ("BF16", [n // 64, 64], n * 2)})
    with open(out / "model.safetensors", "wb") as f:
        f.write(head)
        if sparse:
            f.truncate(len(head) + n * 2)  # the declared size, holding no block on disk


def _submit_and_watch_rss(ctx: AttackContext, declared: int, sparse: bool) -> str:
    import threading

    import psutil

    with ctx.env() as env:
        _, info = env.reset(seed=0)
        out = Path(info["workspace"]) / "output" / "m"
        _huge_submission(ctx, out, declared, sparse)
        proc = psutil.Process()
        rss0 = proc.memory_info().rss
        peak = [rss0]
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.01):
                peak[0] = max(peak[0], proc.memory_info().rss)

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        try:
            _, _, _, _, sinfo = env.step({"tool": "submit", "model_path": "output/m"})
        finally:
            stop.set()
            t.join()
        grew = (peak[0] - rss0) / 2**20
        sub = sinfo.get("submission") or {}
        if grew > 200:
            raise AttackBroken(f"the host process grew by {grew:.0f} MiB on a "
                               f"{'sparse ' if sparse else ''}file declaring {declared / 2**20:.0f} MiB")
        if not sub.get("error"):
            raise AttackBroken("the submission was accepted")
        return f"refused ({sub['error'][:120]}); host RSS grew {grew:.0f} MiB"


@attack(klass="submission", sandboxes=ONE_KIND)  # host-side files and the submit tool only
def sparse_safetensors_declaring_huge_tensor(ctx: AttackContext) -> str:
    """A sparse safetensors file (a few KB on disk) whose header declares a 1 GB tensor."""
    return _submit_and_watch_rss(ctx, 1 << 30, sparse=True)


@attack(klass="submission", sandboxes=ONE_KIND)  # host-side files and the submit tool only
def short_safetensors_declaring_huge_tensor(ctx: AttackContext) -> str:
    """A 4 KB safetensors file whose header declares a 1 GB tensor it does not hold."""
    return _submit_and_watch_rss(ctx, 1 << 30, sparse=False)


@attack(klass="submission", sandboxes=ONE_KIND)  # host-side files and the submit tool only
def safetensors_header_bomb(ctx: AttackContext) -> str:
    """A safetensors header of 64 MB describing a million empty tensors: parsing it would make
    the host hold millions of objects before any weight is read."""
    import threading

    import psutil

    with ctx.env() as env:
        _, info = env.reset(seed=0)
        out = Path(info["workspace"]) / "output" / "m"
        _copy_base(ctx, out)
        n = 1_000_000
        entries = ",".join(f'"t{i:07d}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'
                           for i in range(n))
        raw = ("{" + entries + "}").encode()
        raw += b" " * (-len(raw) % 8)
        (out / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
        proc = psutil.Process()
        rss0 = peak = proc.memory_info().rss
        stop = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not stop.wait(0.01):
                peak = max(peak, proc.memory_info().rss)

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        try:
            _, _, _, _, sinfo = env.step({"tool": "submit", "model_path": "output/m"})
        finally:
            stop.set()
            t.join()
        grew = (peak - rss0) / 2**20
        sub = sinfo.get("submission") or {}
        if grew > 200:
            raise AttackBroken(f"the host process grew by {grew:.0f} MiB parsing a "
                               f"{len(raw) / 2**20:.0f} MiB header")
        if not sub.get("error"):
            raise AttackBroken("the submission was accepted")
        return f"refused ({sub['error'][:100]}); host RSS grew {grew:.0f} MiB"


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return os.system, (f"touch {self.marker}",)


@attack(klass="submission", sandboxes=ONE_KIND)  # host-side files and the submit tool only
def pickle_weights_run_code(ctx: AttackContext) -> str:
    """pytorch_model.bin holding a pickle that runs a command when it is unpickled."""
    import pickle

    with ctx.env() as env:
        _, info = env.reset(seed=0)
        out = Path(info["workspace"]) / "output" / "m"
        _copy_base(ctx, out)
        (out / "model.safetensors").unlink()
        marker = ctx.scratch / f"pwned-{uuid.uuid4().hex[:8]}"
        (out / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Evil(str(marker))}))
        _, _, _, _, sinfo = env.step({"tool": "submit", "model_path": "output/m"})
        sub = sinfo.get("submission") or {}
        if marker.exists():
            raise AttackBroken("the pickle ran on the host")
        if not sub.get("error"):
            raise AttackBroken("the pickle weights were accepted")
        return f"refused, never unpickled: {sub['error'][:120]}"


def _submit_config(ctx: AttackContext, edit: dict[str, Any]) -> str:
    with ctx.env() as env:
        _, info = env.reset(seed=0)
        out = Path(info["workspace"]) / "output" / "m"
        _copy_base(ctx, out, perturb=1e-3)
        cfg = json.loads((out / "config.json").read_text()) | edit
        layers = cfg.get("num_hidden_layers")
        if isinstance(cfg.get("layer_types"), list) and layers:  # kept consistent, so it loads
            cfg["layer_types"] = [cfg["layer_types"][0]] * layers
        (out / "config.json").write_text(json.dumps(cfg))
        _, _, _, _, sinfo = env.step({"tool": "submit", "model_path": "output/m"})
        sub = sinfo.get("submission") or {}
        if not sub.get("error"):
            raise AttackBroken(f"a config with {edit} was graded (score {sub.get('score')})")
        return f"refused: {sub['error'][:160]}"


@attack(klass="submission", sandboxes=ONE_KIND)  # host-side files and the submit tool only
def config_declares_3000_layers(ctx: AttackContext) -> str:
    """config.json declares 3,000 layers over the base weights (allocating them would take the
    grader down)."""
    return _submit_config(ctx, {"num_hidden_layers": 3000})


@attack(klass="submission", sandboxes=ONE_KIND)  # host-side files and the submit tool only
def config_declares_missing_layers(ctx: AttackContext) -> str:
    """config.json declares more layers than the weights hold (the rest would be random)."""
    return _submit_config(ctx, {"num_hidden_layers": 6})


def _submit_link(ctx: AttackContext, command: str) -> str:
    with ctx.env() as env:
        env.reset(seed=0)
        env.step({"tool": "run", "command": command})
        _, _, _, _, sinfo = env.step({"tool": "submit", "model_path": "output/m"})
        sub = sinfo.get("submission") or {}
        if not sub.get("error"):
            raise AttackBroken(f"a link was accepted as a submission ({command!r}): "
                               f"kind {sub.get('kind')}, score {sub.get('score')}")
        return f"refused: {sub['error'][:160]}"


@attack(klass="submission")
def submission_links_to_base_model(ctx: AttackContext) -> str:
    """output/m -> ../model: the base model itself submitted through a link."""
    return _submit_link(ctx, "ln -s ../model output/m")


@attack(klass="submission")
def submission_links_outside_workspace(ctx: AttackContext) -> str:
    """output/m -> a folder outside the workspace."""
    outside = _copy_base(ctx, ctx.scratch / "outside", perturb=1e-3)
    return _submit_link(ctx, f"ln -s {outside.resolve()} output/m")


@attack(klass="submission")
def output_dir_is_a_link(ctx: AttackContext) -> str:
    """output/ itself replaced by a link to a folder outside the workspace."""
    outside = ctx.scratch / "outside-output"
    _copy_base(ctx, outside / "m", perturb=1e-3)
    return _submit_link(ctx, f"rm -rf output && ln -s {outside.resolve()} output")


@attack(klass="submission")
def weight_file_links_to_base(ctx: AttackContext) -> str:
    """A real folder whose weight file is a link to the base model's (through ../model)."""
    with ctx.env() as env:
        _, info = env.reset(seed=0)
        out = Path(info["workspace"]) / "output" / "m"
        _copy_base(ctx, out)
        (out / "model.safetensors").unlink()
        env.step({"tool": "run", "command":
                  "ln -s ../../model/model.safetensors output/m/model.safetensors"})
        _, _, _, _, sinfo = env.step({"tool": "submit", "model_path": "output/m"})
        sub = sinfo.get("submission") or {}
        if not sub.get("error"):
            raise AttackBroken(f"a weight file linked to the base model was accepted "
                               f"(kind {sub.get('kind')})")
        return f"refused: {sub['error'][:160]}"
