"""The verdict of an inference job (decide/inference.py): the budget, deadline and latency targets against the job
as asked, and plans over devices, replicas and weight formats, re-priced from the one trace."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import afford
from afford.cli import app
from afford.errors import InputError

runner = CliRunner()
GPT2 = "hf:openai-community/gpt2"


def test_an_inference_job_gets_a_verdict_and_plans() -> None:
    a = afford.assess(GPT2, infer_samples=10_000, seq_len=128, hardware="t4", budget_usd=5.0, deadline="1h")
    d = a.to_dict()
    assert d["verdict"]["status"] == "affordable" and d["verdict"]["job"] == "inference"
    assert any(r.startswith("costs $") for r in d["verdict"]["reasons"])
    assert d["verdict"]["plan"]["device"] == "t4" and d["plans"]
    assert d["verdict"]["plan"]["infer_seconds"] == pytest.approx(d["time"]["infer_seconds"])
    assert d["verdict"]["plan"]["cost_usd"] == pytest.approx(d["cost"]["infer_usd"])


def test_a_deadline_is_met_with_replicas() -> None:
    one = afford.assess(GPT2, infer_samples=2_000_000, seq_len=128, hardware="t4").to_dict()["time"]["infer_seconds"]
    a = afford.assess(GPT2, infer_samples=2_000_000, seq_len=128, hardware="t4", deadline=one / 3)
    d = a.to_dict()
    assert d["verdict"]["status"] == "affordable_with_changes"
    assert "deadline" in a.decision.asked.violations
    chosen = d["verdict"]["plan"]
    assert chosen["feasible"] and chosen["infer_seconds"] <= one / 3


def test_a_model_too_big_for_the_device_fits_in_4_bits() -> None:
    """Llama-2-13B in 16 bits needs ~26 GB of weights: more than a 24 GB RTX 4090; AWQ 4-bit (~7 GB) fits."""
    a = afford.assess("hf:meta-llama/Llama-2-13b-hf", infer_samples=100, seq_len=256, precision="fp16",
                      hardware="rtx4090", available="rtx4090:1")
    d = a.to_dict()
    assert d["verdict"]["status"] == "affordable_with_changes"
    assert a.decision.asked.fits is False
    chosen = d["verdict"]["plan"]
    assert chosen["device"] == "rtx4090" and chosen["owned"] and chosen["weights"] in ("int8", "awq-4bit", "fp8")
    assert any("weights in" in c for c in chosen["changes"])


def test_latency_targets_and_their_misuse() -> None:
    a = afford.assess(GPT2, task="generate", prompt_tokens=64, generate_tokens=32, infer_samples=10, hardware="t4",
                      tpot=1e-6)
    d = a.to_dict()
    assert d["verdict"]["status"] == "not_affordable"
    assert any("time per output token" in r for r in d["verdict"]["reasons"])
    assert any("lowest latency found" in n for n in d["notes"])
    with pytest.raises(InputError, match="apply to generation"):
        afford.assess("torchvision:resnet18", infer_samples=10, ttft=0.1)
    with pytest.raises(InputError, match="max_latency"):
        afford.assess("torchvision:resnet18", infer_samples=10, max_latency=-1.0)


def test_cli_inference_verdict_json_and_one_line_errors() -> None:
    ok = runner.invoke(app, ["assess", "torchvision:resnet18", "--infer-samples", "1000", "--batch-size", "8",
                             "--budget-usd", "1", "--max-latency", "0.5", "--json"])
    assert ok.exit_code == 0, ok.output
    d = json.loads(ok.stdout)
    assert d["verdict"]["status"] == "affordable" and d["plans"][0]["latency_seconds"] > 0
    bad = runner.invoke(app, ["assess", "torchvision:resnet18", "--budget-usd", "1"])
    assert bad.exit_code == 2 and "--infer-samples" in bad.output and "Traceback" not in bad.output


def test_plan_takes_an_inference_job() -> None:
    """`afford plan` (and afford.plan) with only an inference job: the inference verdict and plans; without any
    limit, one line and exit 2."""
    base = ["plan", "hf:openai-community/gpt2", "--task", "generate", "--prompt-tokens", "64", "--generate-tokens",
            "32", "--infer-samples", "1000", "--hardware", "t4"]
    out = runner.invoke(app, [*base, "--budget-usd", "5", "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)
    assert d["verdict"]["job"] == "inference" and d["plans"] and "generate" in d
    bad = runner.invoke(app, base)
    assert bad.exit_code == 2
    lines = [x for x in bad.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "plan needs a limit for an inference job" in lines[0]
    a = afford.plan("hf:openai-community/gpt2", infer_samples=100, seq_len=64, hardware="t4", budget_usd=1.0)
    assert isinstance(a, afford.Assessment) and a.decision is not None
    assert a.to_dict()["verdict"]["job"] == "inference"


def test_the_search_adds_cuda_graphs_where_host_bound_and_fp8_kv_where_memory_or_latency_fails() -> None:
    """Issue 11 item 1: the runtime and the KV-cache dtype are searched, each with what it costs in quality."""
    a = afford.assess(GPT2, task="generate", prompt_tokens=64, generate_tokens=32, infer_samples=10, hardware="t4",
                      tpot=0.004)
    assert a.decision.asked.host_bound and "tpot" in a.decision.asked.violations
    graphs = [p for p in a.decision.plans if p.runtime == "cudagraphs"]
    assert graphs and all(p.feasible for p in graphs)
    assert any("no quality change" in c for c in graphs[0].changes)
    # 8 requests of 32,000 tokens of Llama-3.2-1B: 7.8 GiB of bf16 KV on top of the prefill's activations
    b = afford.assess("hf:meta-llama/Llama-3.2-1B", task="generate", prompt_tokens=32000, generate_tokens=16,
                      batch_size=8, infer_samples=64, precision="bf16", available="l4:1")
    assert not b.decision.asked.fits
    fp8 = [p for p in b.decision.plans if p.kv_cache_dtype == "fp8" and p.weights == "bf16"]
    assert fp8 and fp8[0].fits and fp8[0].per_device_bytes < b.decision.asked.per_device_bytes
    assert any("minimally degrades" in c for c in fp8[0].changes)


def test_the_search_tries_the_batch_with_the_most_samples_per_second() -> None:
    """A host-bound or over-budget batch of 1: the plans include the batch curve's best batch (serve.batches),
    its time the batches the samples need at that batch's latency, its cost scaled with its device-seconds."""
    import math

    a = afford.assess("torchvision:resnet50", infer_samples=1_000_000, hardware="t4", available="t4:1",
                      deadline="2h")
    asked = a.decision.asked
    assert asked.batch_size == 1 and asked.host_bound
    bigger = [p for p in a.decision.plans if p.batch_size and p.batch_size > 1]
    assert bigger and all(any("batches of" in c for c in p.changes) for p in bigger)
    p = bigger[0]
    curve = {r["batch_size"]: r for r in a.to_dict()["serve"]["batches"]} if p.weights == asked.weights else None
    if curve is not None and p.runtime == asked.runtime:
        assert p.latency_s == pytest.approx(curve[p.batch_size]["latency_seconds"])
    assert p.seconds == pytest.approx(math.ceil(1_000_000 / (p.batch_size * p.replicas)) * p.latency_s)
    assert p.seconds < asked.seconds / 5
