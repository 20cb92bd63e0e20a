"""Tensor-parallel inference (estimate/sharding.py): a replica split over tp devices holds 1/tp of the weights and
its heads' share of the KV cache, runs 1/tp of the kernels plus two all-reduces a layer, and the inference plans
split a model that fits no single device."""

from __future__ import annotations

from typing import Any

import pytest

import afford
from afford.errors import InputError
from afford.estimate import formats
from afford.estimate.parallel import ring_all_reduce_bytes
from afford.estimate.serving import ServeOptions, serve
from afford.estimate.sharding import ALLREDUCE_LATENCY_US, kv_share, link_class, split_peak, tensor_split
from afford.hardware.catalog import Catalog

MODEL = "hf:meta-llama/Llama-3.2-1B"  # 16 layers, hidden 2048, 32 heads, 8 KV heads


@pytest.fixture(scope="module")
def assessed() -> Any:
    """One traced request (128 + 128 tokens, batch 1, bf16); every figure below re-prices it."""
    return afford.assess(MODEL, task="generate", prompt_tokens=128, generate_tokens=128, infer_samples=100,
                         precision="bf16", hardware="h100-sxm")


def test_kv_heads_split_and_replicate() -> None:
    assert kv_share(8, 1) == 1.0
    assert kv_share(8, 2) == 0.5
    assert kv_share(8, 8) == 1 / 8
    assert kv_share(8, 16) == 1 / 8  # fewer heads than devices: one head each, replicated
    assert kv_share(0, 4) == 0.25  # unknown heads: an even split
    # weights and activations split, the KV cache by heads
    assert split_peak(100.0, 60.0, 20.0, 2, 8) == 30.0 + 10.0 + 10.0
    assert split_peak(100.0, 60.0, 20.0, 1, 8) == 100.0


def test_all_reduces_per_layer_on_the_node_link(assessed: Any) -> None:
    h100, l4 = Catalog.load().get("h100-sxm"), Catalog.load().get("rtx4090")
    assert link_class(h100) == "nvlink" and link_class(l4) == "pcie"
    s = tensor_split(assessed, h100, 2, 2)
    assert (s.layers, s.token_bytes, s.kv_heads) == (16, 2048 * 2, 8)
    tokens = 256
    expected = 16 * 2 * (ALLREDUCE_LATENCY_US["nvlink"][0] * 1e-6
                         + ring_all_reduce_bytes(tokens * 2048 * 2, 2) / (h100.intra_node_gb_s * 1e9))
    assert s.comm_seconds(tokens) == pytest.approx(expected)
    assert tensor_split(assessed, h100, 1, 2).comm_seconds(tokens) == 0.0
    with pytest.raises(InputError, match="does not divide"):
        tensor_split(assessed, h100, 3, 2)


def test_tp_halves_the_weights_and_speeds_decode_less_than_twice(assessed: Any) -> None:
    """Under CUDA graphs (eager decode of a 1B model is host-bound, and every rank issues every op: no gain)."""
    job = dict(task="generate", prompt_tokens=128, generate_tokens=128, infer_samples=100, precision="bf16",
               hardware="h100-sxm", runtime="cudagraphs")
    one = afford.assess(MODEL, **job).to_dict()
    two = afford.assess(MODEL, count=2, tp=2, **job).to_dict()
    assert two["infer"]["tp"] == 2 and two["infer"]["replicas"] == 1 and one["infer"]["replicas"] == 1
    w = one["memory"]["weights_bytes"]
    assert two["memory"]["infer_per_device_bytes"] < one["memory"]["infer_per_device_bytes"] - 0.45 * w
    # one replica either way: the split step is faster, but not twice (all-reduces, host time per rank)
    t1, t2 = one["infer"]["latency_seconds"], two["infer"]["latency_seconds"]
    assert t2 < t1 and t2 > t1 / 2
    lo, hi = two["infer"]["latency_seconds_range"]
    assert lo <= t2 <= hi


def test_serving_split_holds_more_kv_and_prices_every_device(assessed: Any) -> None:
    h100 = Catalog.load().get("h100-sxm")
    fmt = formats.weight_format("bf16")
    s1 = serve(assessed, h100, fmt, None, ServeOptions(), 2.0)
    s2 = serve(assessed, h100, fmt, None, ServeOptions(), 2.0, tp=2)
    assert s2["tp"] == 2 and s2["kv_bytes_per_token"] == s1["kv_bytes_per_token"] / 2
    # each device gives its memory to half the weights and half of each token's KV: more than twice the tokens
    assert s2["kv_cache_capacity_tokens"] > 2 * s1["kv_cache_capacity_tokens"]
    for s in (s1, s2):  # the stable keys, each time and cost with a range
        for key in ("kv_cache_capacity_tokens", "max_concurrency", "max_context_tokens", "replicas",
                    "throughput_output_tokens_per_s", "ttft_seconds", "tpot_seconds",
                    "usd_per_million_input_tokens", "usd_per_million_output_tokens"):
            assert s[key] is not None, key
        lo, hi = s["tpot_seconds_range"]
        assert lo <= s["tpot_seconds"] <= hi
    # the dollars per token pay for every device of the replica: input and output dollars add up to tp x $2/h
    for s, tp in ((s1, 1), (s2, 2)):
        out_tps = s["throughput_output_tokens_per_s"]
        usd_per_s = (s["usd_per_million_output_tokens"] * out_tps + s["usd_per_million_input_tokens"] * out_tps
                     * 128 / 128) / 1e6
        assert usd_per_s == pytest.approx(tp * 2.0 / 3600)


def test_tp_needs_a_transformer() -> None:
    with pytest.raises(InputError, match="layer count"):
        afford.assess("torchvision:resnet18", infer_samples=10, hardware="h100-sxm", count=2, tp=2)


def test_a_model_no_device_holds_is_split_over_owned_devices() -> None:
    """Llama-2-13B in fp16 (26 GB of weights) fits no RTX 4090 (24 GB); two owned ones hold it at TP=2, and a
    single owned one only in 8 or 4 bits."""
    a = afford.assess("hf:meta-llama/Llama-2-13b-hf", task="generate", prompt_tokens=128, generate_tokens=64,
                      infer_samples=100, precision="fp16", hardware="rtx4090", available="rtx4090:2")
    plans = a.decision.plans
    split = [p for p in plans if p.tp == 2 and p.weights == "fp16"]
    assert split and split[0].fits and split[0].count == 2
    assert split[0].per_device_bytes < 0.6 * 26e9
    assert any("tensor parallelism" in c for c in split[0].changes)
    assert all(p.tp == 1 for p in plans if p.weights in ("int8", "awq-4bit"))  # no split where one device holds it
    assert not any("not priced yet" in n for n in a.notes + a.decision.reasons + a.decision.notes)
