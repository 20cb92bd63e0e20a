"""timm's measured training table (RTX 3090, PyTorch 1.12, AMP, SGD with momentum): the csv is read as shipped and
bench/validate_timm_train.py prices its rows.

The csv is a byte-exact copy of huggingface/pytorch-image-models @ bd6d377c74ef4dbcb1686e6403b657546bf49429
`results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv`; the whole table is priced by the bench script
(docs/timm_training.md). Here: the file parses, its columns agree with one another, and two rows priced through the
script's own `price_one` give a finite, positive training throughput (no tolerance: the table is shown, not
asserted)."""

from __future__ import annotations

import csv
import hashlib
import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

CSV = Path(__file__).with_name("timm_train_rtx3090.csv")
BENCH = Path(__file__).resolve().parents[2] / "bench"
HEADER = ["model", "train_samples_per_sec", "train_step_time", "train_batch_size", "train_img_size", "param_count"]
ROWS = 838
SHA256 = "a02ab1be076ad1f2c217ecbe4d4e083228ea83eb4f013bfbe4933e021bd45ac2"  # of the upstream file, 38,370 bytes


@pytest.fixture(scope="module")
def script() -> ModuleType:
    """bench/validate_timm_train.py as a module (bench/ on the path, as when it runs as a script)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("validate_timm_train")
    finally:
        sys.path.remove(str(BENCH))


def test_csv_is_the_upstream_file() -> None:
    data = CSV.read_bytes()
    assert len(data) == 38370
    assert hashlib.sha256(data).hexdigest() == SHA256


def test_csv_parses_with_consistent_columns(script: ModuleType) -> None:
    with CSV.open(newline="") as fh:
        assert next(csv.reader(fh)) == HEADER
    rows = script.read_rows(script.CSV)
    assert len(rows) == ROWS
    assert len({r["model"] for r in rows}) == ROWS
    for r in rows:
        sps, step_ms = float(r["train_samples_per_sec"]), float(r["train_step_time"])
        batch, size = int(r["train_batch_size"]), int(r["train_img_size"])
        assert sps > 0 and step_ms > 0 and float(r["param_count"]) > 0 and 1 <= batch <= 512 and 100 <= size <= 800
        # timm's step time (ms) and its samples/s describe the same step: batch / rate is the step, +0..2 %
        assert 0.999 <= batch / sps * 1000 / step_ms <= 1.03, r["model"]
    speeds = [float(r["train_samples_per_sec"]) for r in rows]
    assert speeds == sorted(speeds, reverse=True)  # timm sorts its table by throughput, fastest first


@pytest.mark.parametrize("model", ["tinynet_e", "resnet18"])
def test_script_prices_a_row(script: ModuleType, model: str) -> None:
    row = next(r for r in script.read_rows(script.CSV) if r["model"] == model)
    rec = script.price_one(model, int(row["train_img_size"]), int(row["train_batch_size"]))
    assert rec["ok"], rec.get("error")
    assert math.isfinite(rec["predicted"]) and rec["predicted"] > 0
    assert math.isclose(rec["predicted"] * rec["step_seconds"], int(row["train_batch_size"]), rel_tol=1e-9)
    print(f"{model}: predicted {rec['predicted']:,.0f}/s, measured {float(row['train_samples_per_sec']):,.0f}/s")
