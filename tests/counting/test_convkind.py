"""Depthwise and grouped convolutions recorded under their own names (counting/convkind.py): the tag of each
kind, PyTorch's cuDNN-or-direct choice for depthwise ones, and traces of a tiny net and MobileNetV2."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from afford.api import assess
from afford.counting import convkind


def _conv_args(x: tuple[int, ...], w: tuple[int, ...], groups: int, stride: int = 1, dilation: int = 1,
               transposed: bool = False) -> list[Any]:
    """aten.convolution's positional arguments for meta tensors of these shapes."""
    dims = len(x) - 2
    return [torch.empty(x, device="meta"), torch.empty(w, device="meta"), None, [stride] * dims, [0] * dims,
            [dilation] * dims, transposed, [0] * dims, groups]


@pytest.mark.parametrize(("x", "w", "groups", "stride", "dilation", "name"), [
    ((8, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1, "convolution"),  # dense
    ((8, 64, 56, 56), (64, 8, 3, 3), 8, 1, 1, "convolution_grouped"),  # 8 groups of 8 channels
    ((8, 64, 56, 56), (64, 1, 3, 3), 64, 1, 1, "convolution_depthwise"),  # 3x3 stride 1: cuDNN in fp16
    ((8, 64, 56, 56), (64, 1, 5, 5), 64, 1, 1, "convolution_depthwise"),
    ((8, 96, 56, 56), (96, 1, 7, 7), 96, 1, 1, "convolution_depthwise_direct"),  # 7x7: PyTorch's own kernel
    ((8, 16, 56, 56), (16, 1, 3, 3), 16, 1, 1, "convolution_depthwise_direct"),  # under 32 channels
    ((8, 96, 56, 56), (96, 1, 3, 3), 96, 2, 1, "convolution_depthwise_direct"),  # stride 2, narrow
    ((8, 512, 14, 14), (512, 1, 3, 3), 512, 2, 1, "convolution_depthwise"),  # stride 2, >= 512 channels
    ((8, 64, 56, 56), (64, 1, 3, 3), 64, 1, 2, "convolution_depthwise_direct"),  # dilated
    ((8, 64, 4, 4), (64, 1, 3, 3), 64, 1, 1, "convolution_depthwise_direct"),  # maps under 7 wide
    ((8, 64, 100), (64, 1, 3), 64, 1, 1, "convolution_depthwise"),  # 1-D runs as (N, C, 1, L)
    ((2, 64, 8, 16, 16), (64, 1, 3, 3, 3), 64, 1, 1, "convolution_depthwise_direct"),  # 3-D
])
def test_forward_tags(x: tuple[int, ...], w: tuple[int, ...], groups: int, stride: int, dilation: int,
                      name: str) -> None:
    assert convkind.tag("convolution", _conv_args(x, w, groups, stride, dilation)) == name


def test_transposed_grouped_backward_and_other_ops() -> None:
    """A transposed convolution with groups == channels is no depthwise one for PyTorch (cuDNN's grouped path);
    convolution_backward reads its groups, input and weight one place later; other ops keep their names."""
    x, w = (8, 64, 28, 28), (64, 1, 3, 3)
    assert convkind.tag("convolution", _conv_args(x, w, 64, transposed=True)) == "convolution_grouped"
    gy = torch.empty(x, device="meta")
    back = [gy, *_conv_args(x, w, 64)[:2], None, [1, 1], [1, 1], [1, 1], False, [0, 0], 64, [True, True, False]]
    assert convkind.tag("convolution_backward", back) == "convolution_backward_depthwise"
    assert convkind.tag("convolution_backward", back[:9], {"groups": 1}) == "convolution_backward"
    assert convkind.tag("mm", [gy]) == "mm"
    assert convkind.runs_direct("convolution_depthwise", "bf16-mixed")
    assert not convkind.runs_direct("convolution_depthwise", "fp16-mixed")
    assert convkind.runs_direct("convolution_backward_depthwise_direct", "fp16")


def _conv_events(a: Any) -> dict[str, tuple[int, float]]:
    """(calls, FLOPs) per convolution op name over the forward and backward traces."""
    out: dict[str, tuple[int, float]] = {}
    for phase in (a.trace.forward, a.trace.backward):
        for name, stat in phase.by_op.items():
            if name.startswith("convolution"):
                calls, flops = out.get(name, (0, 0.0))
                out[name] = (calls + stat.calls, flops + stat.flops)
    return out


def test_a_tiny_net_traces_each_kind_under_its_name_with_its_flops() -> None:
    """Four 64-channel layers on 2 x 64 x 32 x 32: a 7x7 depthwise (2 x 2 x 64 x 1024 x 49 = 12.8 MFLOPs), a 3x3
    depthwise (2.36 MFLOPs), 8 groups of 3x3 (18.9 MFLOPs) and a dense 3x3 (151 MFLOPs); the first layer's input
    needs no gradient, so its backward is its weight gradient alone."""
    net = nn.Sequential(nn.Conv2d(64, 64, 7, padding=3, groups=64), nn.Conv2d(64, 64, 3, padding=1, groups=64),
                        nn.Conv2d(64, 64, 3, padding=1, groups=8), nn.Conv2d(64, 64, 3, padding=1))
    a = assess(net, example_inputs=torch.randn(2, 64, 32, 32), train_samples=2, batch_size=2)
    ev = _conv_events(a)
    pix = 2 * 64 * 32 * 32
    assert ev["convolution_depthwise_direct"] == (1, 2 * pix * 49)
    assert ev["convolution_depthwise"] == (1, 2 * pix * 9)
    assert ev["convolution_grouped"] == (1, 2 * pix * 8 * 9)
    assert ev["convolution"] == (1, 2 * pix * 64 * 9)
    assert ev["convolution_backward_depthwise_direct"] == (1, 2 * pix * 49)
    assert ev["convolution_backward_depthwise"] == (1, 2 * 2 * pix * 9)
    assert ev["convolution_backward_grouped"] == (1, 2 * 2 * pix * 8 * 9)
    assert ev["convolution_backward"] == (1, 2 * 2 * pix * 64 * 9)


def test_a_dense_net_has_no_tagged_convolution() -> None:
    a = assess("torchvision:resnet18", train_samples=2, batch_size=2)
    names = set(_conv_events(a))
    assert names == {"convolution", "convolution_backward"}


def test_mobilenet_v2_has_depthwise_events_and_the_same_flops() -> None:
    """torchvision's MobileNetV2: 17 depthwise 3x3 layers (stride 1 or 2), the rest dense 1x1; tagging moves FLOPs
    between names, never changes their sum (300.8 M MACs a sample forward, torchvision's 0.30 GFLOPS figure)."""
    a = assess("torchvision:mobilenet_v2", train_samples=2, batch_size=2)
    ev = _conv_events(a)
    fwd = [n for n in ev if n in convkind.FORWARD and n != "convolution"]
    assert {"convolution_depthwise", "convolution_depthwise_direct"} <= set(fwd)
    assert sum(ev[n][0] for n in fwd) == 17
    assert {"convolution_backward_depthwise", "convolution_backward_depthwise_direct"} <= set(ev)
    conv_fwd = sum(ev[n][1] for n in convkind.FORWARD if n in ev)
    assert conv_fwd / 2 / 2 == pytest.approx(300.8e6, rel=0.01)
