"""Normalisations that read their activations twice on a GPU (efficiency.toml [passes], estimate/timing.py)."""

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
