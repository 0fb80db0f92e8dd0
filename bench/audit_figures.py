"""Issue 27's figures for the contamination audit, in one run:

1. false positives on honest data, every micro scenario: the share of hidden items whose n-grams
   also occur in the train split (what a naive 13-gram check would flag), the verdict on a
   workspace holding the train split, and, for the two arithmetic scenarios, on 5 workspaces of
   2,000 problems an honest agent generates with the package's own generator (fresh seeds);
2. detection on planted contamination: k = 1, 3, 10, 100 random test items (whole records, and
   questions only) mixed into the train data, and whole records mixed into 2,000 problems an
   honest agent generated (where the chance control decides), 20 draws each: share flagged
   (suspect or contaminated) and share contaminated;
3. audit time against the episode's: one real micro episode (perturb the base model, submit,
   finish) with its end-of-episode audit, and the audit of each scenario's train copy.

    python bench/audit_figures.py [--trials 20] [--no-episode]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from autorl_gym.audit.matcher import Stream
from autorl_gym.audit.normalise import item_grams, tokens
from autorl_gym.audit.run import audit, index_for
from autorl_gym.core.family import resolve_assets
from autorl_gym.scenarios.catalog import get_scenario

SCENARIOS = ["AutoRL-Micro-Arith-v0", "AutoRL-Micro-Arith-Multistep-v0", "AutoRL-Micro-DeepSearch-v0",
             "AutoRL-Micro-TextWorld-v0", "AutoRL-Micro-WebShop-v0"]
ARITH = SCENARIOS[:2]


def _folders(root: Path) -> tuple[Path, Path]:
    ws, res = root / "ws", root / "res"
    (ws / "code").mkdir(parents=True)
    res.mkdir()
    return ws, res


def naive_overlap(sid: str) -> tuple[int, int]:
    """(hidden items with an n-gram in the train split, hidden items): a check without the
    public-pattern rule."""
    from autorl_gym.audit.hidden import _train_files, hidden_items
    from autorl_gym.audit.matcher import Pattern, Patterns
    from autorl_gym.core.family import GradeContext

    sc = get_scenario(sid)
    ctx = GradeContext(sc, resolve_assets(sc, progress=False))
    pats = Patterns()
    n = 0
    for split in ("dev", "test"):
        for it in hidden_items(ctx, split):
            n += 1
            for g in item_grams(tokens(it.text)):
                pats.add(g, Pattern("ngram", it.key))
    stream = Stream(pats)
    for path in _train_files(ctx):
        stream.feed_bytes(path.read_bytes())
        stream.feed("\n")
    return len({p.key for p in stream.close()}), n


def honest_generated(sid: str, seed: int, n: int = 2000) -> list[dict]:
    if sid == "AutoRL-Micro-Arith-v0":
        from autorl_gym.micro.data import format_answer, iter_draws

        draws = iter_draws(f"honest-agent-{seed}", seed)
        return [{"question": d.question, "answer": format_answer(d.a, d.op, d.b)}
                for d, _ in zip(draws, range(n), strict=False)]
    from autorl_gym.micro.multistep import iter_chains

    chains = iter_chains(f"honest-agent-{seed}", seed)
    return [{"question": c.question, "answer": f"#### {c.result}"}
            for c, _ in zip(chains, range(n), strict=False)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--no-episode", action="store_true")
    args = ap.parse_args()
    out: dict[str, object] = {}
    tmp = Path(tempfile.mkdtemp(prefix="audit-figures-"))
    fp = {}
    for sid in SCENARIOS:
        sc = get_scenario(sid)
        assets = resolve_assets(sc, progress=False)
        t0 = time.monotonic()
        index = index_for(sc, assets)
        index_s = time.monotonic() - t0
        hit, n = naive_overlap(sid)
        ws, res = _folders(tmp / f"train-{sid}")
        shutil.copytree(assets.train_dir, ws / "code" / "train")
        rep = audit(index, res, ws)
        row = {"hidden_items": n, "naive_items_overlapping_train": hit,
               "naive_fp_rate": round(hit / n, 4), "train_copy_verdict": rep.verdict,
               "train_copy_bytes": rep.bytes_read, "train_copy_audit_s": rep.scan_s,
               "index_s": round(index_s, 3)}
        if sid in ARITH:
            verdicts, items = [], []
            for seed in range(5):
                ws, res = _folders(tmp / f"gen-{sid}-{seed}")
                lines = honest_generated(sid, 1000 + seed)
                (ws / "code" / "generated.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
                r = audit(index, res, ws)
                verdicts.append(r.verdict)
                items.append(len(r.items_overlapped)
                             if r.chance is None else (len(r.items_overlapped), r.chance.decoys_overlapped,
                                                       r.chance.p_value))
            row["generated_2000_verdicts"] = verdicts
            row["generated_2000_items_overlapped"] = items
        fp[sid] = row
        print(sid, row, flush=True)
    out["false_positives"] = fp

    det = {}
    for sid in ARITH:
        sc = get_scenario(sid)
        assets = resolve_assets(sc, progress=False)
        index = index_for(sc, assets)
        test = [json.loads(x) for x in assets.hidden_splits["test"].read_text().splitlines()]
        train = assets.train_dir.joinpath("train.jsonl").read_text().splitlines()
        for mode in ("records", "questions", "amid-generated"):
            for k in (1, 3, 10, 100):
                flagged = contaminated = named = 0
                for trial in range(args.trials):
                    rng = random.Random(f"{sid}/{mode}/{k}/{trial}")
                    picks = rng.sample(range(len(test)), k)
                    planted = [json.dumps(test[i]) if mode != "questions"
                               else json.dumps({"question": test[i]["question"], "answer": ""})
                               for i in picks]
                    base = (train if mode != "amid-generated" else
                            [json.dumps(x) for x in honest_generated(sid, 5000 + trial)])
                    lines = base + planted
                    rng.shuffle(lines)
                    ws, res = _folders(tmp / f"det-{sid}-{mode}-{k}-{trial}")
                    (ws / "code" / "mixed.jsonl").write_text("\n".join(lines))
                    r = audit(index, res, ws)
                    flagged += r.verdict != "clean"
                    contaminated += r.verdict == "contaminated"
                    named += len(set(r.items_overlapped) & {f"test:{i}" for i in picks})
                det[f"{sid} {mode} k={k}"] = {
                    "flagged": flagged / args.trials, "contaminated": contaminated / args.trials,
                    "items_named": round(named / (k * args.trials), 3)}
                print(sid, mode, k, det[f"{sid} {mode} k={k}"], flush=True)
    out["detection"] = det

    if not args.no_episode:
        import gymnasium as gym

        sc = get_scenario(ARITH[0])
        env = gym.make(ARITH[0], workspace_root=tmp / "workspace", results_dir=tmp / "results")
        t0 = time.monotonic()
        env.reset(seed=0)
        env.step({"tool": "run", "command": (
            "cp -rL model output/m && python -c \"import torch; from safetensors.torch import "
            "load_file, save_file; f='output/m/model.safetensors'; sd=load_file(f); "
            "sd['model.norm.weight']=sd['model.norm.weight']*1.01; save_file(sd, f, "
            "metadata={'format': 'pt'})\"")})
        env.step({"tool": "submit", "model_path": "output/m"})
        *_, info = env.step({"tool": "finish", "model_path": "output/m"})
        wall = time.monotonic() - t0
        env.close()
        a = json.loads((Path(info["results_dir"]) / "audit.json").read_text())
        out["episode"] = {"episode_wall_s": round(wall, 2), "audit_scan_s": a["scan_s"],
                          "audit_index_s": a["index_s"], "verdict": a["verdict"],
                          "bytes_read": a["bytes_read"], "sources": a["sources"]}
        print(out["episode"], flush=True)
    print(json.dumps(out, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
