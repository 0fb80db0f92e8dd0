"""The grader-side judgement cache: one SQLite file under ``$AUTORL_GYM_CACHE/judge/``.

A verdict is stored under the sha256 of (kind, order, the prompt's fields, the judge's identity:
backend, model, settings, prompt name, version and digest), so grading the same outputs again
asks the judge nothing, and any change of judge or prompt asks again. Safe across threads and
processes (WAL, busy timeout).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from autorl_gym.core.paths import cache_dir


def judgement_key(kind: str, identity: dict[str, Any], **fields: str) -> str:
    blob = json.dumps({"kind": kind, "judge": identity, "fields": fields}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class JudgementCache:
    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / "judge" / "judgements.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS judgements "
                         "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM judgements WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO judgements VALUES (?, ?, ?)",
                             (key, json.dumps(value), time.time()))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM judgements").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
