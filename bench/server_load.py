"""The grading server's figures: its ledger read path under load, and submit-to-graded time.

The load itself is raw HTTP (httpx in a second process: the figure is the server's, not the
typed client's parsing); the setup goes through the typed client (autorl_gym.server.client).

1. Requests per second of ``GET /runs/{id}`` (a run with submissions, read from the SQLite
   ledger on every request) under concurrent load from a second process, side by side with
   ``GET /health`` on the same server under the same load (the HTTP stack alone), and with the
   same ledger read done directly in that process (``Ledger.run`` + ``Ledger.submissions``).
2. The time from ``submit`` accepted (the ledger's ``accepted_at``) to graded (``graded_at``)
   for a trained-looking micro model on the default scenario, and the client's round trip.

    python bench/server_load.py [--seconds 5] [--concurrency 16] [--submissions 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from autorl_gym.server.client import GradingClient

MICRO = "AutoRL-Micro-Arith-v0"


def _load(url: str, path: str, headers: dict[str, str], seconds: float, concurrency: int,
          out: mp.Queue) -> None:
    """The second process: ``concurrency`` clients requesting ``path`` for ``seconds``."""

    async def main() -> tuple[int, int]:
        ok = bad = 0
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as c:
            await c.get(path)  # warm up
            end = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal ok, bad
                while time.perf_counter() < end:
                    r = await c.get(path)
                    if r.status_code == 200:
                        ok += 1
                    else:
                        bad += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, bad

    t0 = time.perf_counter()
    ok, bad = asyncio.run(main())
    out.put((ok, bad, time.perf_counter() - t0))


def load(url: str, path: str, headers: dict[str, str], seconds: float, concurrency: int) -> tuple[float, int]:
    q: mp.Queue = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=_load, args=(url, path, headers, seconds, concurrency, q))
    p.start()
    ok, bad, elapsed = q.get()
    p.join()
    return ok / seconds, bad


def direct_reads(ledger: Path, run_id: str, seconds: float) -> float:
    from autorl_gym.server.ledger import Ledger

    db = Ledger(ledger)
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        db.run(run_id)
        db.submissions(run_id)
        n += 1
    return n / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--submissions", type=int, default=3)
    args = ap.parse_args()
    console = Console()

    from autorl_gym.micro.build import ensure_micro_assets

    assets = ensure_micro_assets("arith", progress=True)
    root = Path(tempfile.mkdtemp(prefix="autorl-bench-server-"))
    log = root / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autorl_gym.cli.main", "serve", "--port", "0", "--env", MICRO,
         "--ledger", str(root / "ledger.sqlite"), "--workspace-root", str(root / "workspace"),
         "--results-dir", str(root / "results")],
        stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=root)
    try:
        url = ""
        with console.status("starting the server"):
            while not url:
                m = re.search(r"grading API on (http://\S+) ", log.read_text())
                if proc.poll() is not None:
                    raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
                url = m.group(1) if m else ""
                time.sleep(0.1)
        c = GradingClient(url, timeout=900)
        while True:
            try:
                c.health()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        with console.status("creating a run (baselines on first use)"):
            run = c.create_run(agent="bench")
        auth = {"Authorization": f"Bearer {run.token}"}
        ws = Path(run.workspace)

        grading = []
        from safetensors.torch import load_file, save_file

        for i in range(args.submissions):
            dst = ws / "output" / f"v{i}"
            shutil.copytree(assets.model_dir, dst)
            t = load_file(dst / "model.safetensors")
            t["model.norm.weight"] = t["model.norm.weight"] + 1e-3 * (i + 1)
            save_file(t, dst / "model.safetensors", metadata={"format": "pt"})
            with console.status(f"submission {i + 1}/{args.submissions}"):
                t0 = time.perf_counter()
                s = c.submit(run.run_id, f"output/v{i}")
                rtt = time.perf_counter() - t0
            assert s.graded_at is not None and s.score is not None, s
            grading.append(((s.graded_at - s.accepted_at).total_seconds(), rtt, s.score))

        with console.status("load: GET /runs/{id}"):
            rps_run, bad_run = load(url, f"/runs/{run.run_id}", auth, args.seconds, args.concurrency)
        with console.status("load: GET /health"):
            rps_health, bad_health = load(url, "/health", {}, args.seconds, args.concurrency)
        with console.status("direct ledger reads"):
            rps_direct = direct_reads(root / "ledger.sqlite", run.run_id, args.seconds)
        rows = [
            ("GET /runs/{id} (ledger read, 3 submissions)", rps_run, bad_run),
            ("GET /health (reference: the HTTP stack alone)", rps_health, bad_health),
            ("Ledger.run + submissions in-process (reference: the read alone)", rps_direct, 0),
        ]
        table = Table(title=f"requests/s, {args.concurrency} concurrent clients in a second process, "
                            f"{args.seconds:.0f} s each")
        table.add_column("what")
        table.add_column("per second", justify="right")
        table.add_column("non-200", justify="right")
        table.add_column("vs GET /runs/{id}", justify="right")
        for name, rps, bad in rows:
            table.add_row(name, f"{rps:,.0f}", str(bad), f"{rps / rps_run:.2f}x")
        console.print(table)

        t2 = Table(title=f"submit accepted -> graded, micro model on {MICRO} (dev split, 200 problems)")
        t2.add_column("submission", justify="right")
        t2.add_column("accepted -> graded (s)", justify="right")
        t2.add_column("client round trip (s)", justify="right")
        t2.add_column("score", justify="right")
        for i, (span, rtt, score) in enumerate(grading, 1):
            t2.add_row(str(i), f"{span:.2f}", f"{rtt:.2f}", f"{score:.2f}")
        spans = sorted(g[0] for g in grading)
        t2.add_row("median", f"{spans[len(spans) // 2]:.2f}", "", "")
        console.print(t2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
