"""Norm kernels that give every row its own thread block (counting/rowblocks.py): PyTorch's CUDA layer norm and fused
RMSNorm, forward and backward. The trace records the blocks a call launches (its rows); an NVIDIA GPU in the catalog
prices at least one global-memory round trip per wave of resident blocks (efficiency.toml [row_blocks]) where that
is longer than the bytes; long rows, a CPU, a compiled runtime and a GPU without SM facts keep the roofline."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import afford
from afford.counting import rowblocks
from afford.estimate.timing import Efficiency, OpClock, factors, resident_row_blocks
from afford.hardware.catalog import Catalog, ConfigError, _device, builtin

N, S = 64, 80  # 64 x 80 x 80 = 409,600 rows


class _Norm(nn.Module):
    """A projection (so the norm's input needs a gradient), a norm over the channels of an NHWC activation, then a
    scale (so the norm is not the output)."""

    def __init__(self, channels: int, rms: bool = False) -> None:
        super().__init__()
        self.proj = nn.Linear(channels, channels)
        self.norm: nn.Module = nn.RMSNorm(channels) if rms else nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x)) * 2


def _assess(channels: int, hardware: str = "rtx-pro-6000-maxq", runtime: str = "eager", rms: bool = False,
            train: bool = False) -> Any:
    x = torch.zeros(N, S, S, channels, device="meta")
    return afford.assess(_Norm(channels, rms), example_inputs=(x,), infer_samples=N, batch_size=N, hardware=hardware,
                         runtime=runtime, forward_only=not train, precision="fp16" if not train else "fp32")


def _norm_blocks(phase: Any, op: str) -> list[int]:
    return [n for key, n in phase.row_blocks.items() if key[0] == op]


def test_the_trace_records_one_block_per_normalised_row_forward_and_backward() -> None:
    a = _assess(16, train=True)
    assert _norm_blocks(a.trace.forward, "native_layer_norm") == [N * S * S]
    assert _norm_blocks(a.trace.backward, "native_layer_norm_backward") == [N * S * S]
    assert set(a.trace.infer.row_blocks) <= set(a.trace.infer.events)  # keyed as the events they price
    x = torch.zeros(4, 6, 8, device="meta")
    assert rowblocks.blocks("native_layer_norm", (x, [6, 8])) == 4  # rows over the whole normalized shape
    assert rowblocks.blocks("native_layer_norm_backward", (x, x, [8], None, None, None, None, [False, True, True])) == 0
    assert rowblocks.blocks("native_group_norm", (x, None, None, 4, 6, 8, 2, 1e-5)) == 0  # blocks per group, not row
    assert rowblocks.blocks("_fused_rms_norm", (x, [8])) == 24


def test_rms_norm_records_its_fused_kernels_rows_where_the_gpu_runs_it() -> None:
    a = _assess(16, rms=True, train=True)
    assert _norm_blocks(a.trace.forward, "_fused_rms_norm") == [N * S * S]
    assert _norm_blocks(a.trace.backward, "_fused_rms_norm_backward") == [N * S * S]


def test_short_rows_cost_a_round_trip_per_wave_of_resident_blocks_and_long_rows_their_bytes() -> None:
    device = Catalog.load().get("rtx-pro-6000-maxq")
    resident, block_s = resident_row_blocks(device)
    assert resident == 188 * (1536 // 128) and block_s == pytest.approx(factors()["serial"]["iteration_ns"] * 1e-9)
    clock = OpClock(device, Efficiency.for_device(device), "fp16")
    rows = 13_107_200  # timm's LayerNorm2d at 80 x 80, batch 2048
    short = ("native_layer_norm", 0, rows * 16 * 2 * 2)  # 16 fp16 channels, read once and written once
    floor = math.ceil(rows / resident) * block_s
    assert clock.seconds(*short, 0, rows)[0] == pytest.approx(floor)
    assert clock.seconds(*short)[0] < floor / 2  # its bytes alone: about a third of the floor
    long = ("native_layer_norm", 0, 409_600 * 768 * 2 * 2)  # a ViT's rows: bandwidth-bound, the floor is far below
    assert clock.seconds(*long, 0, 409_600)[0] == clock.seconds(*long)[0]


def test_the_floor_slows_short_rows_only_on_catalog_nvidia_gpus_under_eager() -> None:
    def batch_s(*args: Any, **kwargs: Any) -> float:
        return float(_assess(*args, **kwargs).to_dict()["time"]["infer_batch_breakdown"]["gpu_seconds"])

    system = Efficiency.for_device(Catalog.load().get("rtx-pro-6000-maxq")).system
    resident, block_s = resident_row_blocks(Catalog.load().get("rtx-pro-6000-maxq"))
    # 409,600 rows of 8 channels: 182 waves x 260 ns = 47 us, against 13 us for their bytes
    expected = math.ceil(N * S * S / resident) * block_s / system
    short = _assess(8)
    norm_s = [OpClock(short.estimate.req.device, Efficiency.for_device(short.estimate.req.device), "fp16")
              .key_seconds(short.trace.infer, k)[0] for k in short.trace.infer.row_blocks]
    assert sum(norm_s) / system == pytest.approx(expected)
    assert batch_s(8) > batch_s(8, runtime="compiled") + 0.5 * expected  # Inductor's kernel: several rows a block
    for other in ("mi300x", "cpu-generic"):  # no SM facts / not a GPU: the rule does not apply
        assert not resident_row_blocks(Catalog.load().get(other))[0], other


def test_an_assessment_bound_by_the_row_blocks_says_so() -> None:
    notes = _assess(4).to_dict()["notes"]
    assert any("own thread block" in n and "compiled" in n for n in notes), notes
    assert not any("own thread block" in n for n in _assess(512).to_dict()["notes"])
    assert not any("own thread block" in n for n in _assess(4, runtime="compiled").to_dict()["notes"])


def test_the_catalog_gives_sm_facts_as_integers_and_refuses_others() -> None:
    base = {"id": "x", "memory_bytes": 1, "memory_bandwidth_gb_s": 1.0}
    assert _device({**base, "sm_count": 10, "threads_per_sm": 1536}, "t").sm_count == 10
    for bad in ({"sm_count": 0}, {"sm_count": 1.5}, {"threads_per_sm": True}, {"threads_per_sm": 16}):
        with pytest.raises(ConfigError, match="must be an integer"):
            _device({**base, **bad}, "t")
    gpus = [d for d in builtin() if d.vendor == "nvidia" and d.kind == "gpu"]
    assert gpus and all(d.sm_count and d.threads_per_sm in (1024, 1536, 2048) for d in gpus)
