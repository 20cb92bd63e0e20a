"""Parallel layouts: how a job is split over devices, what each device holds and what it must communicate.

Memory sharding follows ZeRO (Rajbhandari et al. 2020, sec. 5): stage 1 shards optimizer state, stage 2 also
gradients, stage 3 (= PyTorch FSDP FULL_SHARD) also parameters, each over the data-parallel group. Tensor
parallelism (Megatron-LM, Shoeybi et al. 2019) splits each layer's weights and activations over `tp` devices
with two all-reduces per layer in forward and two in backward; pipeline parallelism (Narayanan et al. 2021)
splits layers into `pp` stages run with the 1F1B schedule.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from afford import bounds as b
from afford.errors import InputError, opt

# CUDA context, cuBLAS/cuDNN workspaces and allocator fragmentation are not in the trace; a device is said to
# fit a job only if the job leaves this much free (PyTorch's CUDA context alone takes 0.3-1 GB depending on
# the GPU and the loaded kernels; see docs/methodology.md, "Memory per device").
RESERVED_BYTES = 1 << 30


class Parallel(enum.StrEnum):
    """Data-parallel flavour: plain DDP, ZeRO stages 1-3, or FSDP (full shard, equivalent to ZeRO-3)."""

    DP = "dp"
    ZERO1 = "zero1"
    ZERO2 = "zero2"
    ZERO3 = "zero3"
    FSDP = "fsdp"

    @property
    def shards_optimizer(self) -> bool:
        return self is not Parallel.DP

    @property
    def shards_gradients(self) -> bool:
        return self in (Parallel.ZERO2, Parallel.ZERO3, Parallel.FSDP)

    @property
    def shards_parameters(self) -> bool:
        return self in (Parallel.ZERO3, Parallel.FSDP)


@dataclass(frozen=True)
class Layout:
    """`count` devices, `gpus_per_node` per node, split as tp x pp x dp."""

    count: int
    gpus_per_node: int
    parallel: Parallel = Parallel.DP
    tp: int = 1
    pp: int = 1
    grad_accum: int = 1

    def __post_init__(self) -> None:
        for name, high in (("count", b.MAX_DEVICES), ("gpus_per_node", b.MAX_GPUS_PER_NODE),
                           ("tp", b.MAX_DEVICES), ("pp", b.MAX_DEVICES), ("grad_accum", b.MAX_GRAD_ACCUM)):
            b.whole(getattr(self, name), name, high=high)
        if self.count % (self.tp * self.pp):
            raise InputError(f"{opt('tp')} {self.tp} x {opt('pp')} {self.pp} = {self.tp * self.pp} does not divide "
                             f"{self.count} devices")
        if self.count > self.gpus_per_node and self.count % self.gpus_per_node:
            raise InputError(f"{self.count} devices do not fill whole nodes of {self.gpus_per_node}")

    @property
    def dp(self) -> int:
        return self.count // (self.tp * self.pp)

    @property
    def nodes(self) -> int:
        return max(1, math.ceil(self.count / self.gpus_per_node))

    @property
    def model_split(self) -> int:
        """Devices one copy of the model is split over (tensor x pipeline)."""
        return self.tp * self.pp

    @property
    def activation_scale(self) -> float:
        """Share of one device's live activations each device holds: split over tp, with the 1F1B schedule
        keeping up to `pp` micro-batches in flight on the first pipeline stage."""
        in_flight = min(self.pp, self.grad_accum) if self.pp > 1 else 1
        return in_flight / self.tp / self.pp

    def tp_crosses_nodes(self) -> bool:
        return self.tp > self.gpus_per_node

    def dp_crosses_nodes(self) -> bool:
        """True when a data-parallel group spans nodes (the ring then runs at the network's speed)."""
        return self.count > self.gpus_per_node and self.dp > 1

    def to_dict(self) -> dict[str, object]:
        return {"parallel": self.parallel.value, "count": self.count, "nodes": self.nodes,
                "gpus_per_node": self.gpus_per_node, "tp": self.tp, "pp": self.pp, "dp": self.dp,
                "grad_accum": self.grad_accum}


@dataclass(frozen=True)
class DeviceMemory:
    """Bytes one device holds for a training step under a layout (the first pipeline stage, the largest)."""

    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float  # optimizer state plus fp32 master weights
    activations_bytes: float  # live activations and temporaries at the peak, gradients excluded
    total_bytes: float

    @property
    def model_states_bytes(self) -> float:
        """Parameters, gradients and optimizer state: what ZeRO shards (its paper's 'model states')."""
        return self.weights_bytes + self.gradients_bytes + self.optimizer_bytes


def train_memory_per_device(layout: Layout, *, weights: float, gradients: float, optimizer: float,
                            live: tuple[float, float]) -> DeviceMemory:
    """Shard the single-device figures: model states over tp x pp (and dp per ZeRO stage); live activations
    over tp, with the 1F1B schedule keeping up to `pp` micro-batches in flight on the first stage.

    `live` = (forward peak, backward peak) of live bytes other than gradients; the device's gradients join the
    backward peak (on one device the total is the traced training peak)."""
    split = layout.model_split
    w = weights / split / (layout.dp if layout.parallel.shards_parameters else 1)
    g = gradients / split / (layout.dp if layout.parallel.shards_gradients else 1)
    o = optimizer / split / (layout.dp if layout.parallel.shards_optimizer else 1)
    act_scale = layout.activation_scale
    fwd, bwd = live[0] * act_scale, live[1] * act_scale
    peak = max(fwd, bwd + g, g)
    return DeviceMemory(weights_bytes=w, gradients_bytes=g, optimizer_bytes=o, activations_bytes=peak - g,
                        total_bytes=w + o + peak)


def ring_all_reduce_bytes(size: float, group: int) -> float:
    """Bytes each member sends in a ring all-reduce of `size` bytes: 2 (n - 1) / n x size (Patarasuk & Yuan
    2009; NCCL's bus-bandwidth convention)."""
    return 0.0 if group <= 1 else 2.0 * (group - 1) / group * size


def data_parallel_bytes(layout: Layout, *, gradient_bytes: float, parameter_bytes: float) -> float:
    """Per-device traffic of one optimizer step's data-parallel communication.

    DP and ZeRO-1/2: one all-reduce (or reduce-scatter + all-gather) of the gradients, 2 psi in the ZeRO paper's
    accounting; ZeRO-3/FSDP add an all-gather of the parameters in forward and again in backward, 3 psi
    (ZeRO sec. 7.2.2): here gradients and parameters of one model copy's shard (tp x pp split).
    """
    dp = layout.dp
    if dp <= 1:
        return 0.0
    shard_grads = gradient_bytes / layout.model_split
    base = ring_all_reduce_bytes(shard_grads, dp)
    if layout.parallel.shards_parameters:
        base += (dp - 1) / dp * parameter_bytes / layout.model_split
    return base
