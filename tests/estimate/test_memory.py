"""Memory per device against hand derivations and the ZeRO paper's bytes-per-parameter accounting."""

from __future__ import annotations

from typing import Any

import pytest

import afford
from afford.estimate.memory import optimizer_state_bytes
from afford.workload import Optimizer, Precision

SHAPES = [((4096, 1024), True), ((1024,), True), ((100, 10), False), ((8, 16, 32), True)]


@pytest.mark.parametrize(("opt", "expected"), [
    (Optimizer.SGD, 0),
    (Optimizer.SGD_MOMENTUM, 4 * (4096 * 1024 + 1024 + 8 * 16 * 32)),
    (Optimizer.ADAMW, 8 * (4096 * 1024 + 1024 + 8 * 16 * 32)),
    # 8-bit: two 1-byte states + one fp32 absmax per 2048-block each; tensors under 4096 elements stay fp32
    # (the 8x16x32 tensor has exactly 4096 elements: 8-bit)
    (Optimizer.ADAM_8BIT, 2 * (4096 * 1024 + 4 * 2048) + 8 * 1024 + 2 * (4096 + 4 * 2)),
    # Adafactor: row + column accumulators per matrix (leading dims kept), full vector for 1-D
    (Optimizer.ADAFACTOR, 4 * (4096 + 1024) + 4 * 1024 + 4 * 8 * (16 + 32)),
])
def test_optimizer_state_bytes(opt: Optimizer, expected: int) -> None:
    assert optimizer_state_bytes(SHAPES, opt, Precision.FP32) == expected


def test_mixed_precision_adam_is_16_bytes_per_parameter(assessed: Any) -> None:
    # ZeRO (Rajbhandari et al. 2020, sec. 3.1): fp16 params 2 + fp16 grads 2 + fp32 params, momentum, variance 12
    a = assessed("torchvision:resnet50", precision="bf16-mixed", train_samples=10)
    m = a.to_dict()["memory"]
    p = a.to_dict()["model"]["params"]
    assert m["weights_bytes"] == 2 * p
    assert m["gradients_bytes"] == 2 * p
    assert m["master_weights_bytes"] == 4 * p
    assert m["optimizer_bytes"] == 8 * p


def test_pure_bf16_keeps_optimizer_state_in_bf16(assessed: Any) -> None:
    a = assessed("torchvision:resnet18", precision="bf16", train_samples=10)
    m, p = a.to_dict()["memory"], a.to_dict()["model"]["params"]
    assert m["master_weights_bytes"] == 0
    assert m["optimizer_bytes"] == 4 * p


def test_saved_activations_of_an_mlp_match_hand_count() -> None:
    batch = 8
    a = afford.assess("module:fixture_models:mlp", batch_size=batch, train_samples=1)
    m = a.to_dict()["memory"]
    # Linear1 saves its input x for the weight gradient (B x 1024); ReLU saves its output (B x 4096), which
    # Linear2 saves too (same storage, counted once); weights are parameters, never activations.
    assert m["activations_bytes"] == 4 * batch * (1024 + 4096)
    params = 1024 * 4096 + 4096 + 4096 * 1024 + 1024
    assert m["weights_bytes"] == 4 * params
    assert m["gradients_bytes"] == 4 * params
    assert m["train_peak_bytes"] >= m["weights_bytes"] + m["optimizer_bytes"] + m["gradients_bytes"]


def test_activations_scale_with_batch(assessed: Any) -> None:
    one = assessed("torchvision:resnet18", batch_size=1, train_samples=10).to_dict()["memory"]
    four = assessed("torchvision:resnet18", batch_size=4, train_samples=10).to_dict()["memory"]
    assert four["activations_bytes"] == pytest.approx(4 * one["activations_bytes"], rel=0.01)
    assert four["infer_peak_bytes"] > one["infer_peak_bytes"]


def test_frozen_parameters_have_no_gradients_or_optimizer_state(assessed: Any) -> None:
    a = assessed("torchvision:resnet50", freeze=["*", "!fc.*"], train_samples=10)
    m = a.to_dict()["memory"]
    trainable = 2048 * 1000 + 1000
    assert m["gradients_bytes"] == 4 * trainable
    assert m["optimizer_bytes"] == 8 * trainable
