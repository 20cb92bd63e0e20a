"""The serving model (estimate/serving.py): paged KV capacity from the memory left, decode step time re-priced at a
concurrency from one traced request, continuous-batching throughput, replicas for a rate, and its one-line errors."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from typer.testing import CliRunner

import afford
from afford.cli import app
from afford.errors import InputError
from afford.estimate import formats
from afford.estimate.parallel import RESERVED_BYTES
from afford.estimate.serving import ServeOptions, scaled, serve, serve_request
from afford.hardware.catalog import Catalog

runner = CliRunner()
MODEL = "hf:meta-llama/Llama-3.2-1B"  # 16 layers, 8 KV heads of 64: 32 KiB of bf16 KV per token


@pytest.fixture(scope="module")
def assessed() -> Any:
    """One traced generation request (128 prompt + 128 generated tokens, batch 1, bf16): every figure below
    re-prices this trace."""
    return afford.assess(MODEL, task="generate", prompt_tokens=128, generate_tokens=128, infer_samples=1,
                         precision="bf16", hardware="h100-sxm")


def _serve(a: Any, device: str = "h100-sxm", weights: str = "bf16", kv: str | None = None,
           **options: Any) -> dict[str, Any]:
    return serve(a, Catalog.load().get(device), formats.weight_format(weights), kv, ServeOptions(**options), 2.0)


def test_kv_capacity_is_the_memory_left_in_whole_blocks(assessed: Any) -> None:
    s = _serve(assessed)
    layers, kv_heads, head_dim = 16, 8, 64
    assert s["kv_bytes_per_token"] == layers * kv_heads * head_dim * 2 * 2  # K and V, 2 bytes each
    device = Catalog.load().get("h100-sxm")
    left = 0.9 * device.memory_bytes - s["weights_bytes"] - s["activations_reserve_bytes"] - RESERVED_BYTES
    assert s["kv_blocks"] == math.floor(left / (16 * s["kv_bytes_per_token"]))
    assert s["max_concurrency_kv"] == s["kv_blocks"] // math.ceil(256 / 16)
    assert s["max_load"]["concurrency"] == min(s["max_concurrency_kv"], 256)
    # fp8 KV: half the bytes a token, so about twice the blocks in the same memory
    s8 = _serve(assessed, kv="fp8")
    assert s8["kv_bytes_per_token"] == s["kv_bytes_per_token"] / 2
    assert s8["kv_blocks"] in (2 * s["kv_blocks"], 2 * s["kv_blocks"] + 1)
    # a lower utilisation leaves fewer blocks
    assert _serve(assessed, gpu_memory_utilization=0.5)["kv_blocks"] < s["kv_blocks"]


def test_scaled_phase_keeps_the_weight_reads_and_scales_the_rest(assessed: Any) -> None:
    t = assessed.trace
    step = t.generation.last_step
    double = scaled(step, t, 2.0)
    assert sum(f * c for (_, f, _), c in double.events.items()) == 2 * sum(
        f * c for (_, f, _), c in step.events.items())
    moved = sum(nb * c for (_, _, nb), c in step.events.items())
    moved2 = sum(nb * c for (_, _, nb), c in double.events.items())
    weights = t.weights_bytes  # every weight is read once a step (the tied head included)
    # twice the batch moves the non-weight bytes twice: moved2 = weights + 2 (moved - weights), within rounding
    assert moved2 == pytest.approx(2 * moved - weights, rel=0.02)


def test_decode_goes_from_memory_bound_to_compute_bound(assessed: Any) -> None:
    one, two, big = (_serve(assessed, concurrency=c)["at_concurrency"] for c in (1, 2, 256))
    # batch 1 and 2 read the same weights: the step barely grows, the throughput nearly doubles
    assert two["tpot_seconds"] < 1.1 * one["tpot_seconds"]
    assert two["output_tokens_per_second"] > 1.8 * one["output_tokens_per_second"]
    # at 256 requests the step is several times longer, and still far more tokens per second
    assert big["tpot_seconds"] > 3 * one["tpot_seconds"]
    assert big["output_tokens_per_second"] > 30 * one["output_tokens_per_second"]


def test_rate_replicas_and_cost_split(assessed: Any) -> None:
    s = _serve(assessed, rate=1000.0)
    per = s["max_load"]["requests_per_second"]
    assert s["replicas_for_rate"] == math.ceil(1000.0 / per)
    tps = s["max_load"]["output_tokens_per_second"]
    hour = 2.0 / 3600
    # the hour's price split between input and output tokens sums back to the whole price
    spent = (s["usd_per_million_output_tokens"] * tps + s["usd_per_million_input_tokens"] * tps) / 1e6
    assert spent == pytest.approx(hour)


def test_a_model_that_leaves_no_kv_room_does_not_fit(assessed: Any) -> None:
    small = dataclasses.replace(Catalog.load().get("h100-sxm"), memory_bytes=3 * 2**30)
    s = serve(assessed, small, formats.weight_format("bf16"), None, ServeOptions(), 2.0)
    assert not s["fits"] and s["max_concurrency_kv"] == 0 and "no request of 256 tokens fits" in s["reason"]
    assert "max_load" not in s


def test_options_are_checked() -> None:
    for bad in ({"concurrency": 0}, {"rate": -1.0}, {"gpu_memory_utilization": 1.5}, {"rate": float("nan")}):
        with pytest.raises(InputError):
            serve_request(**{"concurrency": None, "rate": None, "gpu_memory_utilization": 0.9, **bad})


def test_cli_serve_json_screen_and_one_line_errors() -> None:
    base = ["assess", MODEL, "--task", "generate", "--prompt-tokens", "128", "--generate-tokens", "128",
            "--infer-samples", "10", "--precision", "bf16", "--hardware", "h100-sxm"]
    out = runner.invoke(app, [*base, "--concurrency", "8", "--rate", "50", "--json"])
    assert out.exit_code == 0, out.output
    s = json.loads(out.output)["serve"]
    assert s["at_concurrency"]["concurrency"] == 8 and s["replicas_for_rate"] >= 1
    screen = runner.invoke(app, [*base, "--rate", "50"])
    assert "max load" in screen.output and "for the rate" in screen.output
    for flag, value in (("--rate", "-2"), ("--gpu-memory-utilization", "1.5"), ("--concurrency", "0")):
        bad = runner.invoke(app, [*base, flag, value])
        assert bad.exit_code == 2
        lines = [x for x in bad.output.splitlines() if x.strip()]
        assert len(lines) == 1 and flag.lstrip("-").replace("-", "_") in lines[0].replace("-", "_")


def test_a_rate_prices_the_inference_verdict_as_served() -> None:
    """--rate with an inference budget: each plan runs the replicas the rate needs for the M requests' arrival
    time (M / R), with the TTFT/TPOT of the concurrency that share of the rate keeps in flight."""
    a = afford.assess(MODEL, task="generate", prompt_tokens=128, generate_tokens=128, infer_samples=36_000,
                      precision="bf16", hardware="h100-sxm", rate=10.0, budget_usd=1000.0, tpot=0.05)
    d = a.to_dict()
    s = d["serve"]
    plan = d["verdict"]["plan"]
    assert d["verdict"]["status"] == "affordable"
    assert plan["count"] == s["replicas_for_rate"] == 1
    assert plan["infer_seconds"] == pytest.approx(36_000 / 10.0)
    assert plan["cost_usd"] == pytest.approx(plan["count"] * 2.99 * 3600 / 3600)  # $2.99/h, 3,600 s
    assert plan["tpot_seconds"] == pytest.approx(s["at_rate"]["tpot_seconds"])
    assert s["at_rate"]["requests_per_second"] >= 10.0 / s["replicas_for_rate"]
    assert any("served at 10 requests/s" in n for n in d["notes"])


@pytest.fixture(scope="module")
def resnet() -> Any:
    """ResNet-50 inference at batch 8 in fp16 on a T4: the batch curve re-prices this one trace."""
    return afford.assess("torchvision:resnet50", infer_samples=800, batch_size=8, precision="fp16", hardware="t4",
                         max_latency=0.02)


def test_the_batch_curve_matches_the_job_and_a_trace_at_that_batch(resnet: Any) -> None:
    d = resnet.to_dict()
    rows = {r["batch_size"]: r for r in d["serve"]["batches"]}
    assert sorted(rows) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    # at the traced batch the curve is the job's own figure
    assert rows[8]["latency_seconds"] == pytest.approx(d["time"]["infer_batch_seconds"])
    # at 64 the re-priced trace (conv and linear weights read once, the rest x 8) agrees with a trace at 64
    at64 = afford.assess("torchvision:resnet50", infer_samples=640, batch_size=64, precision="fp16",
                         hardware="t4").to_dict()
    assert rows[64]["latency_seconds"] == pytest.approx(at64["time"]["infer_batch_seconds"], rel=0.02)
    assert rows[64]["per_device_bytes"] == pytest.approx(at64["memory"]["infer_peak_bytes"], rel=0.1)
    # throughput grows with the batch and the latency never falls
    lat = [rows[b]["latency_seconds"] for b in sorted(rows)]
    assert lat == sorted(lat)


def test_the_best_batch_within_a_latency_target(resnet: Any) -> None:
    s = resnet.to_dict()["serve"]
    best = s["best_batch_for_latency"]
    assert best["latency_seconds"] <= 0.02
    bigger = [r for r in s["batches"] if r["batch_size"] > best["batch_size"] and r["fits"]]
    assert all(r["latency_seconds"] > 0.02 for r in bigger)
    assert s["max_throughput"]["samples_per_second"] == max(r["samples_per_second"] for r in s["batches"]
                                                           if r["fits"])


def test_fp8_kv_halves_the_attention_reads_of_a_decode_step(assessed: Any) -> None:
    """--kv-cache-dtype fp8 reads half the KV bytes in every decode step, so a long-context step is faster."""
    from afford.estimate.serving import _Pricer

    device = Catalog.load().get("h100-sxm")
    fmt = formats.weight_format("bf16")
    g = assessed.trace.generation
    plain, fp8 = _Pricer(assessed, device, fmt), _Pricer(assessed, device, fmt, "fp8")
    assert fp8.kv == 0.5 and plain.kv == 1.0
    assert fp8.decode(g, 256.0) < plain.decode(g, 256.0)


def test_expert_weights_are_read_once_a_step() -> None:
    """A mixture-of-experts decode step at 64 times the batch reads the stacked expert weights once, not 64 times."""
    a = afford.assess("hf:Qwen/Qwen3-30B-A3B", task="generate", prompt_tokens=16, generate_tokens=4,
                      infer_samples=1, precision="bf16", hardware="h100-sxm")
    step = a.trace.generation.last_step
    grouped = {k: c for k, c in step.events.items() if k[0] == "_grouped_mm"}
    big = {k: c for k, c in scaled(step, a.trace, 64.0).events.items() if k[0] == "_grouped_mm"}
    before = sum(nb * c for (_, _, nb), c in grouped.items())
    after = sum(nb * c for (_, _, nb), c in big.items())
    assert before > 1e9  # the stacks: 48 layers, gate-up and down, 128 experts each
    assert after < 1.05 * before  # the activations grow 64 times, the weights (both stacks) not at all
    # the stacks are linear weights to a weight format: stored and read in FP8, one byte each
    fp8 = formats.weight_format("fp8")
    wb = formats.weight_bytes(formats.params_of(a.trace), fp8)
    assert wb.quantized_params > 0.97 * a.trace.params
    assert wb.bytes < 0.52 * a.trace.weights_bytes
    read = formats.reweighted(step, a.trace, fp8, a.spec.metadata, 1.0)
    fp8_read = sum(nb * c for (op, _, nb), c in read.events.items() if op == "_grouped_mm")
    assert fp8_read == pytest.approx(before / 2, rel=0.01)
