"""GPU norm kernels that give every row its own thread block: over short rows, the blocks set their time, not the bytes.

PyTorch's CUDA layer norm launches one block of 128 threads per row (M = elements / normalized size), forward and
backward: `launch_vectorized_layer_norm_kernel` (`dim3 blocks(M)`, threads warp_size x num_threads() / warp_size)
and the grad-input kernels `layer_norm_grad_input_kernel(_vectorized)` (`blocks(M)`, num_threads() threads), in
aten/src/ATen/native/cuda/layer_norm_kernel.cu (pytorch/pytorch, the 2025-2026 revisions; earlier ones hard-code
128 threads), num_threads() being 4 warps (thread_constants.h). The fused RMSNorm (PyTorch 2.8+, PR 153666) reuses
those kernels. Each block loads its row, reduces it across the block and normalises it: it lives at least one
global-memory round trip, however few elements the row has. An SM holds at most (resident threads per SM) / 128
such blocks at once, so M rows take at least M / (SMs x blocks per SM) round trips (Little's law): 13 M rows of 16
channels (timm's LayerNorm2d at 80 x 80, batch 2048) need about 5,800 on a 188-SM card, 1.5 ms, where their bytes
stream in 0.6 ms. estimate/timing.py prices it (efficiency.toml [row_blocks]); the catalog gives each GPU's SMs and
resident threads.

A phase records, per event key, the blocks one call launches (`PhaseProfile.row_blocks`); eager PyTorch's kernels
only (a compiled runtime generates its own reductions, several rows per block).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

# op -> the position of its input (the tensor whose rows are normalised) and of its normalized_shape
ROW_BLOCK_OPS: dict[str, tuple[int, int]] = {
    "native_layer_norm": (0, 1),
    "native_layer_norm_backward": (1, 2),
    "_fused_rms_norm": (0, 1),  # afford's record of PyTorch's fused kernel (counting/norms.py)
    "_fused_rms_norm_backward": (1, 2),
}


def blocks(name: str, args: Sequence[Any]) -> int:
    """Thread blocks PyTorch's CUDA kernel for this norm call launches (one per normalised row); 0 for every other
    op, and for a layer-norm backward that computes no input gradient (its row kernel does not run)."""
    where = ROW_BLOCK_OPS.get(name)
    if where is None or len(args) <= max(where):
        return 0
    x, shape = args[where[0]], args[where[1]]
    if not isinstance(x, torch.Tensor) or not isinstance(shape, Sequence) or not shape:
        return 0
    if name == "native_layer_norm_backward" and len(args) > 7 and isinstance(args[7], Sequence) and not args[7][0]:
        return 0
    row = math.prod(int(s) for s in shape)
    return int(x.numel()) // row if row > 0 else 0
