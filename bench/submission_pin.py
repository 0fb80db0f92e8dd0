"""A submission's snapshot and hash, against the old hashing path, side by side: wall time and
the hashing process's resident memory (sampled with psutil from this process, every 10 ms).

Three ways, each in a fresh child process, interleaved per round:

* ``old``: the hash as it was before submissions were pinned: every tensor loaded with
  ``safetensors.safe_open(...).get_tensor`` in the host process and hashed (no copy);
* ``check``: :func:`autorl_gym.grading.submission.check_model`: the checks, then every tensor's
  bytes streamed from the workspace and hashed (no copy; the server's check before it queues);
* ``pin``: :func:`autorl_gym.grading.submission.pin_submission`: the checks, then the files copied
  into a snapshot folder and hashed as they are copied (what an episode does at ``submit``).

The model is copied into a scratch workspace first (``output/m``). ``--build-qwen2-1p5b DIR``
writes a random-weight Qwen2 model of about 1.5B parameters (Qwen2.5-1.5B's shapes) in bf16 to
DIR first (never graded). ``--cap-file BYTES`` adds a single safetensors file of that size (the
largest submission a scenario allows) to the RSS figures.

    python bench/submission_pin.py --rounds 3
    python bench/submission_pin.py --build-qwen2-1p5b /tmp/qwen2-1p5b --model /tmp/qwen2-1p5b
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("old", "check", "pin")


def old_hash(model_dir: Path) -> str:
    """The weights hash before this change (tensors loaded, one by one, in this process)."""
    import hashlib

    import torch
    from safetensors import safe_open

    digests = []
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118
                t = fh.get_tensor(key)
                h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
                h.update(t.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
                digests.append((key, h.hexdigest()))
    total = hashlib.sha256()
    seen: set[str] = set()
    for key, digest in sorted(digests, reverse=True):
        if digest not in seen:
            seen.add(digest)
            total.update(f"{key}={digest}\n".encode())
    return total.hexdigest()


def child(mode: str, ws: str, dest: str) -> None:
    """Import what the mode needs, say ready, wait for go, do it, print the result as JSON."""
    if mode == "old":
        import torch  # noqa: F401
        from safetensors import safe_open  # noqa: F401
    from autorl_gym.grading.submission import check_model, pin_submission

    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    if mode == "old":
        digest = old_hash(Path(ws) / "output" / "m")
    elif mode == "check":
        digest = check_model("output/m", Path(ws)).weights_hash
    else:
        digest = pin_submission("output/m", Path(ws), Path(dest)).weights_hash
    print(json.dumps({"seconds": time.perf_counter() - t0, "hash": digest}), flush=True)


def measure(mode: str, ws: Path, scratch: Path) -> dict:
    import psutil

    dest = scratch / f"snap-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, str(ws), str(dest)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready"
    ps = psutil.Process(proc.pid)
    base = peak = ps.memory_info().rss
    proc.stdin.write("go\n")
    proc.stdin.flush()
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.01)
    out = json.loads(proc.stdout.read().strip().splitlines()[-1])
    shutil.rmtree(dest, ignore_errors=True)
    return {"mode": mode, "seconds": out["seconds"], "hash": out["hash"],
            "rss_before_mib": base / 2**20, "rss_peak_mib": peak / 2**20,
            "rss_grew_mib": (peak - base) / 2**20}


def build_qwen2_1p5b(dest: Path) -> None:
    """A random-weight Qwen2 model with Qwen2.5-1.5B's shapes, bf16 safetensors (about 3.1 GB)."""
    if (dest / "model.safetensors").is_file():
        return
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                      num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                      max_position_embeddings=32768, tie_word_embeddings=True, dtype="bfloat16")
    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(cfg)
    gen = torch.Generator().manual_seed(0)
    tensors = {k: torch.empty(v.shape, dtype=torch.bfloat16).normal_(0, 0.02, generator=gen)
               for k, v in meta.state_dict().items() if k != "lm_head.weight"}
    dest.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    cfg.save_pretrained(dest)
    n = sum(t.numel() for t in tensors.values())
    print(f"built {dest}: {n / 1e9:.3f}B parameters, "
          f"{(dest / 'model.safetensors').stat().st_size / 1e9:.2f} GB")


def cap_model(dest: Path, nbytes: int) -> None:
    """One safetensors file of ``nbytes`` of data (written out, not sparse), with a config."""
    if (dest / "model.safetensors").is_file():
        return
    dest.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"w": {"dtype": "U8", "shape": [nbytes], "data_offsets": [0, nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    block = os.urandom(16 << 20)
    with open(dest / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        left = nbytes
        while left:
            left -= f.write(block[: min(len(block), left)])
    (dest / "config.json").write_text("{}")


def workspace_with(model: Path, scratch: Path) -> Path:
    ws = scratch / f"ws-{model.name}"
    out = ws / "output" / "m"
    if not out.is_dir():
        out.mkdir(parents=True)
        for f in model.iterdir():
            if f.is_file():
                try:
                    os.link(f, out / f.name)  # the same bytes, no second copy on disk
                except OSError:
                    shutil.copyfile(f, out / f.name)
    return ws


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=3, metavar=("MODE", "WS", "DEST"), help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, action="append", help="model folder(s) (default: micro base)")
    ap.add_argument("--build-qwen2-1p5b", type=Path, help="build the random 1.5B model here first")
    ap.add_argument("--cap-file", type=int, help="also a single weight file of this many bytes "
                                                 "(RSS figure only; the old path is skipped)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--scratch", type=Path, default=None)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0
    if args.build_qwen2_1p5b:
        build_qwen2_1p5b(args.build_qwen2_1p5b)
    models = args.model
    if not models:
        from autorl_gym.micro.build import ensure_micro_assets

        models = [ensure_micro_assets("arith", progress=False).model_dir]
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="bench-pin-"))
    runs: list[tuple[Path, list[str]]] = [(m, args.modes.split(",")) for m in models]
    if args.cap_file:
        cap = scratch / "cap-model"
        cap_model(cap, args.cap_file)
        runs.append((cap, [m for m in args.modes.split(",") if m != "old"]))
    print(f"load average {os.getloadavg()}")
    rows = []
    for model, modes in runs:
        ws = workspace_with(model, scratch)
        size = sum(f.stat().st_size for f in (ws / "output" / "m").iterdir())
        results: dict[str, list[dict]] = {m: [] for m in modes}
        for _ in range(args.rounds):
            for mode in modes:
                results[mode].append(measure(mode, ws, scratch))
        hashes = {r["hash"] for rs in results.values() for r in rs}
        for mode, rs in results.items():
            rows.append({"model": str(model), "bytes": size, "mode": mode,
                         "seconds_median": statistics.median(r["seconds"] for r in rs),
                         "seconds_all": [round(r["seconds"], 3) for r in rs],
                         "rss_grew_mib_max": max(r["rss_grew_mib"] for r in rs),
                         "rss_peak_mib_max": max(r["rss_peak_mib"] for r in rs),
                         "same_hash_all_modes": len(hashes) == 1})
        if not args.scratch:
            shutil.rmtree(ws, ignore_errors=True)
    print(f"load average {os.getloadavg()}")
    for r in rows:
        print(json.dumps(r))
    if not args.scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
