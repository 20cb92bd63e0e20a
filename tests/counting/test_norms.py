"""Norm layers as a GPU runs them (counting/norms.py): RMSNorm as PyTorch's fused kernel where CUDA takes it, the
composite where it does not, and LayerNorm's copy of a non-contiguous input."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import afford
from afford.counting import norms
from afford.estimate.timing import Efficiency, OpClock
from afford.hardware.catalog import builtin

B, S, D = 4, 16, 32


class _Rms(nn.Module):
    """Linear -> nn.RMSNorm (F.rms_norm inside); with `fp32_weight`, F.rms_norm with the weight cast to fp32."""

    def __init__(self, fp32_weight: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(D, D)
        self.norm = nn.RMSNorm(D)
        self.fp32_weight = fp32_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp32_weight:
            return torch.nn.functional.rms_norm(self.fc(x), [D], self.norm.weight.float())
        return self.norm(self.fc(x))


def _events(a: Any, phase: str) -> dict[str, list[tuple[int, int]]]:
    """op -> [(bytes per call, calls)] of one traced phase."""
    out: dict[str, list[tuple[int, int]]] = {}
    for (op, _, nbytes), calls in getattr(a.trace, phase).events.items():
        out.setdefault(op, []).append((nbytes, calls))
    return out


def _assess(model: nn.Module, precision: str, **job: Any) -> Any:
    return afford.assess(model, example_inputs=(torch.zeros(B, S, D, device="meta"),), batch_size=B,
                         precision=precision, **({"infer_samples": B, "forward_only": True} | job))


def test_rms_norm_traces_as_the_fused_kernel_forward_and_backward() -> None:
    """fp16 weights and input: one `_fused_rms_norm` call (input + weight + output + the fp32 reciprocal RMS) and
    one backward kernel, none of the composite's pow / mean / rsqrt."""
    a = _assess(_Rms(), "fp16", train_samples=B, forward_only=False)
    fwd, bwd = _events(a, "forward"), _events(a, "backward")
    n = B * S * D
    assert fwd["_fused_rms_norm"] == [(2 * n * 2 + D * 2 + B * S * 4, 1)]
    assert "_fused_rms_norm_backward" in bwd
    assert not {"pow", "rsqrt", "mean"} & (fwd.keys() | bwd.keys())


def test_autocast_casts_rms_norm_up_then_runs_the_fused_kernel_in_fp32() -> None:
    """rms_norm is on autocast's fp32 list: the 16-bit linear output is cast to fp32 (one kernel), then the fused
    kernel reads and writes fp32."""
    a = _assess(_Rms(), "fp16-mixed")
    ev = _events(a, "infer")
    n = B * S * D
    assert ev["_fused_rms_norm"] == [(2 * n * 4 + D * 4 + B * S * 4, 1)]
    assert (n * 6, 2) in ev["_to_copy"]  # the fp32 input cast down for the linear, its fp16 output cast up


def test_mismatched_weight_dtype_runs_the_composite() -> None:
    """An fp32 weight on a 16-bit input (no autocast): PyTorch warns and runs rms_norm_composite, so does the
    trace."""
    with torch.device("meta"):
        x, w = torch.zeros(B, S, D, dtype=torch.float16), torch.zeros(D)
        assert not norms.fused_applies(x, w)
        assert norms.fused_applies(x, w.half())
        assert not norms.fused_applies(torch.zeros(2, D, 4, 4).contiguous(memory_format=torch.channels_last), None)
    a = _assess(_Rms(fp32_weight=True), "fp16")
    ev = _events(a, "infer")
    assert "_fused_rms_norm" not in ev and "pow" in ev


def test_layer_norm_copies_a_non_contiguous_input_as_the_kernel_does() -> None:
    """A permuted input (timm's LayerNorm2d): the kernel's expect_contiguous copy is one clone of the input's bytes,
    then the norm reads the contiguous copy; a contiguous input has no copy."""

    class Permuted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(D)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(x.transpose(1, 2))

    a = afford.assess(Permuted(), example_inputs=(torch.zeros(B, D, S, device="meta"),), batch_size=B, infer_samples=B,
                      forward_only=True, precision="fp16")
    ev = _events(a, "infer")
    n = B * S * D
    assert ev["clone"] == [(2 * n * 2, 1)]
    b = afford.assess(nn.LayerNorm(D), example_inputs=(torch.zeros(B, S, D, device="meta"),), batch_size=B,
                      infer_samples=B, forward_only=True, precision="fp16")
    assert "clone" not in _events(b, "infer")


def test_autocast_casts_a_permuted_layer_norm_input_before_the_copy() -> None:
    """Under autocast the fp32 cast keeps the permuted strides, so the kernel's copy moves fp32 bytes."""

    class Permuted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(S, S)
            self.norm = nn.LayerNorm(D)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(self.fc(x).transpose(1, 2))

    a = afford.assess(Permuted(), example_inputs=(torch.zeros(B, D, S, device="meta"),), batch_size=B, infer_samples=B,
                      forward_only=True, precision="fp16-mixed")
    ev = _events(a, "infer")
    assert ev["clone"] == [(2 * B * S * D * 4, 1)]


def test_cpus_price_the_fused_op_at_the_composites_traffic() -> None:
    """A GPU streams the traced bytes once; a CPU, which runs the composite, 3.5 times (efficiency.toml); a TPU's
    compiler fuses the norm, once."""
    devices = {d.id: d for d in builtin()}
    gpu = next(d for d in devices.values() if d.kind == "gpu")
    cpu = next(d for d in devices.values() if d.kind == "cpu")
    tpu = next(d for d in devices.values() if d.kind == "tpu")
    nbytes = 10**9
    for device, factor in ((gpu, 1.0), (cpu, 3.5), (tpu, 1.0)):
        clock = OpClock(device, Efficiency.for_device(device), "fp32")
        plain, _ = clock.seconds("add", 0, nbytes)
        fused, _ = clock.seconds("_fused_rms_norm", 0, nbytes)
        assert fused == pytest.approx(plain * factor)


def test_the_custom_ops_compute_what_pytorch_does_off_meta() -> None:
    """The custom ops' own kernels (used off the meta device only) match F.rms_norm and its autograd."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    want = torch.nn.functional.rms_norm(x, [8], w, 1e-6)
    got = norms.fused_rms_norm(x, [8], w, 1e-6)[0]
    assert torch.allclose(got, want)
    g = torch.randn_like(want)
    gx, gw = torch.autograd.grad(want, (x, w), g)
    hx, hw = torch.autograd.grad(got, (x, w), g)
    assert torch.allclose(gx, hx) and torch.allclose(gw, hw)
