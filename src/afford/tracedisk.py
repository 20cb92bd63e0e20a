"""The trace cache's second level: traced data kept across runs in its own SQLite file beside the store.

Where: `trace-cache.sqlite3` in the store's folder (`$AFFORD_HOME`, else the user data directory). A file of its
own, not a table in `afford.sqlite3`: it is disposable (delete it at any time), it churns (rows replaced and
evicted) where the store only grows, and a damaged cache can never put the user's history at risk.

A row is one traced job: its key is a hash of the job (tracecache.Key), its `stamp` a hash of what else changes
the traced graph (the payload format, afford's version and the stat of its own files, torch's and the model
libraries' versions). A row whose stamp differs, or whose payload does not decode, is ignored and deleted, and
the next trace replaces it. Bounded: at most MAX_ROWS rows and MAX_BYTES of payload, the least recently used go
first. Every SQLite or file error means no disk cache for that call (a file that cannot be opened: one warning
per process), never a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from afford import tracecodec
from afford.tracecodec import CodecError, Traced

FILENAME = "trace-cache.sqlite3"
APPLICATION_ID = 0x41464443  # "AFDC": marks the file as afford's trace cache
SCHEMA_VERSION = 1
# traced jobs kept: a sweep of every timm model (1,371 traces, about 5 KB each compressed, 15 KB at most for
# ViTs; docs/benchmarks.md "All of timm") fits with room, so its re-run prices from disk; MAX_BYTES bounds the file
MAX_ROWS = 4096
MAX_BYTES = 256 * 2**20  # compressed payload kept, all rows together
MAX_PAYLOAD_BYTES = 512 * 2**20  # a row's payload once decompressed (a larger one is corrupt or foreign)
TIMEOUT_S = 2.0  # a cache waits this long for another process's write, then gives up for this call
LIBRARIES = ("torch", "torchvision", "timm", "transformers", "diffusers", "peft", "accelerate", "onnx",
             "onnx2torch", "keras")  # their code builds or dispatches the traced graphs

_warned: set[str] = set()
T = TypeVar("T")


def path() -> Path:
    """The cache file: beside the store's database."""
    from afford.store import default_path

    return default_path().parent / FILENAME


@cache
def stamp() -> str:
    """A hash of everything besides the job that changes a trace: this format, afford's code, the libraries."""
    import afford

    root = Path(afford.__file__).parent
    files = sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        own = metadata.version("afford")
    except metadata.PackageNotFoundError:
        own = None
    facts = {"format": tracecodec.FORMAT, "schema": SCHEMA_VERSION, "afford": own, "code": files,
             "libraries": versions, "python": list(sys.version_info[:2])}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _warn_once(where: Path, exc: BaseException) -> None:
    """One warning per file and process that the disk cache is off (the CLI silences warnings)."""
    if str(where) in _warned:
        return
    _warned.add(str(where))
    warnings.warn(f"afford: trace cache on disk off ({where}: {exc}); traces are kept for this process only",
                  RuntimeWarning, stacklevel=4)


# open connections of this thread (`afford web` serves requests on threads; a thread's go when it ends), by file
# (path, process and inode): a sweep re-run loads a thousand rows, and opening the file and checking its schema
# for each was a third of a load
_local = threading.local()


def _connections() -> dict[tuple[str, int, int], sqlite3.Connection]:
    """This thread's open connections."""
    if not hasattr(_local, "open"):
        _local.open = {}
    opened: dict[tuple[str, int, int], sqlite3.Connection] = _local.open
    return opened


def _connection(where: Path) -> sqlite3.Connection | None:
    """This thread's connection to the cache file, opened and checked once; None for another program's file."""
    key = (str(where), os.getpid(), where.stat().st_ino)
    opened = _connections()
    conn = opened.get(key)
    if conn is None:
        conn = sqlite3.connect(where, timeout=TIMEOUT_S, isolation_level=None)
        if not _ready(conn):
            conn.close()
            return None
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a cache may lose its last rows in a power cut, no more
        opened[key] = conn
    return conn


def _run(create: bool, work: Callable[[sqlite3.Connection], T], default: T) -> T:
    """`work` on a connection to the cache file; `default` when there is no file (and `create` is false) or it
    cannot be used: a locked file silently, anything else with one warning per process."""
    where = path()
    try:
        if not where.exists():
            if not create:
                return default
            where.parent.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(where).close()  # the file, so that it has an inode to key its connection by
        conn = _connection(where)
        if conn is None:
            _warn_once(where, RuntimeError("another program's SQLite file; left untouched"))
            return default
        return work(conn)
    except (sqlite3.Error, OSError) as exc:
        opened = _connections()
        for key in [k for k in opened if k[0] == str(where)]:  # reopen next time
            opened.pop(key).close()
        if "locked" not in str(exc) and "busy" not in str(exc):
            _warn_once(where, exc)
        return default


