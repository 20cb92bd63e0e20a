"""The local store: calibrations, measurements and past assessments in one SQLite file (WAL mode).

Where: `$AFFORD_HOME/afford.sqlite3`, else the user data directory (platformdirs). Several processes may write
at once: WAL lets readers and one writer proceed together, and writers wait (busy timeout) instead of failing,
so no row is lost. A file that is not SQLite, or a SQLite database that is not afford's (its application_id
differs and it has tables), is reported in one line and never touched.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afford.errors import AffordError

APPLICATION_ID = 0x41464644  # "AFFD": marks the file as afford's
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
KINDS = ("assessment", "measurement", "calibration")


class StoreError(AffordError):
    """The store file is corrupt, foreign or unwritable; it is left as it is."""


def default_path() -> Path:
    home = os.environ.get("AFFORD_HOME")
    if home:
        return Path(home).expanduser() / "afford.sqlite3"
    from platformdirs import user_data_dir

    return Path(user_data_dir("afford", appauthor=False)) / "afford.sqlite3"


@dataclass(frozen=True)
class Record:
    id: int
    kind: str
    name: str
    created: str
    inputs: dict[str, Any]
    result: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "name": self.name, "created": self.created,
                "inputs": self.inputs, "result": self.result}


class Store:
    """One connection per Store; open it, use it, close it (also a context manager)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self._check_foreign()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._init()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable afford store ({exc}); left untouched") from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the store ({exc.strerror or exc})") from None

    def _check_foreign(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb") as f:
            header = f.read(16)
        if header != b"SQLite format 3\x00":
            raise StoreError(f"{self.path} is not an SQLite file (corrupt or foreign); left untouched - move it "
                             "away or set AFFORD_HOME")

    def _init(self) -> None:
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app_id != APPLICATION_ID and tables:
            self.conn.close()
            raise StoreError(f"{self.path} is another program's SQLite database; left untouched - set AFFORD_HOME "
                             "to use another folder")
        self.conn.execute("PRAGMA journal_mode = WAL")
        if app_id != APPLICATION_ID:
            self._write("BEGIN IMMEDIATE")
            try:
                self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self.conn.execute(
                    "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
                    "name TEXT NOT NULL, created TEXT NOT NULL, inputs TEXT NOT NULL, result TEXT NOT NULL)")
                self.conn.execute("CREATE INDEX IF NOT EXISTS records_kind ON records (kind, id)")
                self.conn.execute("COMMIT")
            except sqlite3.DatabaseError:
                self.conn.execute("ROLLBACK")
                raise

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run a write, retrying while another process holds the lock (beyond SQLite's own busy wait)."""
        for attempt in range(20):
            try:
                return self.conn.execute(sql, args)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise StoreError(f"{self.path}: the store stayed locked by another process")

    def add(self, kind: str, name: str, inputs: dict[str, Any], result: dict[str, Any]) -> int:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        cur = self._write("INSERT INTO records (kind, name, created, inputs, result) VALUES (?, ?, ?, ?, ?)",
                          (kind, name, created, json.dumps(inputs, default=str), json.dumps(result, default=str)))
        return int(cur.lastrowid or 0)

    def _record(self, row: tuple[Any, ...]) -> Record:
        return Record(id=row[0], kind=row[1], name=row[2], created=row[3], inputs=json.loads(row[4]),
                      result=json.loads(row[5]))

    def list(self, kind: str | None = None, limit: int = 50) -> list[Record]:
        sql = "SELECT id, kind, name, created, inputs, result FROM records"
        args: tuple[Any, ...] = ()
        if kind:
            sql += " WHERE kind = ?"
            args = (kind,)
        rows = self.conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [self._record(r) for r in rows]

    def get(self, record_id: int) -> Record:
        row = self.conn.execute("SELECT id, kind, name, created, inputs, result FROM records WHERE id = ?",
                                (record_id,)).fetchone()
        if row is None:
            raise StoreError(f"no record {record_id} in {self.path}")
        return self._record(row)

    def latest(self, kind: str, name: str) -> Record | None:
        row = self.conn.execute("SELECT id, kind, name, created, inputs, result FROM records WHERE kind = ? AND "
                                "name = ? ORDER BY id DESC LIMIT 1", (kind, name)).fetchone()
        return self._record(row) if row else None

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
