"""The grading server's ledger: runs, submissions and evaluations in SQLite.

WAL mode, ``synchronous=FULL``, one transaction per change: a submission is recorded as
``queued`` before the request is answered, so killing the server at any moment loses none.
Rows left ``queued`` or ``running`` by a kill are found by :meth:`Ledger.interrupted` at the
next start and graded again. The ledger lives outside every workspace and is never mounted in a
sandbox. Every thread gets its own connection.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

SubmissionStatus = Literal["queued", "running", "done", "failed"]
RunStatus = Literal["active", "finished", "truncated", "abandoned"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    scenario TEXT NOT NULL,
    agent TEXT,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    budget_seconds REAL NOT NULL,
    max_steps INTEGER NOT NULL,
    max_submissions INTEGER NOT NULL,
    workspace TEXT NOT NULL,
    results_dir TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    options TEXT NOT NULL,
    feedback TEXT,
    ended_at REAL
);
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    model_path TEXT NOT NULL,
    weights_hash TEXT,
    status TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    started_at REAL,
    graded_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    record TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS submissions_run ON submissions(run_id, id);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL,
    split TEXT NOT NULL,
    model_path TEXT NOT NULL,
    weights_hash TEXT,
    status TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    started_at REAL,
    graded_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS evaluations_hash ON evaluations(scenario, split, weights_hash);
"""


class RunRow(BaseModel):
    id: str
    scenario: str
    agent: str | None
    status: RunStatus
    created_at: float
    budget_seconds: float
    max_steps: int
    max_submissions: int
    workspace: str
    results_dir: str
    sandbox: str
    options: dict[str, Any]
    feedback: dict[str, Any] | None
    ended_at: float | None


class SubmissionRow(BaseModel):
    id: int
    run_id: str
    model_path: str
    weights_hash: str | None
    status: SubmissionStatus
    accepted_at: float
    started_at: float | None
    graded_at: float | None
    attempts: int
    record: dict[str, Any] | None
    error: str | None


class EvaluationRow(BaseModel):
    id: int
    scenario: str
    split: str
    model_path: str
    weights_hash: str | None
    status: SubmissionStatus
    accepted_at: float
    started_at: float | None
    graded_at: float | None
    attempts: int
    result: dict[str, Any] | None
    error: str | None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _loads(value: str | None) -> Any:
    return json.loads(value) if value is not None else None


