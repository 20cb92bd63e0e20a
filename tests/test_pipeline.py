"""The one pipeline (afford.api): an assessment with a budget traces the model once, and its verdict is the
plan's own (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import afford
from afford import tracecache
from afford.decide.run import plan
from trace_counter import count_traces

TINY_GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_layer": 2, "n_head": 2,
             "vocab_size": 1000, "n_positions": 128, "bos_token_id": 0, "eos_token_id": 0}


@pytest.fixture
def traces(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the modules traced, in order, while the test runs."""
    tracecache.clear()
    return count_traces(monkeypatch)


def test_assess_with_a_budget_traces_the_model_once(traces: list[str]) -> None:
    a = afford.assess("torchvision:resnet18", train_samples=1000, batch_size=32, budget_usd=5)
    assert traces == ["ResNet"]
    assert a.decision is not None and a.decision.verdict.status


def test_adapters_are_the_only_other_traces(traces: list[str], tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY_GPT2), encoding="utf-8")
    a = afford.assess(str(config), train_samples=100, seq_len=32, budget_usd=5)
    assert len(traces) == 2, traces  # the model as asked once, its LoRA-wrapped graph once
    assert "Peft" in traces[1] or "Lora" in traces[1], traces
    assert {p["strategy"]["adapter"] for p in a.to_dict()["plans"]} & {"lora", "qlora"}


def test_reused_trace_prices_the_same_as_a_fresh_plan() -> None:
    a = afford.assess("torchvision:resnet18", train_samples=1000, batch_size=32, budget_usd=5)
    fresh = plan("torchvision:resnet18", train_samples=1000, batch_size=32, budget_usd=5, precision="fp32")
    assert a.decision.asked.to_dict() == fresh.asked.to_dict()
    assert a.decision.verdict.to_dict() == fresh.verdict.to_dict()


def test_a_warm_reassessment_on_other_hardware_reprices_without_tracing(traces: list[str],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    first = afford.assess("torchvision:resnet18", train_samples=1000, batch_size=32, hardware="t4")
    again = afford.assess("torchvision:resnet18", train_samples=5000, batch_size=32, hardware="h100-sxm",
                          budget_usd=50)
    assert traces == ["ResNet"]  # traced once: the second job re-prices the same graph
    monkeypatch.setenv("AFFORD_NO_CACHE", "1")
    fresh = afford.assess("torchvision:resnet18", train_samples=5000, batch_size=32, hardware="h100-sxm",
                          budget_usd=50)
    assert len(traces) == 2
    assert again.to_dict() == fresh.to_dict()
    assert first.to_dict()["time"] != again.to_dict()["time"]


def test_an_edited_config_is_traced_again(traces: list[str], tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY_GPT2), encoding="utf-8")
    a = afford.assess(str(config), train_samples=10, seq_len=16)
    config.write_text(json.dumps({**TINY_GPT2, "n_layer": 3}), encoding="utf-8")
    b = afford.assess(str(config), train_samples=10, seq_len=16)
    assert len(traces) == 2 and b.trace.params > a.trace.params
