"""Published max-load serving throughput (serving_throughput.toml) against afford's serving model. `make test`
asserts a subset chosen by a rule, not by result, to keep four traces: every row of the TensorRT-LLM v0.13.0
table (the one source that states its KV dtype) for Llama-3.1-8B at up to 2,176 tokens a request (11 rows: fp16
and fp8, H100, H200, A100, L40S, four length pairs). bench/validate_serving.py prices every row and fails under
the issue's 70% (docs/validation.md, "Serving throughput", with every miss)."""

from __future__ import annotations

import pytest
from serving_golden import TOLERANCE, evaluate, rows

BY_ID = {r["id"]: r for r in rows()}
ASSERTED = [i for i, r in BY_ID.items() if i.startswith("trt13-") and r["model"] == "hf:meta-llama/Llama-3.1-8B"
            and r["input_tokens"] + r["output_tokens"] <= 2176 and r.get("tp", 1) == 1]


def test_every_row_has_a_source_and_a_priceable_shape() -> None:
    assert len(BY_ID) == len(rows()) >= 40
    for r in rows():
        assert r["source"] and r["output_tokens_per_s"] > 0 and r["input_tokens"] > 0 and r["output_tokens"] > 0
        assert r["model"].startswith("hf:")


@pytest.mark.parametrize("row_id", ASSERTED)
def test_max_load_output_throughput_within_tolerance(row_id: str) -> None:
    o = evaluate(BY_ID[row_id])
    assert o.error is not None, o.reason
    assert abs(o.error) <= TOLERANCE, (f"{row_id}: predicted {o.predicted:,.0f} against {o.published:,.0f} "
                                       f"({o.error:+.0%})")


def test_the_subset_is_the_rule_s_eleven_rows() -> None:
    assert len(ASSERTED) == 11
