"""What runs inside an exported Harbor task's containers (``python -m
autorl_gym.report.harbor.grading serve|verify``), with the package copied in beside the one hidden
split that container may hold.

* ``serve``: the grading sidecar (compose service ``grader``, the dev split only). The agent's
  ``POST http://grader:8000/submit {"model_path": "output/v1"}`` pins the submitted folder from
  the shared ``/workspace/output`` volume (read-only here, links refused) into the sidecar's own
  state folder, grades it on dev and answers with our feedback (score, baseline, improvement, best
  so far); ``GET /health`` answers too. The ledger and the pinned snapshots are collected by
  Harbor as artifacts *from this service*, where the agent cannot write.
* ``verify``: the separate verifier (the test split only). It takes the submission the ledger
  ranks best on dev, checks that its snapshot still hashes to what was recorded at submit, grades
  it on test beside the base model, and writes ``reward.json`` (numbers only, as Harbor wants:
  ``reward`` is the improvement in score points) and ``feedback.json`` (our full record).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autorl_gym.core.assets import ScenarioAssets
from autorl_gym.core.durable import atomic_write_text
from autorl_gym.core.records import EvalResult, SubmissionError
from autorl_gym.core.scenario import Scenario
from autorl_gym.grading.grader import Grader
from autorl_gym.grading.stats import paired_bootstrap
from autorl_gym.grading.submission import pin_submission, pinned, workspace_relpath
from autorl_gym.scenarios.catalog import load_scenario_file

LEDGER = "ledger.json"
SUBMISSIONS = "submissions"


class LedgerEntry(BaseModel):
    id: int
    model_path: str
    weights_hash: str
    dev_score: float
    submitted_at: str


class Ledger(BaseModel):
    scenario: str
    baseline_dev: float | None = None
    submissions: list[LedgerEntry] = []

    def best(self) -> LedgerEntry | None:
        """The best on dev; the earlier one on a tie."""
        return max(self.submissions, key=lambda e: (e.dev_score, -e.id), default=None)


def make_grader(scenario_file: Path, model_dir: Path, split: str, split_file: Path) -> Grader:
    """A grader that knows one hidden split, the one this container holds."""
    scenario = load_scenario_file(scenario_file)
    empty = Path(os.environ.get("TMPDIR", "/tmp")) / "autorl-empty-train"
    empty.mkdir(parents=True, exist_ok=True)
    assets = ScenarioAssets(base_model_dir=model_dir, train_dir=empty,
                            hidden_splits={split: split_file})
    return Grader(scenario, assets)


# --------------------------------------------------------------------------- the sidecar
class Sidecar:
    def __init__(self, grader: Grader, workspace: Path, state: Path, split: str = "dev"):
        self.grader, self.workspace, self.state, self.split = grader, workspace, state, split
        self.lock = threading.Lock()
        state.mkdir(parents=True, exist_ok=True)
        path = state / LEDGER
        scenario: Scenario = grader.scenario
        self.ledger = (Ledger.model_validate_json(path.read_text()) if path.is_file()
                       else Ledger(scenario=scenario.id))
        self.max_submissions = scenario.budget.max_submissions

    def _save(self) -> None:
        atomic_write_text(self.state / LEDGER, self.ledger.model_dump_json(indent=2))

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "scenario": self.ledger.scenario, "split": self.split,
                "submissions": len(self.ledger.submissions),
                "submissions_left": self.max_submissions - len(self.ledger.submissions)}

    def submit(self, model_path: str) -> tuple[int, dict[str, Any]]:
        with self.lock:  # one grading at a time, as the server does
            n = len(self.ledger.submissions)
            if n >= self.max_submissions:
                return 429, {"error": f"submission limit reached ({self.max_submissions})"}
            sid = n + 1
            try:
                rel = workspace_relpath(model_path, self.workspace)
                checked = pin_submission(rel, self.workspace, self.state / SUBMISSIONS / str(sid))
                base = self.grader.baseline(self.split)
                self.ledger.baseline_dev = base.score
                result = self.grader.grade(checked.path, self.split, checked.info, base,
                                           model_hash=checked.weights_hash)
            except SubmissionError as e:
                return 400, {"error": str(e)}
            entry = LedgerEntry(id=sid, model_path=rel, weights_hash=checked.weights_hash,
                                dev_score=result.score,
                                submitted_at=datetime.now(UTC).isoformat())
            self.ledger.submissions.append(entry)
            self._save()
            best = self.ledger.best()
            base = self.ledger.baseline_dev
            return 200, {"submission_id": sid, "split": self.split, "score": result.score,
                         "baseline": base, "improvement": result.score - base,
                         "best": best.model_dump() if best else None,
                         "submissions_left": self.max_submissions - sid}


def serve(sidecar: Sidecar, host: str, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/health":
                self._answer(200, sidecar.health())
            else:
                self._answer(404, {"error": "GET /health, POST /submit"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/submit":
                self._answer(404, {"error": "POST /submit"})
                return
            try:
                n = min(int(self.headers.get("Content-Length") or 0), 1 << 16)
                body = json.loads(self.rfile.read(n) or b"{}")
                model_path = body["model_path"]
                if not isinstance(model_path, str):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                self._answer(400, {"error": 'send {"model_path": "output/<folder>"}'})
                return
            self._answer(*sidecar.submit(model_path))

    ThreadingHTTPServer((host, port), Handler).serve_forever()


# --------------------------------------------------------------------------- the verifier
def _items(result: EvalResult) -> list[float]:
    return [1.0 if it.correct else 0.0 for it in sorted(result.items, key=lambda i: i.index)]


def verify(grader: Grader, state: Path, out: Path, split: str = "test") -> dict[str, Any]:
    """Grade the ledger's best submission on ``split``; write reward.json and feedback.json."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    ledger_path = state / LEDGER
    ledger = Ledger.model_validate_json(ledger_path.read_text()) if ledger_path.is_file() else None
    best = ledger.best() if ledger else None
    record: dict[str, Any] = {"scenario": grader.scenario.id, "split": split,
                              "ledger": ledger.model_dump() if ledger else None}
    base = grader.baseline(split)
    record["baseline"] = base.summary()
    reward = {"reward": 0.0, "improvement": 0.0, "score": base.score, "baseline": base.score,
              "submissions": float(len(ledger.submissions) if ledger else 0)}
    if best is None:
        record["reason"] = ("no submission was accepted by the grading sidecar during the episode "
                            "(POST http://grader:8000/submit): the base model's score stands")
    else:
        try:
            checked = pinned(state / SUBMISSIONS / str(best.id), best.weights_hash)
        except SubmissionError as e:
            record["reason"] = f"submission {best.id} refused: {e}"
            record["integrity_events"] = [{"kind": e.integrity or "snapshot_changed",
                                           "detail": str(e)}]
        else:
            res = grader.grade(checked.path, split, checked.info, base,
                               model_hash=checked.weights_hash)
            interval = paired_bootstrap(_items(res), _items(base))
            record["chosen"] = best.model_dump()
            record["test"] = res.summary() | {"model_hash": checked.weights_hash}
            record["interval"] = interval.model_dump()
            reward.update(reward=res.score - base.score, improvement=res.score - base.score,
                          score=res.score, ci_low=interval.low, ci_high=interval.high)
    record["reward"] = reward
    record["seconds"] = time.time() - started
    atomic_write_text(out / "feedback.json", json.dumps(record, indent=2, default=str))
    atomic_write_text(out / "reward.json", json.dumps(reward))
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autorl_gym.report.harbor.grading")
    p.add_argument("command", choices=("serve", "verify"))
    p.add_argument("--scenario", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--split-file", type=Path, required=True)
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--workspace", type=Path, default=Path("/workspace"))
    p.add_argument("--out", type=Path, default=Path("/logs/verifier"))
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    a = p.parse_args(argv)
    grader = make_grader(a.scenario, a.model, a.split, a.split_file)
    if a.command == "serve":
        serve(Sidecar(grader, a.workspace, a.state, a.split), a.host, a.port)
        return 0
    record = verify(grader, a.state, a.out, a.split)
    print(json.dumps(record["reward"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
