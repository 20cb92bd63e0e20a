"""`afford sweep` and `afford compare --jobs` (issue 15, item 3): worker processes give the same rows as one
process, in the input order; a model that fails is its rows' error; CSV and JSON carry the stable columns."""

from __future__ import annotations

import csv
import json
import os
import pickle
from pathlib import Path

import pytest

from afford.decide import sweep as sw
from afford.decide.budget import Budget
from afford.decide.compare import assess_row, compare
from afford.errors import InputError
from hostile.harness import run

TINY = ["torchvision:squeezenet1_0", "torchvision:resnet18"]
BAD = "torchvision:no_such_net"
JOB = {"train_samples": 1000, "infer_samples": 10}


def test_jobs_2_gives_the_same_points_as_jobs_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one multi-process run of this file: this process and a worker, two traced shapes per model, two
    devices each. The worker starts after the second group however quick (QUICK_S), and reads the disk cache."""
    kw = {"hardware": ["a100-80gb", "t4"], "precision": ["bf16-mixed"], "batch_size": [1, 8], **JOB}
    one = sw.sweep([*TINY, BAD], jobs=1, **kw).to_dict()  # type: ignore[arg-type]
    monkeypatch.setattr(sw, "QUICK_S", -1.0)
    pids = sw.run_all(os.readlink, ["/proc/self"] * 4, 2)  # the first two items always run here
    assert len(pids) == 4 and pids[:2] == [str(os.getpid())] * 2
    two = sw.sweep([*TINY, BAD], jobs=2, **kw).to_dict()  # type: ignore[arg-type]
    assert two == one
    rows = one["rows"]
    assert [(r["model"], r["hardware"], r["batch_size"]) for r in rows[:4]] == [
        (TINY[0], "a100-80gb", 1), (TINY[0], "a100-80gb", 8), (TINY[0], "t4", 1), (TINY[0], "t4", 8)]
    assert len(rows) == 3 * 2 * 1 * 2 and one["errors"] == 4
    assert all(r["error"] and "no_such_net" in r["error"] and r["params"] is None for r in rows if r["model"] == BAD)
    priced = [r for r in rows if r["model"] != BAD]
    assert all(r["error"] is None and r["params"] > 0 and r["train_seconds"] > 0 for r in priced)
    # hardware never changes the trace; it changes the time
    a100, t4 = priced[0], priced[2]
    assert a100["forward_flops"] == t4["forward_flops"] and a100["params"] == t4["params"]
    # these tiny nets are host-bound (the host issues the ops and the optimizer's per-tensor work), so the slower
    # GPU takes as long, not less; the money differs by the devices' prices
    assert t4["train_seconds"] >= a100["train_seconds"]
    assert t4["train_usd"] < a100["train_usd"]


def test_compare_row_task_pickles_and_fails_as_a_row() -> None:
    """What compare sends a worker pickles, and a bad model comes back as its row's error (jobs=1 runs it here)."""
    task = (BAD, "a100-80gb", None, None, {"train_samples": 1000}, Budget())
    row = pickle.loads(pickle.dumps(assess_row))(pickle.loads(pickle.dumps(task)))
    assert row.verdict == "error" and row.error and "no_such_net" in row.error
    result = compare([TINY[0], BAD], train_samples=1000, jobs=1)
    assert [r.model for r in result.rows] == [TINY[0], BAD]


def test_csv_header_and_rows(tmp_path: Path) -> None:
    out = tmp_path / "points.csv"
    r = run(["sweep", TINY[0], BAD, "--hardware", "a100-80gb,h100-sxm", "--train-samples", "1000", "--jobs", "1",
             "--csv", str(out), "--json"])
    assert r.code == 0, r.stderr
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == sw.COLUMNS
    assert [(row[0], row[1]) for row in rows[1:]] == [(TINY[0], "a100-80gb"), (TINY[0], "h100-sxm"),
                                                       (BAD, "a100-80gb"), (BAD, "h100-sxm")]
    assert rows[1][4] == "1248424" and rows[1][-1] == ""  # squeezenet1_0's parameters, no error
    assert rows[3][4] == "" and "no_such_net" in rows[3][-1]
    data = json.loads(r.stdout)
    assert data["columns"] == list(sw.COLUMNS) and data["written"] == [str(out)] and data["errors"] == 2
    assert [row["precision"] for row in data["rows"]] == ["bf16-mixed"] * 4


