"""timm's measured inference table (RTX PRO 6000 Blackwell Max-Q, batch 2048, AMP fp16) against afford's prediction.

The csv is timm's own benchmark (its `source` column cites the results file and commit); afford's constants were not
fitted to it. The whole table is priced by bench/validate_timm_infer.py (docs/timm_inference.md); here a fixed sample
of five well-known models at their 224 px csv rows must be within 2x (the issue's "none off 2x" bar)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

import afford

CSV = Path(__file__).with_name("timm_infer_pro6000.csv")
HARDWARE = "rtx-pro-6000-maxq"
SAMPLE = ["resnet50", "vit_base_patch16_224", "convnext_tiny", "efficientnet_b0", "regnety_040"]
SIZE = 224


def _rows() -> list[dict[str, str]]:
    """The measured table, one dict per csv row."""
    with CSV.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _row(model: str, size: int = SIZE) -> dict[str, str]:
    """The csv row of `model` at `size` px."""
    found = [r for r in _rows() if r["model"] == model and int(r["img_size"]) == size]
    assert len(found) == 1, f"{model}@{size}: {len(found)} csv rows"
    return found[0]


def test_csv_parses_and_every_row_has_a_source() -> None:
    rows = _rows()
    assert len(rows) >= 1600
    for r in rows:
        assert r["source"].strip(), f"{r['model']}: no source"
        assert "pytorch-image-models" in r["source"]
        assert int(r["img_size"]) > 0 and int(r["infer_batch_size"]) > 0
        assert float(r["infer_samples_per_sec"]) > 0 and float(r["gmacs"]) >= 0
    assert {r["gpu"] for r in rows} == {"RTX Pro 6000 Max-Q"}
    assert {r["precision"] for r in rows} == {"AMP(fp16)"}


@pytest.mark.parametrize("model", SAMPLE)
def test_sample_within_2x(model: str, assessed: Any) -> None:
    row = _row(model)
    batch = int(row["infer_batch_size"])
    a = assessed(f"timm:{model}", image_size=SIZE, batch_size=batch, infer_samples=batch, precision="fp16-mixed",
                 hardware=HARDWARE)
    predicted = a.to_dict()["time"]["infer_samples_per_second"]
    measured = float(row["infer_samples_per_sec"])
    ratio = predicted / measured
    macs = a.to_dict()["per_sample"]["forward_macs"] / 1e9
    print(f"{model}@{SIZE}: predicted {predicted:,.0f}/s, measured {measured:,.0f}/s, error {ratio - 1:+.1%}; "
          f"forward {macs:.2f} GMACs vs csv {float(row['gmacs']):.2f}")
    assert 0.5 <= ratio <= 2.0, f"{model}: predicted {predicted:,.0f}/s vs measured {measured:,.0f}/s ({ratio:.2f}x)"


def test_efficientformerv2_eager_upsampling_is_priced_as_its_serial_kernel(assessed: Any) -> None:
    """EfficientFormerV2-S0's strided attention upsamples (2048, 1024, 7, 7) to 14 x 14 bilinearly, twice a batch:
    PyTorch's NCHW kernel loops over the 2M planes in each of 196 threads (counting/serial.py, efficiency.toml
    [serial]). Priced as a bandwidth-bound op it was 11.5x too fast against this row; the rule's constant comes from
    a published memory latency, not from this table (tolerance: the table's 30 %)."""
    row = _row("efficientformerv2_s0")
    batch = int(row["infer_batch_size"])
    a = assessed("timm:efficientformerv2_s0", image_size=SIZE, batch_size=batch, infer_samples=batch,
                 precision="fp16-mixed", hardware=HARDWARE)
    ratio = a.to_dict()["time"]["infer_samples_per_second"] / float(row["infer_samples_per_sec"])
    assert abs(ratio - 1) <= 0.30, ratio
    assert sorted(a.trace.infer.serial.values()) == [2048 * 1024]  # one event key, two calls


@pytest.mark.parametrize("model", ["resnet50_gn", "convnext_tiny", "davit_small"])
def test_fast_norm_reading_of_the_norm_rows(model: str) -> None:
    """The table's GroupNorm and permuted-LayerNorm rows priced with timm's fast-norm, the reading the evidence
    supports (docs/validation.md): GroupNorm in 16 bits, LayerNorm with its kernel's copy of a permuted input
    (counting/norms.py). Under PyTorch's default autocast these rows are -57 %, -31 % and -32 %; tolerance: the
    table's 30 %."""
    row = _row(model)
    batch = int(row["infer_batch_size"])
    a = afford.assess(f"timm:{model}", image_size=SIZE, batch_size=batch, infer_samples=batch,
                      precision="fp16-mixed", hardware=HARDWARE, model_options={"reparam": True, "fast_norm": True})
    ratio = a.to_dict()["time"]["infer_samples_per_second"] / float(row["infer_samples_per_sec"])
    assert abs(ratio - 1) <= 0.30, ratio


def test_layernorm2d_over_few_channels_is_priced_at_its_block_per_row_floor() -> None:
    """test_efficientnet_ln under timm's fast-norm: its LayerNorm2d normalises 13 M rows of 16 and 24 channels per
    call at 80 x 80, and PyTorch's kernel gives every row its own thread block (counting/rowblocks.py,
    efficiency.toml [row_blocks], derived from a published memory latency and the catalog's SM counts, not from this
    table). Priced by bytes alone the row was 2.02x too fast; the floor, a lower bound, brings it to +83 %
    (tolerance: the issue's 2x; the rest of the miss is not modelled, docs/validation.md)."""
    row = _row("test_efficientnet_ln", 160)
    batch = int(row["infer_batch_size"])
    a = afford.assess("timm:test_efficientnet_ln", image_size=160, batch_size=batch, infer_samples=batch,
                      precision="fp16-mixed", hardware=HARDWARE, model_options={"reparam": True, "fast_norm": True})
    assert sorted(a.trace.infer.row_blocks.values())[-2:] == [batch * 80 * 80] * 2  # the two 80 x 80 calls
    ratio = a.to_dict()["time"]["infer_samples_per_second"] / float(row["infer_samples_per_sec"])
    assert 1.0 < ratio <= 2.0, ratio
