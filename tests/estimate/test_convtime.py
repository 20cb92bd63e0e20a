"""Depthwise convolutions on CUDA cores (estimate/convtime.py, efficiency.toml [depthwise]): the rule on a
hand-computed example, the fp16 cuDNN case, and dense or grouped convolutions left on the tensor-core roofline."""

from __future__ import annotations

import dataclasses

import pytest

from afford.counting import convkind
from afford.estimate.runtime import CONV_OPS, WEIGHT_OPS
from afford.estimate.serving import _conv_weight
from afford.estimate.timing import Efficiency, OpClock, factors
from afford.hardware.catalog import Catalog

FLOPS, BYTES = 1e9, 1e8


def _clock(device_id: str = "rtx-pro-6000-maxq", precision: str = "fp16-mixed") -> OpClock:
    dev = Catalog.load().get(device_id)
    return OpClock(dev, Efficiency.for_device(dev), precision)


def test_the_fraction_is_the_cited_one() -> None:
    entry = factors()["depthwise"]["default"]
    assert entry["cuda_core_fraction"] == 0.113
    assert "2410.08049" in entry["source"] and entry["note"].startswith("DERIVED")


def test_direct_kernel_adds_memory_and_cuda_core_time_by_hand() -> None:
    """RTX PRO 6000 Max-Q: 1792 GB/s x 0.83, 110 TFLOPS fp32 x 0.113. 1e8 bytes take 1e8 / 1487.36e9 = 67.23 us,
    1e9 FLOPs take 1e9 / 12.43e12 = 80.45 us; the direct kernel does one after the other: 147.68 us."""
    t, t_cmp = _clock().seconds("convolution_depthwise_direct", FLOPS, BYTES)
    assert t_cmp == pytest.approx(1e9 / (110e12 * 0.113))
    assert t == pytest.approx(1e8 / (1792e9 * 0.83) + 1e9 / (110e12 * 0.113))
    assert t == pytest.approx(147.68e-6, rel=1e-4)
    back, _ = _clock().seconds("convolution_backward_depthwise_direct", FLOPS, BYTES)
    assert back == t


def test_cudnn_takes_small_fp16_depthwise_as_a_roofline_and_bf16_takes_the_direct_kernel() -> None:
    fp16, _ = _clock(precision="fp16-mixed").seconds("convolution_depthwise", FLOPS, BYTES)
    assert fp16 == pytest.approx(max(1e8 / (1792e9 * 0.83), 1e9 / (110e12 * 0.113)))
    bf16, _ = _clock(precision="bf16-mixed").seconds("convolution_depthwise", FLOPS, BYTES)
    assert bf16 == pytest.approx(1e8 / (1792e9 * 0.83) + 1e9 / (110e12 * 0.113))


def test_dense_and_grouped_convolutions_keep_the_tensor_core_roofline() -> None:
    """fp16 tensor peak 438.9 TFLOPS x the device's matmul fraction: 1e12 FLOPs take milliseconds, far more than
    the bytes' 67 us."""
    clock = _clock()
    dense, _ = clock.seconds("convolution", 1e12, BYTES)
    assert dense == pytest.approx(1e12 / (438.9e12 * clock.eff.matmul))
    assert clock.seconds("convolution_grouped", 1e12, BYTES) == clock.seconds("convolution", 1e12, BYTES)
    assert clock.seconds("convolution_backward_grouped", 1e12, BYTES) == clock.seconds("convolution_backward",
                                                                                        1e12, BYTES)


def test_the_rule_is_for_nvidia_gpus_only() -> None:
    """An AMD GPU (MIOpen, not PyTorch's CUDA kernel) and a calibrated profile keep the old rule."""
    amd = _clock("mi300x")
    assert amd.seconds("convolution_depthwise_direct", FLOPS, BYTES) == amd.seconds("convolution", FLOPS, BYTES)
    dev = Catalog.load().get("rtx-pro-6000-maxq")
    cal = dataclasses.replace(dev, extra={**dev.extra, "calibrated": True})
    clock = OpClock(cal, Efficiency.for_device(cal), "fp16-mixed")
    assert clock.seconds("convolution_depthwise_direct", FLOPS, BYTES) == clock.seconds("convolution", FLOPS, BYTES)


def test_every_tagged_convolution_counts_as_a_convolution_elsewhere() -> None:
    """cuDNN set-up in the host profile and TF32 under fp32 (CONV_OPS), autocast's weight cast (WEIGHT_OPS)."""
    assert convkind.TAGGED <= CONV_OPS
    assert convkind.FORWARD <= WEIGHT_OPS
    assert not convkind.BACKWARD & WEIGHT_OPS


def test_a_depthwise_convolution_reads_its_weight_once() -> None:
    """nn.Conv2d(64, 64, 7, padding=3, groups=64) on (2, 64, 32, 32) fp16: 2 x 2 x 64 x 32^2 x 49 FLOPs; input and
    output 131,072 elements each, weight 64 x 49, bias 64, all 2 bytes: the weight is 6,272 bytes."""
    flops, nbytes = 2 * 2 * 64 * 32 * 32 * 49, 2 * (2 * 131072 + 64 * 49 + 64)
    assert _conv_weight("convolution_depthwise_direct", flops, nbytes, {(64, 1, 7, 7)}, 2) == 6272
    assert _conv_weight("convolution_backward_depthwise_direct", flops, nbytes, {(64, 1, 7, 7)}, 2) == 0
