"""The local store: records round-trip, concurrent writers lose nothing, corrupt or foreign files are untouched."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from afford.cli import app
from afford.store import Store, StoreError

WRITER = r"""
import sys
from pathlib import Path
from afford.store import Store
path, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with Store(path) as s:
    for i in range(n):
        s.add("measurement", f"{tag}-{i}", {"i": i}, {"tag": tag})
"""


def test_round_trip(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite3") as s:
        rid = s.add("assessment", "torchvision:resnet18", {"train_samples": 10}, {"x": 1.5})
        r = s.get(rid)
        assert (r.kind, r.name, r.inputs, r.result) == ("assessment", "torchvision:resnet18", {"train_samples": 10},
                                                        {"x": 1.5})
        assert s.list("assessment")[0].id == rid
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_writers_lose_no_row(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    Store(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{k}", "60"]) for k in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    with Store(path) as s:
        assert s.count() == 240
        names = {r.name for r in s.list(limit=1000)}
        assert {f"w{k}-{i}" for k in range(4) for i in range(60)} == names


def test_corrupt_and_foreign_files_are_left_untouched(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database at all" * 10)
    before = junk.read_bytes()
    with pytest.raises(StoreError, match="not an SQLite file"):
        Store(junk)
    assert junk.read_bytes() == before
    foreign = tmp_path / "foreign.sqlite3"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match="another program"):
        Store(foreign)
    assert foreign.read_bytes() == before


def test_cli_keeps_assessments_and_history_lists_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFFORD_HOME", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(app, ["assess", "torchvision:alexnet", "--json"]).exit_code == 0
    listed = runner.invoke(app, ["history", "--json"])
    records = json.loads(listed.stdout)["records"]
    assert records[0]["name"] == "torchvision:alexnet" and records[0]["kind"] == "assessment"
    shown = runner.invoke(app, ["history", "show", str(records[0]["id"])])
    assert json.loads(shown.stdout)["result"]["model"]["params"] == 61_100_840
    (tmp_path / "afford.sqlite3").unlink()
    for extra in ("-wal", "-shm"):
        (tmp_path / f"afford.sqlite3{extra}").unlink(missing_ok=True)
    (tmp_path / "afford.sqlite3").write_text("garbage")
    bad = runner.invoke(app, ["history"])
    assert bad.exit_code == 2 and "left untouched" in bad.output
    still = runner.invoke(app, ["assess", "torchvision:alexnet", "--json"])  # a broken store never blocks work
    assert still.exit_code == 0
    assert (tmp_path / "afford.sqlite3").read_text() == "garbage"
