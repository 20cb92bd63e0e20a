"""Kernel classes a GPU runs below the plain roofline: normalisations that read their activations twice (efficiency.toml
[passes]) and fused attention at its published share of peak ([attention]; estimate/timing.py OpClock)."""

from __future__ import annotations

import dataclasses

import pytest

from afford.counting.profile import PhaseProfile
from afford.estimate.timing import Efficiency, phase_seconds
from afford.hardware.catalog import Catalog

MB = 1e6


def _seconds(op: str, device_id: str = "rtx3090", **extra: object) -> float:
    dev = Catalog.load().get(device_id)
    if extra:
        dev = dataclasses.replace(dev, extra={**dev.extra, **extra})
    eff = Efficiency.for_device(dev)
    return phase_seconds(PhaseProfile(name="x", events={(op, 0, int(300 * MB)): 1}), dev, eff, "fp16-mixed")[0]


def test_training_norms_stream_their_activations_as_many_times_as_the_kernels_read_them() -> None:
    one_pass = _seconds("relu")  # an element-wise op: the traced bytes once
    assert _seconds("_native_batch_norm_legit") == pytest.approx(1.5 * one_pass)  # statistics, then normalise
    assert _seconds("native_group_norm") == pytest.approx(1.5 * one_pass)
    for backward in ("native_batch_norm_backward", "native_layer_norm_backward", "native_group_norm_backward"):
        assert _seconds(backward) == pytest.approx(5 / 3 * one_pass, rel=1e-3)  # reduce, then grad_input


def test_eval_batch_norm_and_layer_norm_forward_are_one_pass_and_a_calibrated_profile_keeps_its_own_rates() -> None:
    one_pass = _seconds("relu")
    assert _seconds("_native_batch_norm_legit_no_training") == pytest.approx(one_pass)
    assert _seconds("native_layer_norm") == pytest.approx(one_pass)
    calibrated = _seconds("native_batch_norm_backward", calibrated=True)
    assert calibrated == pytest.approx(_seconds("relu", calibrated=True))


def test_fused_attention_on_hopper_runs_at_flashattention2s_share_and_serving_engines_keep_the_gemm_rate() -> None:
    import afford
    from afford.estimate import formats
    from afford.estimate.serving import _Pricer
    from afford.estimate.timing import OpClock

    for device_id, expected in (("h100-sxm", 0.35), ("h200", 0.35), ("a100-80gb", None)):
        dev = Catalog.load().get(device_id)
        eff = Efficiency.for_device(dev)
        assert eff.attention == expected
        clock = OpClock(dev, eff, "bf16-mixed")
        flops = 1e12  # compute-bound: the bytes are small
        attn, _ = clock.seconds("_scaled_dot_product_flash_attention", flops, 1.0)
        gemm, _ = clock.seconds("mm", flops, 1.0)
        assert attn == pytest.approx(gemm * (eff.matmul / expected if expected else 1.0))
    # the serving model's pricer drops it (engines run their own Hopper kernels); PyTorch batch curves keep it
    a = afford.assess("hf:openai-community/gpt2", seq_len=128, batch_size=2, infer_samples=2, forward_only=True)
    dev, fmt = Catalog.load().get("h100-sxm"), formats.weight_format("bf16")
    assert _Pricer(a, dev, fmt, engine=True).eff.attention is None
    assert _Pricer(a, dev, fmt).eff.attention == 0.35
