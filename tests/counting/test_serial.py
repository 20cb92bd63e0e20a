"""Kernels that loop over the batch and the channels in every thread (counting/serial.py): PyTorch's CUDA NCHW
bilinear and bicubic upsampling. The trace records each call's loop length (N x C); a GPU prices it at one
global-memory round trip per iteration (efficiency.toml [serial]) where that is longer than its bytes; a CPU, a
compiled runtime and every other kernel keep the roofline."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import afford
from afford.counting import serial
from afford.estimate.timing import Efficiency, factors
from afford.hardware.catalog import Catalog

N, C, S = 64, 512, 7


class _Up(nn.Module):
    def __init__(self, mode: str, channels_last: bool = False) -> None:
        super().__init__()
        self.mode, self.channels_last = mode, channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return nn.functional.interpolate(x, scale_factor=2, mode=self.mode) * 2


def _assess(model: nn.Module, hardware: str = "a100-80gb", runtime: str = "eager", c: int = C) -> Any:
    return afford.assess(model, example_inputs=(torch.zeros(N, c, S, S, device="meta"),), infer_samples=N,
                         batch_size=N, forward_only=True, hardware=hardware, runtime=runtime)


def test_the_trace_records_the_loop_of_nchw_bilinear_and_bicubic_upsampling_only() -> None:
    for mode in ("bilinear", "bicubic"):
        loops = list(_assess(_Up(mode)).trace.infer.serial.values())
        assert loops == [N * C], mode
    assert not _assess(_Up("nearest")).trace.infer.serial  # a kernel with a thread per output element
    assert not _assess(_Up("bilinear", channels_last=True)).trace.infer.serial  # PyTorch's NHWC kernel
    assert _assess(_Up("bilinear", channels_last=True), c=8).trace.infer.serial  # NHWC only from 16 channels
    same = torch.zeros(2, 3, 5, 5, device="meta")
    assert serial.loop_length("upsample_bilinear2d", (same,), [same]) == 0  # equal sizes: PyTorch copies


def test_a_gpu_prices_the_loop_per_plane_and_a_cpu_or_a_compiled_runtime_does_not() -> None:
    system = Efficiency.for_device(Catalog.load().get("a100-80gb")).system  # every kernel second is divided by it
    per_plane = factors()["serial"]["iteration_ns"] * 1e-9 / system
    eager = _assess(_Up("bilinear"))
    plain = _assess(_Up("nearest"))
    # N x C = 32,768 planes at 260 ns: 8.5 ms (before the system efficiency); the nearest kernel: microseconds
    slower = eager.to_dict()["time"]["infer_batch_seconds"] - plain.to_dict()["time"]["infer_batch_seconds"]
    assert slower == pytest.approx(N * C * per_plane, rel=0.05)
    compiled = _assess(_Up("bilinear"), runtime="compiled").to_dict()["time"]["infer_batch_seconds"]
    compiled_plain = _assess(_Up("nearest"), runtime="compiled").to_dict()["time"]["infer_batch_seconds"]
    assert compiled == pytest.approx(compiled_plain, rel=0.05)  # the compiler's own kernel: bytes-bound
    cpu = _assess(_Up("bilinear"), hardware="cpu-generic").to_dict()["time"]["infer_batch_seconds"]
    cpu_plain = _assess(_Up("nearest"), hardware="cpu-generic").to_dict()["time"]["infer_batch_seconds"]
    assert cpu == pytest.approx(cpu_plain, rel=0.5)  # bytes-bound on a CPU, no per-plane latency


def test_an_assessment_bound_by_the_serial_kernel_says_so_and_how_to_avoid_it() -> None:
    notes = _assess(_Up("bilinear")).to_dict()["notes"]
    assert any("upsampling takes" in n and "channels_last" in n for n in notes), notes
    assert not any("upsampling takes" in n for n in _assess(_Up("bilinear"), runtime="compiled").to_dict()["notes"])
    assert not any("upsampling takes" in n for n in _assess(_Up("nearest")).to_dict()["notes"])
