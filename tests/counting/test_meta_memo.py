"""The norm-op memo (counting/memo.py): a trace with remembered meta outputs equals one that runs every
meta kernel, op by op, byte by byte, and peak by peak."""

from __future__ import annotations

from typing import Any

import pytest

import afford
from afford.counting import memo


def _snapshot(model: str, precision: str) -> dict[str, Any]:
    a = afford.assess(model, train_samples=2, infer_samples=2, batch_size=2, precision=precision, cache=False,
                      hardware="a100-80gb")
    out: dict[str, Any] = {}
    for ph in (a.trace.forward, a.trace.backward, a.trace.infer):
        out[ph.name] = (dict(ph.events), {k: (v.calls, v.flops, v.bytes) for k, v in ph.by_op.items()},
                        ph.peak_live_bytes, ph.lean_peak_bytes, ph.bytes_moved, ph.flops)
    d = a.to_dict()
    out["memory"], out["time"] = d["memory"], d["time"]
    return out


@pytest.mark.parametrize(("model", "precision"), [("torchvision:resnet18", "fp32"),
                                                  ("hf:openai-community/gpt2", "bf16-mixed")])
def test_the_memo_changes_nothing_it_records(model: str, precision: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(memo.ENV, "1")
    plain = _snapshot(model, precision)
    monkeypatch.delenv(memo.ENV)
    memo._memo.clear()
    first = _snapshot(model, precision)  # fills the memo
    assert memo._memo, "no norm op was remembered"
    again = _snapshot(model, precision)  # answered from it
    assert plain == first == again
