"""Weight memory of quantized checkpoints within 3% of their published file sizes (issue 11): afford's exact bytes
of each GGUF file type, from the traced parameters and llama.cpp's per-tensor rules (estimate/formats.py), against
the sizes published for Llama-3-8B and Llama-2-13B (tests/golden/weight_formats.toml, docs/validation.md)."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import afford
from afford.estimate.formats import params_of, weight_bytes, weight_format

TOLERANCE = 0.03
UNITS = {"GiB": 2**30, "GB": 1e9}
TABLES = tomllib.loads((Path(__file__).parent / "weight_formats.toml").read_text())["table"]
ROWS = [(t["model"], fmt, size, t["unit"], t["known"].get(fmt)) for t in TABLES for fmt, size in t["sizes"].items()]


@cache
def _traced(model: str) -> Any:
    """One short trace per model: parameters do not depend on the sequence length."""
    return afford.assess(model, infer_samples=1, seq_len=8, precision="fp16")


def predicted(model: str, fmt: str) -> float:
    a = _traced(model)
    return weight_bytes(params_of(a.trace), weight_format(fmt), {**a.spec.metadata, "params": a.trace.params}).bytes


@pytest.mark.parametrize(("model", "fmt", "size", "unit", "known"), ROWS, ids=[f"{r[0]}-{r[1]}" for r in ROWS])
def test_file_size_within_tolerance(model: str, fmt: str, size: float, unit: str, known: str | None) -> None:
    error = predicted(model, fmt) / UNITS[unit] / size - 1
    if known:
        assert abs(error) > TOLERANCE, f"{model} {fmt} now agrees ({error:+.1%}): drop it from `known`"
        return
    assert abs(error) <= TOLERANCE, f"{model} {fmt}: {error:+.1%} against {size} {unit}"


def test_most_rows_are_asserted() -> None:
    asserted = [r for r in ROWS if not r[4]]
    assert len(asserted) >= 0.9 * len(ROWS) and len(asserted) >= 18
