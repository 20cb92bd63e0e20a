"""Tensor-parallel inference (issue 11): one replica of the model split over `tp` devices, Megatron-style, as vLLM,
TensorRT-LLM and SGLang run it.

Each linear layer's weight is split by columns or rows (Shoeybi et al. 2019, "Megatron-LM", sec. 3), so every
device holds and reads 1/tp of the weights and does 1/tp of the matmul work; attention heads are split the same
way, so each device keeps the KV cache of its own key/value heads (a head is replicated when there are fewer
key/value heads than devices, as vLLM does for grouped-query attention). Each transformer layer pays two
all-reduces of its activations (after attention and after the MLP), and so does every prefill and decode step:

    t_phase = kernels / tp + layers x 2 x (latency + ring bytes / bus bandwidth)
    ring bytes = 2 (tp - 1) / tp x tokens x hidden x bytes per activation       (estimate/parallel.py)

Every rank issues every op of the model (each is its own process in vLLM), so the host overhead per phase is the
unsplit one. The latency of one small all-reduce is cited in `ALLREDUCE_LATENCY_US`; docs/inference.md derives the
rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from afford.errors import InputError, opt
from afford.estimate.parallel import ring_all_reduce_bytes
from afford.estimate.timing import link_gb_s
from afford.hardware.catalog import Device

# (microseconds, source): the time of one small (latency-bound) NCCL all-reduce inside a node
ALLREDUCE_LATENCY_US: dict[str, tuple[float, str]] = {
    "nvlink": (10.0, "nccl-tests all_reduce_perf on 2 x A100-SXM4-40GB over NVLink, 32-byte all-reduce: 10.14 us "
                     "(github.com/NVIDIA/nccl/issues/583); 2 x H100 with NVLink SHARP and CUDA graphs: about 6 us "
                     "(github.com/NVIDIA/nccl/issues/1259)"),
    "pcie": (42.0, "nccl-tests all_reduce_perf on 8 x RTX 4090 over PCIe, 8-byte all-reduce: 42.14 us "
                   "(github.com/NVIDIA/nccl/issues/1530); 8 x RTX 3090: 54.18 us (github.com/NVIDIA/nccl/issues/"
                   "1439); taken for any PCIe group, an upper end for groups of 2-4"),
}
ALLREDUCES_PER_LAYER = 2  # Megatron-LM sec. 3: one after the attention block, one after the MLP (forward only)
TP_SIZES = (1, 2, 4, 8)  # the tensor-parallel degrees the inference plans search (within one node)


def link_class(device: Device) -> str:
    """'nvlink' for a device whose intra-node link is NVLink, NVSwitch, Infinity Fabric or another scale-up fabric,
    'pcie' otherwise."""
    return "pcie" if "pcie" in (device.intra_node_link or "pcie").lower() else "nvlink"


@dataclass(frozen=True)
class TensorSplit:
    """A replica split over `tp` devices: the layers that all-reduce, the bytes of one token's activations and the
    link they cross."""

    tp: int
    layers: int
    token_bytes: float  # hidden size x bytes per activation
    link_bytes_s: float  # bus bandwidth of the intra-node link
    latency_s: float  # one latency-bound all-reduce
    kv_heads: int = 0  # key/value heads (0: unknown, the KV cache splits evenly)

    def comm_seconds(self, tokens: float) -> float:
        """The all-reduces of one forward pass over `tokens` tokens (a prefill, a decode step of a batch)."""
        if self.tp <= 1:
            return 0.0
        size = tokens * self.token_bytes
        return self.layers * ALLREDUCES_PER_LAYER * (self.latency_s
                                                     + ring_all_reduce_bytes(size, self.tp) / self.link_bytes_s)

    @property
    def kv_share(self) -> float:
        """Share of a replica's KV cache one device holds (`kv_share`)."""
        return kv_share(self.kv_heads, self.tp)


def kv_share(kv_heads: int, tp: int) -> float:
    """Share of a replica's KV cache one of `tp` devices holds: its key/value heads, at least one (replicated when
    there are fewer heads than devices); an even split when the head count is unknown (0)."""
    if tp <= 1:
        return 1.0
    if not kv_heads:
        return 1.0 / tp
    return max(1, math.ceil(kv_heads / tp)) / kv_heads


def kv_heads_of(meta: dict[str, Any]) -> int:
    """The key/value head count of a config's metadata (the attention heads without grouped-query attention)."""
    return int(meta.get("num_kv_heads") or meta.get("num_heads") or 0)


def split_peak(peak: float, weights: float, kv: float, tp: int, kv_heads: int) -> float:
    """One device's share of a replica's peak bytes: 1/tp of the weights and of the activations, its heads'
    share of the KV cache."""
    if tp <= 1:
        return peak
    return weights / tp + kv * kv_share(kv_heads, tp) + max(0.0, peak - weights - kv) / tp


NO_SPLIT = TensorSplit(tp=1, layers=0, token_bytes=0.0, link_bytes_s=1.0, latency_s=0.0)


def tensor_split(a: Any, device: Device, tp: int, itemsize: float, notes: list[str] | None = None) -> TensorSplit:
    """The split of assessment `a` over `tp` devices of `device`, with activations of `itemsize` bytes (a group
    larger than a node crosses the scale-out network, with a note); a one-line InputError when the model is not a
    transformer with known layers and hidden size, or when `tp` does not divide its attention heads."""
    if tp <= 1:
        return NO_SPLIT
    meta = a.spec.metadata
    layers, hidden = int(meta.get("num_layers") or 0), int(meta.get("hidden_size") or 0)
    if not layers or not hidden:
        raise InputError(f"{opt('tp')} needs a transformer whose layer count and hidden size are known "
                         "(a Hugging Face config)")
    heads = int(meta.get("num_heads") or 0)
    if heads and heads % tp:
        raise InputError(f"{opt('tp')} {tp} does not divide the model's {heads} attention heads")
    latency_us = ALLREDUCE_LATENCY_US[link_class(device)][0]
    link = link_gb_s(device, tp > device.gpus_per_node, notes if notes is not None else [], device.gpus_per_node)
    return TensorSplit(tp=tp, layers=layers, token_bytes=hidden * itemsize, link_bytes_s=link * 1e9,
                       latency_s=latency_us * 1e-6, kv_heads=kv_heads_of(meta))


def tp_choices(a: Any, device: Device, limit: int) -> list[int]:
    """The tensor-parallel degrees worth pricing for `a` on `device`: 1, and the powers of two up to a node (and
    `limit` devices) that divide its attention heads, for a transformer with known shapes."""
    meta = a.spec.metadata
    if not meta.get("num_layers") or not meta.get("hidden_size"):
        return [1]
    heads = int(meta.get("num_heads") or 0)
    return [t for t in TP_SIZES if t <= min(device.gpus_per_node, limit) and (t == 1 or not heads or heads % t == 0)]