def test_parquet_holds_the_same_rows_as_csv(tmp_path: Path) -> None:
    """--parquet (the parquet extra, pyarrow) writes the rows and columns --csv writes."""
    pq = pytest.importorskip("pyarrow.parquet")
    out, flat = tmp_path / "points.parquet", tmp_path / "points.csv"
    r = run(["sweep", TINY[0], "--hardware", "a100-80gb,h100-sxm", "--train-samples", "1000", "--jobs", "1",
             "--parquet", str(out), "--csv", str(flat)])
    assert r.code == 0, r.stderr
    table = pq.read_table(str(out))
    assert tuple(table.column_names) == sw.COLUMNS
    rows = table.to_pylist()
    with flat.open(newline="") as fh:
        flat_rows = list(csv.DictReader(fh))
    assert [(x["model"], x["hardware"]) for x in rows] == [(x["model"], x["hardware"]) for x in flat_rows]
    assert rows[0]["params"] == 1248424


def test_html_report_of_a_sweep(tmp_path: Path) -> None:
    """--report PATH.html: the sweep's points as a table (every row, errors included) and its cost-time plot."""
    out = tmp_path / "sweep.html"
    r = run(["sweep", TINY[0], BAD, "--hardware", "a100-80gb,t4", "--train-samples", "1000", "--jobs", "1",
             "--report", str(out), "--json"])
    assert r.code == 0, r.stderr
    html = out.read_text(encoding="utf-8")
    assert json.loads(r.stdout)["written"] == [str(out)]
    assert html.count("<tr") >= 5  # the header and four points
    assert "no_such_net" in html and TINY[0] in html and 'data-plot="cost_time"' in html
    again = run(["sweep", TINY[0], "--report", str(out)])
    assert again.code == 2 and "exists" in again.stderr


@pytest.mark.parametrize("jobs", [0, -1, 2.5, True])
def test_bad_jobs_is_one_input_error(jobs: object) -> None:
    with pytest.raises(InputError, match="jobs must be a positive integer"):
        sw.check_jobs(jobs)
    with pytest.raises(InputError, match="jobs must be a positive integer"):
        sw.run_all(str, ["a", "b"], jobs)  # type: ignore[arg-type]


def test_bad_jobs_on_the_command_line_is_one_line() -> None:
    r = run(["compare", *TINY, "--jobs", "0"])
    assert r.code == 2 and r.stderr.strip() == "afford: error: --jobs must be a positive integer of at most 512, got 0"


def test_default_jobs_is_the_core_count() -> None:
    assert 1 <= sw.default_jobs() <= 4096


def test_sweep_refuses_budget_and_plan_options() -> None:
    with pytest.raises(InputError, match="sweep does not take budget_usd"):
        sw.sweep(TINY, budget_usd=10.0)
    with pytest.raises(InputError, match="unknown option 'batch'"):
        sw.sweep(TINY, batch=4)


def test_forward_only_counts_the_same_forward_without_a_training_step() -> None:
    """`--forward-only` (issue 15's counting sweep): the same parameters, forward FLOPs and inference memory as a
    full trace, no training figures, and a trace cached apart from the full one."""
    import afford
    from afford.errors import WorkloadError

    full = sw.sweep(["torchvision:resnet18"], hardware=["t4"], infer_samples=10)
    fwd = sw.sweep(["torchvision:resnet18"], hardware=["t4"], infer_samples=10, forward_only=True)
    a, b = full.points[0], fwd.points[0]
    assert (b.params, b.forward_flops, b.infer_seconds) == (a.params, a.forward_flops, a.infer_seconds)
    assert a.train_seconds is not None and b.train_seconds is None and b.error is None
    counted = afford.assess("torchvision:resnet18", infer_samples=10, forward_only=True).to_dict()
    assert counted["per_sample"]["backward_flops"] == 0 and any("forward_only" in n for n in counted["notes"])
    # the full trace is not served from the forward-only one's cache entry
    assert afford.assess("torchvision:resnet18", infer_samples=10).to_dict()["per_sample"]["backward_flops"] > 0
    with pytest.raises(WorkloadError, match="no training step"):
        afford.assess("torchvision:resnet18", train_samples=10, forward_only=True)


def test_a_long_sweep_written_to_a_file_shows_its_first_rows(tmp_path: Path) -> None:
    """Every row goes to the CSV; the screen shows the first SCREEN_ROWS and says how many more there are."""
    from typer.testing import CliRunner

    from afford.cli import app
    from afford.cli.sweep import SCREEN_ROWS
    from afford.hardware.catalog import Catalog

    devices = [d.id for d in Catalog.load().devices.values() if d.kind == "gpu" and d.peak_tflops][:21]
    out = tmp_path / "points.csv"
    result = CliRunner().invoke(app, ["sweep", "torchvision:resnet18", "--hardware", ",".join(devices),
                                      "--batch-size", "1,2,4,8,16,32,64", "--forward-only", "--jobs", "1",
                                      "--csv", str(out)])
    assert result.exit_code == 0, result.output
    with out.open() as f:
        assert len(list(csv.DictReader(f))) == 7 * len(devices) > SCREEN_ROWS
    assert f"{7 * len(devices) - SCREEN_ROWS:,} more priced points" in result.output
