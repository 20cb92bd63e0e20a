"""Training throughput of ResNeXt101-32x4d against NVIDIA's published DeepLearningExamples tables
(tests/golden/dle_vision_training.toml): the mixed-precision rows at 128 a GPU (one trace, priced on the V100 with
1 and 8 GPUs and on the A100 with 1), each within the file's tolerance. bench/validate_dle_train.py prices every
row, misses included (A100 TF32, 8-GPU AMP on the A100), and writes them to docs/validation.md."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

import afford

DATA = tomllib.loads((Path(__file__).parent / "dle_vision_training.toml").read_text())
ASSERTED = [r for r in DATA["row"] if r["model"] == "timm:resnext101_32x4d" and r["precision"] == "fp16-mixed"
            and (r["hardware"], r["gpus"]) in (("v100-16gb", 1), ("v100-16gb", 8), ("a100-80gb", 1))]


def test_the_file_holds_every_row_of_both_readmes_training_tables() -> None:
    keys = {(r["model"], r["hardware"], r["precision"], r["gpus"]) for r in DATA["row"]}
    assert len(keys) == len(DATA["row"]) == 3 * 2 * 2 * 2  # models x systems x precisions x (1, 8) GPUs
    assert len(ASSERTED) == 3


@pytest.mark.parametrize("row", ASSERTED, ids=lambda r: f"{r['hardware']}-x{r['gpus']}")
def test_mixed_precision_throughput_within_tolerance(row: dict[str, Any]) -> None:
    b, n = int(row["batch_size"]), int(row["gpus"])
    t = afford.assess(row["model"], batch_size=b, train_samples=b * n * 100, precision=row["precision"],
                      hardware=row["hardware"], count=n, optimizer="sgd-momentum", amp=True).to_dict()["time"]
    err = t["train_samples_per_second"] / row["samples_per_s"] - 1
    assert abs(err) <= DATA["tolerance"], err
