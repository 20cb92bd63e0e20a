"""GPU kernels whose threads loop over the batch and the channels: their time is the loop's, not their bytes'.

PyTorch's CUDA forward of bilinear and bicubic 2-D upsampling on an NCHW input launches one thread per output pixel
(H_out x W_out threads, a single block for a 14 x 14 output) and each thread walks all N x C planes in a serial loop
(aten/src/ATen/native/cuda/UpSampleBilinear2d.cu `upsample_bilinear2d_out_frame`, UpSampleBicubic2d.cu
`upsample_bicubic2d_out_frame`, pytorch/pytorch@fe03cf69; pytorch/pytorch PR 127082, "otherwise this kernel is
scheduled with a single block", reports 36-300x from parallelising it). Every iteration loads from a new plane
and stores before the next iteration's loads issue, so the loop waits one global-memory round trip per plane
whatever the bytes (estimate/timing.py prices it, efficiency.toml [serial]). Bilinear inputs in channels_last
with 16 or more channels take a kernel with one thread per output element instead, as do the backward kernels;
a compiled runtime (torch.compile) generates its own. Other upsampling modes are not checked and keep the rule
for their bytes.

A phase records, per event key, the loop length (N x C) of such calls (`PhaseProfile.serial`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from afford.counting.tensors import channels_last

SERIAL_OPS = frozenset({"upsample_bilinear2d", "upsample_bicubic2d"})
_NHWC_MIN_CHANNELS = 16  # UpSampleBilinear2d.cu: the channels_last kernel only from 16 channels


def loop_length(name: str, args: Sequence[Any], outs: Sequence[torch.Tensor]) -> int:
    """N x C, the per-thread loop of a forward upsampling call PyTorch runs in its per-pixel kernel; 0 for every
    other op, and for calls that take another kernel (channels_last bilinear, equal sizes: a copy)."""
    if name not in SERIAL_OPS or not args or not outs:
        return 0
    x, y = args[0], outs[0]
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or y.dim() != 4 or tuple(x.shape) == tuple(y.shape):
        return 0
    n, c = int(x.shape[0]), int(x.shape[1])
    if name == "upsample_bilinear2d" and c >= _NHWC_MIN_CHANNELS and channels_last(x):
        return 0
    return n * c
