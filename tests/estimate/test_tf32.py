"""`--precision tf32`: fp32 storage, matmuls on TF32 tensor cores where the device has them (estimate/timing.py
compute_format), as torch.backends.cuda.matmul.allow_tf32 = True runs them; plain fp32 keeps PyTorch's default
(convolutions in TF32, matmuls in fp32)."""

from __future__ import annotations

import dataclasses

import pytest

import afford
from afford.estimate.timing import compute_format
from afford.hardware.catalog import Catalog


def test_tf32_moves_matmuls_to_tf32_and_leaves_convolutions_and_attention_as_fp32_runs_them() -> None:
    for op in ("mm", "addmm", "bmm", "baddbmm"):
        assert compute_format("tf32", op) == "tf32"
        assert compute_format("fp32", op) == "fp32"
    for prec in ("fp32", "tf32"):
        assert compute_format(prec, "convolution") == "tf32"
        assert compute_format(prec, "_scaled_dot_product_efficient_attention") == "fp32"
    # a calibrated profile's 'tf32' figure is its measured convolution rate, and it measured matmuls in fp32
    cpu = dataclasses.replace(Catalog.load().get("h200"), extra={"calibrated": True})
    assert compute_format("tf32", "mm", cpu) == "fp32"


def test_tf32_speeds_up_a_transformer_where_the_device_has_tf32_and_changes_no_memory() -> None:
    def job(prec: str, hw: str) -> dict:
        return afford.assess("torchvision:vit_b_16", infer_samples=640, batch_size=64, precision=prec,
                             hardware=hw).to_dict()

    fp32, tf32 = job("fp32", "h200"), job("tf32", "h200")
    assert tf32["workload"]["precision"] == "tf32"
    # ViT-B/16 is matmul-bound: the H200's TF32 peak is 7.4x its fp32 peak (catalog), so several times faster
    assert tf32["time"]["infer_samples_per_second"] > 2.5 * fp32["time"]["infer_samples_per_second"]
    assert tf32["memory"]["infer_peak_bytes"] == fp32["memory"]["infer_peak_bytes"]
    assert tf32["time"]["mfu_peak_format"].startswith("tf32")
    # a V100 has no TF32: the flag changes nothing there
    v_fp32, v_tf32 = job("fp32", "v100-16gb"), job("tf32", "v100-16gb")
    assert v_tf32["time"]["infer_batch_seconds"] == pytest.approx(v_fp32["time"]["infer_batch_seconds"])
    assert any("no TF32" in n for n in v_tf32["notes"]) and not any("no TF32" in n for n in tf32["notes"])
