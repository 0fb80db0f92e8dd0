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

    # -- the two job tables: submissions of runs, and evaluations (POST /evaluate) ----------------
    def _add_job(self, table: str, **cols: Any) -> int:
        cols = {**cols, "status": "queued", "accepted_at": time.time()}
        with self._tx() as db:
            cur = db.execute(f"INSERT INTO {table} ({', '.join(cols)}) "
                             f"VALUES ({','.join('?' * len(cols))})", tuple(cols.values()))
            return int(cur.lastrowid)

    def _start_job(self, table: str, job_id: int) -> None:
        with self._tx() as db:
            db.execute(f"UPDATE {table} SET status = 'running', started_at = ?, "
                       "attempts = attempts + 1 WHERE id = ?", (time.time(), job_id))

    def _jobs(self, table: str, where: str, params: tuple[Any, ...], limit: int | None = None) -> list[Any]:
        row_model, payload = _JOB_TABLES[table]
        sql = f"SELECT * FROM {table} WHERE {where} ORDER BY id" + (f" LIMIT {limit}" if limit else "")
        out = []
        for row in self._db().execute(sql, params).fetchall():
            d = dict(row)
            d[payload] = _loads(d[payload])
            out.append(row_model.model_validate(d))
        return out

    def _job(self, table: str, job_id: int) -> Any:
        found = self._jobs(table, "id = ?", (job_id,), limit=1)
        return found[0] if found else None

    # -- submissions -----------------------------------------------------------------------------
    def add_submission(self, run_id: str, model_path: str, weights_hash: str | None) -> int:
        return self._add_job("submissions", run_id=run_id, model_path=model_path,
                             weights_hash=weights_hash)

    def start_submission(self, sub_id: int) -> None:
        self._start_job("submissions", sub_id)

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
        return self._job("submissions", sub_id)

    def submissions(self, run_id: str) -> list[SubmissionRow]:
        return self._jobs("submissions", "run_id = ?", (run_id,))

    def same_weights(self, run_id: str, weights_hash: str) -> SubmissionRow | None:
        """The earliest submission of this run with these weights that is graded or pending."""
        found = self._jobs("submissions", f"run_id = ? AND weights_hash = ? AND {_LIVE}",
                           (run_id, weights_hash), limit=1)
        return found[0] if found else None

    def interrupted_submissions(self) -> list[SubmissionRow]:
        return self._jobs("submissions", _PENDING, ())

    # -- evaluations (POST /evaluate) ----------------------------------------------------------
    def add_evaluation(self, scenario: str, split: str, model_path: str, weights_hash: str) -> int:
        return self._add_job("evaluations", scenario=scenario, split=split, model_path=model_path,
                             weights_hash=weights_hash)

    def start_evaluation(self, ev_id: int) -> None:
        self._start_job("evaluations", ev_id)

    def finish_evaluation(self, ev_id: int, result: dict[str, Any] | None, error: str | None) -> None:
        status = "done" if result is not None else "failed"
        with self._tx() as db:
            db.execute("UPDATE evaluations SET status = ?, graded_at = ?, result = ?, error = ? "
                       "WHERE id = ?", (status, time.time(),
                                        json.dumps(result) if result is not None else None, error,
                                        ev_id))

    def evaluation(self, ev_id: int) -> EvaluationRow | None:
        return self._job("evaluations", ev_id)

    def cached_evaluation(self, scenario: str, split: str, weights_hash: str) -> EvaluationRow | None:
        found = self._jobs("evaluations", f"scenario = ? AND split = ? AND weights_hash = ? AND {_LIVE}",
                           (scenario, split, weights_hash), limit=1)
        return found[0] if found else None

    def interrupted_evaluations(self) -> list[EvaluationRow]:
        return self._jobs("evaluations", _PENDING, ())


#: each job table: its row model and its JSON column
_JOB_TABLES: dict[str, tuple[type[BaseModel], str]] = {
    "submissions": (SubmissionRow, "record"), "evaluations": (EvaluationRow, "result")}
_PENDING = "status IN ('queued', 'running')"
_LIVE = "status IN ('queued', 'running', 'done')"
