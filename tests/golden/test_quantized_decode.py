"""Decode with quantized weights against gpt-fast's published tokens/s (tests/golden/quantized_decode.toml): the
format's weight bytes drive the memory-bound decode step (estimate/formats.py `reweighted`). docs/validation.md
shows every row."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import afford

TOLERANCE = 0.35
ROWS = tomllib.loads((Path(__file__).parent / "quantized_decode.toml").read_text())["row"]
CONTEXT = 5 + 200 // 2  # gpt-fast: a 5-token prompt and 200 new tokens; the mean context of the steps


def predicted(row: dict[str, object]) -> float:
    a = afford.assess(str(row["model"]), seq_len=CONTEXT, precision="bf16", hardware="a100-80gb",
                      runtime="cudagraphs", weights=str(row["weights"]))
    return float(a.to_dict()["generate"]["decode_tokens_per_second"])


@pytest.mark.parametrize("row", ROWS, ids=[str(r["id"]) for r in ROWS])
def test_decode_tokens_per_second_within_tolerance(row: dict[str, object]) -> None:
    got = predicted(row)
    published = float(row["tokens_per_s"])  # type: ignore[arg-type]
    assert got == pytest.approx(published, rel=TOLERANCE), f"{row['id']}: {got:.1f} vs {published}"


def test_quantized_weights_decode_faster_and_keep_the_flops() -> None:
    base = afford.assess("hf:meta-llama/Llama-2-7b-hf", seq_len=CONTEXT, precision="bf16", hardware="a100-80gb",
                         runtime="cudagraphs").to_dict()
    int4 = afford.assess("hf:meta-llama/Llama-2-7b-hf", seq_len=CONTEXT, precision="bf16", hardware="a100-80gb",
                         runtime="cudagraphs", weights="int4-g32").to_dict()
    assert int4["generate"]["decode_tokens_per_second"] > 2 * base["generate"]["decode_tokens_per_second"]
    assert int4["per_sample"] == base["per_sample"]
