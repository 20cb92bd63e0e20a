"""llm-foundry's MPT throughput (8 x H100, 2,048 tokens: every size the table has at that shape) priced from
transformers' MPT class, whose attention is eager: under the default `--attention` (flash on H100) within 40% of
the published tokens/s/GPU, and over the rows far closer than `--attention eager`, which prices the S x S ALiBi
scores.

40% is the bar today's time model meets on these rows (its system efficiency was calibrated on GPT-2-shaped
stand-ins with SDPA, docs/calibration.md); issue 13's 30% is not yet met on every row (docs/validation.md,
"Attention kernels: llm-foundry MPT" shows the whole table and the misses)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import afford
from afford.estimate.job import estimate
from afford.estimate.request import request
from afford.fusion import fuse_assessment

pytestmark = pytest.mark.slow

TOLERANCE = 0.40
CONFIGS = Path(__file__).parent / "configs"
# the 8 x H100, 2,048-token BF16 rows of shared/reference/llmfoundry_throughput.csv, copied here with their
# source column (mosaicml/llm-foundry scripts/train/benchmarking/README.md) so the test runs on any checkout
TABLE = Path(__file__).parent / "llmfoundry_h100_8gpu_2048.csv"
ROWS = [r for r in csv.DictReader(TABLE.open()) if r["gpu"] == "h100_80gb" and r["precision"] == "amp_bf16"
        and r["n_gpus"] == "8" and r["seq_len"] == "2048"]


def _tokens_per_gpu(row: dict[str, str], attention: str) -> float:
    """Tokens/s/GPU afford predicts for a table row under `attention`."""
    seq, micro, accum = int(row["seq_len"]), int(row["micro_batch"]), int(row["grad_accum"])
    a = afford.assess(str(CONFIGS / f"llmfoundry-mpt-{row['model']}.json"), seq_len=seq, batch_size=micro,
                      precision="bf16-mixed", train_tokens=10**9, attention="eager")
    req = request(hardware="h100-sxm", count=8, parallel="fsdp" if row["sharding"] == "FULL_SHARD" else "zero2",
                  grad_accum=accum, recompute=row["activation_checkpointing"] == "True", attention=attention)
    step = estimate(fuse_assessment(a, req.attention), req).data["time"]["train_step_seconds"]
    return micro * accum * seq / step


_SEEN: dict[tuple[str, str], float] = {}


def _error(row: dict[str, str], attention: str) -> float:
    """Signed relative error of afford's tokens/s/GPU for a row under `attention` (kept for the summary test)."""
    key = (row["model"], attention)
    if key not in _SEEN:
        _SEEN[key] = _tokens_per_gpu(row, attention) / float(row["throughput_tokens_per_s_per_gpu"]) - 1
    return _SEEN[key]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["model"])
def test_mpt_row_within_tolerance(row: dict[str, str]) -> None:
    fused, eager = _error(row, "auto"), _error(row, "eager")
    assert abs(fused) <= TOLERANCE, f"{row['model']}: {fused:+.0%} (eager {eager:+.0%})"
    assert eager < fused  # the S x S scores cost time only under eager


def test_fused_closer_than_eager_over_the_rows() -> None:
    """Over the rows, not row by row: 13b (micro-batch 2) is the one row where eager's error (-22%) is smaller
    than the fused one (+36%)."""
    fused = sorted(abs(_error(r, "auto")) for r in ROWS)
    eager = sorted(abs(_error(r, "eager")) for r in ROWS)
    assert sum(fused) < 0.75 * sum(eager)  # today: mean |error| 22% against 40%
    assert fused[len(fused) // 2] < 0.2 < eager[len(eager) // 2]