def _ready(conn: sqlite3.Connection) -> bool:
    """Make the file afford's trace cache (new, or of another schema version: it is only a cache); False when
    it is another program's database."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id == APPLICATION_ID and version == SCHEMA_VERSION:
        return True
    tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    if app_id != APPLICATION_ID and tables:
        return False
    conn.execute("PRAGMA auto_vacuum = FULL")  # evicted rows give their pages back to the file system
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DROP TABLE IF EXISTS traces")
    conn.execute("CREATE TABLE traces (key TEXT PRIMARY KEY, stamp TEXT NOT NULL, spec TEXT NOT NULL, "
                 "used INTEGER NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL, payload BLOB NOT NULL)")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.execute("COMMIT")
    return True


def load(row_key: str) -> tuple[Traced, str] | None:
    """The traced data and spec text kept under `row_key`, or None (absent, stale or corrupt: dropped)."""

    def work(conn: sqlite3.Connection) -> tuple[Traced, str] | None:
        row = conn.execute("SELECT stamp, spec, payload FROM traces WHERE key = ?", (row_key,)).fetchone()
        if row is None:
            return None
        try:
            traced = _decoded(row)
        except (CodecError, zlib.error):
            _quietly(conn, "DELETE FROM traces WHERE key = ?", row_key)
            return None
        _quietly(conn, "UPDATE traces SET used = ? WHERE key = ?", row_key, time.time_ns())
        return traced, row[1]

    return _run(False, work, None)


def _quietly(conn: sqlite3.Connection, sql: str, row_key: str, *before: Any) -> None:
    """A bookkeeping write of a read (recency, a bad row dropped): skipped when the file is locked or read-only."""
    try:
        conn.execute(sql, (*before, row_key))
    except sqlite3.OperationalError:
        pass


def _decoded(row: tuple[Any, ...]) -> Traced:
    """A row's payload read back; CodecError for another version's row or a corrupt one."""
    kept_stamp, spec, payload = row
    if kept_stamp != stamp() or not isinstance(spec, str) or not isinstance(payload, bytes):
        raise CodecError("another version's row")
    inflate = zlib.decompressobj()
    raw = inflate.decompress(payload, MAX_PAYLOAD_BYTES)
    if inflate.unconsumed_tail or not inflate.eof:
        raise CodecError("a truncated or oversized payload")
    return tracecodec.loads(raw)


def save(row_key: str, traced: Traced, spec: str) -> bool:
    """Keep a trace under `row_key` (replacing any row there) and evict the least recently used beyond the
    bounds; False when it was not kept (a value the codec refuses, a payload over the bound, no usable file)."""
    try:
        payload = zlib.compress(tracecodec.dumps(traced), 6)
    except CodecError:
        return False
    if len(payload) > MAX_BYTES:
        return False

    def work(conn: sqlite3.Connection) -> bool:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT OR REPLACE INTO traces (key, stamp, spec, used, size, created, payload) VALUES "
                         "(?, ?, ?, ?, ?, ?, ?)",
                         (row_key, stamp(), spec, time.time_ns(), len(payload), time.time(), payload))
            _evict(conn)
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
        return True

    return _run(True, work, False)


def _evict(conn: sqlite3.Connection) -> None:
    """Delete the least recently used rows beyond MAX_ROWS or MAX_BYTES."""
    kept_rows, kept_bytes, drop = 0, 0, []
    for key, size in conn.execute("SELECT key, size FROM traces ORDER BY used DESC").fetchall():
        kept_rows, kept_bytes = kept_rows + 1, kept_bytes + int(size)
        if kept_rows > MAX_ROWS or kept_bytes > MAX_BYTES:
            drop.append((key,))
    conn.executemany("DELETE FROM traces WHERE key = ?", drop)


def clear() -> None:
    """Delete every row of the cache file, if there is one (its schema stays)."""

    def work(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM traces")

    _run(False, work, None)


def rows() -> list[dict[str, Any]]:
    """The rows kept, most recently used first (key, stamp, spec, used, size)."""

    def work(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        cur = conn.execute("SELECT key, stamp, spec, used, size FROM traces ORDER BY used DESC")
        return [dict(zip(("key", "stamp", "spec", "used", "size"), r, strict=True)) for r in cur]

    return _run(False, work, [])
