"""Eager inference of ResNeXt101-32x4d and SE-ResNeXt101-32x4d against NVIDIA's published DeepLearningExamples
tables (tests/golden/dle_vision_inference.toml: V100 and T4, FP32 and AMP): the rows at batch 1 and 64 of both
models, each within the file's tolerance on throughput and on latency. bench/validate_dle_vision.py prices every
row and writes them all, misses included, to docs/validation.md."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

import afford

DATA = tomllib.loads((Path(__file__).parent / "dle_vision_inference.toml").read_text())
ROWS = [r for r in DATA["row"] if r["batch_size"] in (1, 64)]


def test_the_file_holds_every_row_of_the_four_tables_of_each_readme() -> None:
    keys = {(r["model"], r["hardware"], r["precision"], r["batch_size"]) for r in DATA["row"]}
    assert len(keys) == len(DATA["row"]) == 2 * 2 * 2 * 9  # models x devices x precisions x batches 1..256


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['model']}-{r['hardware']}-{r['precision']}-{r['batch_size']}")
def test_throughput_and_latency_within_tolerance(row: dict[str, Any]) -> None:
    b = int(row["batch_size"])
    t = afford.assess(row["model"], batch_size=b, infer_samples=b, precision=row["precision"],
                      hardware=row["hardware"], forward_only=True).to_dict()["time"]
    err = t["infer_samples_per_second"] / row["samples_per_s"] - 1
    lat = t["infer_batch_seconds"] * 1e3 / row["latency_ms"] - 1
    assert abs(err) <= DATA["tolerance"] and abs(lat) <= DATA["tolerance"], (err, lat)