class Ledger:
    """SQLite ledger at ``path`` (created with its folder if missing)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._db().executescript(_SCHEMA)  # idempotent; executescript commits by itself

    # -- connections -----------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; committed on success, rolled back on any error."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- runs ------------------------------------------------------------------------------------
    def add_run(self, run: RunRow, token: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (id, token_sha256, scenario, agent, status, created_at, "
                "budget_seconds, max_steps, max_submissions, workspace, results_dir, sandbox, "
                "options, feedback, ended_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run.id, token_digest(token), run.scenario, run.agent, run.status, run.created_at,
                 run.budget_seconds, run.max_steps, run.max_submissions, run.workspace,
                 run.results_dir, run.sandbox, json.dumps(run.options), None, None))

    def run(self, run_id: str) -> RunRow | None:
        row = self._db().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return self._run(row) if row else None

    def check_token(self, run_id: str, token: str) -> bool:
        import hmac

        row = self._db().execute("SELECT token_sha256 FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row is not None and hmac.compare_digest(row["token_sha256"], token_digest(token))

    def runs(self, status: str | None = None) -> list[RunRow]:
        if status:
            rows = self._db().execute("SELECT * FROM runs WHERE status = ? ORDER BY created_at",
                                      (status,)).fetchall()
        else:
            rows = self._db().execute("SELECT * FROM runs ORDER BY created_at").fetchall()
        return [self._run(r) for r in rows]

    def end_run(self, run_id: str, status: RunStatus, feedback: dict[str, Any] | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET status = ?, feedback = ?, ended_at = ? WHERE id = ?",
                       (status, json.dumps(feedback) if feedback is not None else None, time.time(),
                        run_id))

    @staticmethod
    def _run(row: sqlite3.Row) -> RunRow:
        d = dict(row)
        d.pop("token_sha256")
        d["options"] = _loads(d["options"]) or {}
        d["feedback"] = _loads(d["feedback"])
        return RunRow.model_validate(d)

    # -- submissions -----------------------------------------------------------------------------
    def add_submission(self, run_id: str, model_path: str, weights_hash: str | None) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO submissions (run_id, model_path, weights_hash, status, accepted_at) "
                "VALUES (?,?,?,?,?)", (run_id, model_path, weights_hash, "queued", time.time()))
            return int(cur.lastrowid)

    def start_submission(self, sub_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE submissions SET status = 'running', started_at = ?, "
                       "attempts = attempts + 1 WHERE id = ?", (time.time(), sub_id))

    def finish_submission(self, sub_id: int, record: dict[str, Any] | None, error: str | None) -> None:
        """Graded (``done``) or refused/failed (``failed``, with ``error``); the env's record kept."""
        status = "failed" if error or record is None else "done"
        # the hash of the bytes pinned and graded (the env's record) replaces the one checked
        # when the submission was queued: they differ if the weights moved in between
        pinned = record.get("weights_hash") if record else None
        with self._tx() as db:
            db.execute("UPDATE submissions SET status = ?, graded_at = ?, record = ?, error = ?, "
                       "weights_hash = COALESCE(?, weights_hash) WHERE id = ?",
                       (status, time.time(), json.dumps(record) if record is not None else None,
                        error, pinned, sub_id))

    def submission(self, sub_id: int) -> SubmissionRow | None:
        row = self._db().execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone()
        return self._sub(row) if row else None

    def submissions(self, run_id: str) -> list[SubmissionRow]:
        rows = self._db().execute("SELECT * FROM submissions WHERE run_id = ? ORDER BY id",
                                  (run_id,)).fetchall()
        return [self._sub(r) for r in rows]

    def same_weights(self, run_id: str, weights_hash: str) -> SubmissionRow | None:
        """The earliest submission of this run with these weights that is graded or pending."""
        row = self._db().execute(
            "SELECT * FROM submissions WHERE run_id = ? AND weights_hash = ? "
            "AND status IN ('queued', 'running', 'done') ORDER BY id LIMIT 1",
            (run_id, weights_hash)).fetchone()
        return self._sub(row) if row else None

    def interrupted_submissions(self) -> list[SubmissionRow]:
        rows = self._db().execute("SELECT * FROM submissions WHERE status IN ('queued', 'running') "
                                  "ORDER BY id").fetchall()
        return [self._sub(r) for r in rows]

    @staticmethod
    def _sub(row: sqlite3.Row) -> SubmissionRow:
        d = dict(row)
        d["record"] = _loads(d["record"])
        return SubmissionRow.model_validate(d)

    # -- evaluations (POST /evaluate) ----------------------------------------------------------
    def add_evaluation(self, scenario: str, split: str, model_path: str, weights_hash: str) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO evaluations (scenario, split, model_path, weights_hash, status, "
                "accepted_at) VALUES (?,?,?,?,?,?)",
                (scenario, split, model_path, weights_hash, "queued", time.time()))
            return int(cur.lastrowid)

    def start_evaluation(self, ev_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE evaluations SET status = 'running', started_at = ?, "
                       "attempts = attempts + 1 WHERE id = ?", (time.time(), ev_id))

    def finish_evaluation(self, ev_id: int, result: dict[str, Any] | None, error: str | None) -> None:
        status = "done" if result is not None else "failed"
        with self._tx() as db:
            db.execute("UPDATE evaluations SET status = ?, graded_at = ?, result = ?, error = ? "
                       "WHERE id = ?", (status, time.time(),
                                        json.dumps(result) if result is not None else None, error,
                                        ev_id))

    def evaluation(self, ev_id: int) -> EvaluationRow | None:
        row = self._db().execute("SELECT * FROM evaluations WHERE id = ?", (ev_id,)).fetchone()
        return self._ev(row) if row else None

    def cached_evaluation(self, scenario: str, split: str, weights_hash: str) -> EvaluationRow | None:
        row = self._db().execute(
            "SELECT * FROM evaluations WHERE scenario = ? AND split = ? AND weights_hash = ? "
            "AND status IN ('queued', 'running', 'done') ORDER BY id LIMIT 1",
            (scenario, split, weights_hash)).fetchone()
        return self._ev(row) if row else None

    def interrupted_evaluations(self) -> list[EvaluationRow]:
        rows = self._db().execute("SELECT * FROM evaluations WHERE status IN ('queued', 'running') "
                                  "ORDER BY id").fetchall()
        return [self._ev(r) for r in rows]

    @staticmethod
    def _ev(row: sqlite3.Row) -> EvaluationRow:
        d = dict(row)
        d["result"] = _loads(d["result"])
        return EvaluationRow.model_validate(d)
