"""Time of a traced phase on a device: a per-op roofline (each op compute- or memory-bound) with cited
efficiency factors, then training steps with communication, pipeline bubble and the optimizer step.

    t_op   = max(flops / (peak_format x eta_matmul), bytes / (bandwidth x eta_bandwidth))
    t_step = (compute x (m + pp - 1) / m + tensor-parallel all-reduces + exposed data-parallel traffic
              + optimizer step) / eta_system + the runtime's overheads (estimate/runtime.py: kernel gaps, host
              time beyond the GPU's, a fixed cost per step)

The factors and their sources are in `efficiency.toml` and docs/methodology.md ("Time").
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from afford.counting import convkind
from afford.counting.profile import PhaseProfile
from afford.estimate import convtime
from afford.estimate.parallel import Layout, data_parallel_bytes, ring_all_reduce_bytes
from afford.estimate.runtime import CONV_OPS, NONE, Overhead, applies
from afford.hardware.catalog import Device

# When the catalog has no scale-out bandwidth for a device used across nodes: 100 Gb/s Ethernet per device,
# a common cloud default; the result carries a note saying so.
FALLBACK_INTER_NODE_GB_S = 12.5
# PyTorch DDP's default gradient bucket (bucket_cap_mb = 25, MiB); the last one is never overlapped.
BUCKET_BYTES = 25 * 2**20


@cache
def factors() -> dict[str, Any]:
    """efficiency.toml, read once."""
    text = resources.files("afford.estimate").joinpath("efficiency.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _lookup(section: str, device_id: str, key: str = "fraction") -> float:
    table = factors().get(section, {})
    entry = table.get(device_id) or table.get("default") or {}
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, (int, float)):
        raise KeyError(f"efficiency.toml lacks [{section}.default].{key}")
    return float(value)


@dataclass(frozen=True)
class Efficiency:
    """Named efficiency factors for one device; `scaled` gives the low/high ends of the range."""

    matmul: float  # achieved / dense peak for large matmuls (MAMF)
    bandwidth: float  # achieved / peak memory bandwidth for streaming kernels
    system: float  # what kernels do not show: launches, data loading, stragglers, host overhead
    overlap: float  # share of data-parallel traffic hidden behind backward compute
    matmul_fp8: float | None = None  # achieved / FP8 dense peak, only where measured (MAMF FP8 column)
    # achieved / 16-bit dense peak of PyTorch's fused attention kernels (FlashAttention-2), where published
    # (efficiency.toml [attention]); None: the matmul fraction
    attention: float | None = None

    @classmethod
    def for_device(cls, device: Device, system: float | None = None) -> Efficiency:
        if device.extra.get("calibrated"):
            # measured, achieved figures on one local device: kernels are not discounted; the system factor is
            # what `afford calibrate` measured on its probe training steps (1 when absent)
            return cls(matmul=1.0, bandwidth=1.0, system=float(device.extra.get("system_efficiency", 1.0)),
                       overlap=1.0)
        fp8 = factors().get("matmul", {}).get(device.id, {}).get("fp8_fraction")
        attention = factors().get("attention", {}).get(device.id, {}).get("fraction")
        return cls(matmul=_lookup("matmul", device.id), bandwidth=_lookup("bandwidth", device.id),
                   system=system if system is not None else _lookup("system", "default"),
                   overlap=_lookup("overlap", "default"), matmul_fp8=float(fp8) if fp8 else None,
                   attention=float(attention) if attention else None)

    def spread(self) -> tuple[float, float]:
        """The factors a time takes at the fast and the slow end of the system efficiency's documented range
        ((1, 1) for a calibrated device)."""
        return self.system / self.scaled("high").system, self.system / self.scaled("low").system

    def scaled(self, end: str) -> Efficiency:
        """The pessimistic ('low') or optimistic ('high') end of the documented range of each factor."""
        if self.matmul == 1.0 and self.bandwidth == 1.0:
            return self  # a calibrated device: its measured figures carry no range of their own
        sys_table = factors()["system"]["default"]
        key = "low" if end == "low" else "high"
        return Efficiency(matmul=self.matmul, bandwidth=self.bandwidth, system=float(sys_table[key]),
                          overlap=self.overlap, matmul_fp8=self.matmul_fp8, attention=self.attention)


# the matmuls of linear layers and expert stacks: what an FP4 (NVFP4 / MXFP4) checkpoint computes in FP4
_FP4_OPS = frozenset({"mm", "addmm", "_grouped_mm"})


# the matmuls cuBLAS runs in TF32 when torch.backends.cuda.matmul.allow_tf32 is set (precision "tf32"); attention
# kernels are not among them: their fp32 path does not follow that flag
TF32_MATMUL_OPS = frozenset({"mm", "addmm", "bmm", "baddbmm", "addbmm", "addmv", "mv"})


def compute_format(precision: str, op: str, device: Device | None = None) -> str:
    """Number format an op runs in: 16-bit for mixed/bf16 jobs, TF32 for fp32 convolutions, fp32 otherwise;
    'fp8' (FP8 matmuls) for the planner's FP8 strategies; 'fp4' for the linear layers' matmuls of an FP4 weight
    format (attention and the rest in bf16, as TensorRT-LLM's FP4 checkpoints run them). Under "tf32" the
    matmuls run in TF32 too, except on a calibrated profile, whose 'tf32' figure is its measured convolution rate
    and whose matmul rate was measured in fp32 (a CPU has no TF32)."""
    if precision == "fp8":
        return "fp8"
    if precision == "fp4":
        return "fp4" if op in _FP4_OPS else "bf16"
    if precision in ("bf16-mixed", "bf16"):
        return "bf16"
    if precision in ("fp16-mixed", "fp16"):
        return "fp16"
    # convolutions run in TF32 under fp32 by default (torch.backends.cudnn.allow_tf32 = True); plain matmuls do
    # not (torch.backends.cuda.matmul.allow_tf32 = False since PyTorch 1.12). PyTorch docs, "TensorFloat-32 (TF32)
    # on Ampere (and later) devices"
    if precision == "tf32" and op in TF32_MATMUL_OPS and not (device is not None and device.extra.get("calibrated")):
        return "tf32"
    return "tf32" if op in CONV_OPS else "fp32"


def mfu_peak(phases: Sequence[PhaseProfile | None], device: Device, precision: str) -> tuple[float, str]:
    """The dense peak (FLOP/s) that MFU is measured against, and its format: each counted op at the peak of the
    format it runs in (`compute_format`, the same peaks the roofline times it with), as a FLOP-weighted harmonic
    mean. Every op's time is at least flops / its peak, so achieved FLOP/s / this peak never exceeds 1."""
    flops = ideal = 0.0
    by_format: dict[str, float] = {}
    for phase in phases:
        for (op, op_flops, _), calls in (phase.events.items() if phase is not None else ()):
            if op_flops:
                fmt = compute_format(precision, op, device)
                flops += calls * op_flops
                ideal += calls * op_flops / device.peak_flops(fmt)
                by_format[fmt] = by_format.get(fmt, 0.0) + calls * op_flops
    if not ideal:
        fmt = compute_format(precision, "mm", device)
        return device.peak_flops(fmt), fmt
    return flops / ideal, "+".join(sorted(by_format, key=lambda f: -by_format[f]))


@cache
def _passes(table: str = "ops") -> dict[str, float]:
    """efficiency.toml [passes]: op -> times its traced bytes a GPU kernel streams (`table` "cpu_ops": what a
    CPU's composite streams for an op traced as a GPU's fused kernel)."""
    return {op: float(v) for op, v in factors()["passes"][table].items()}


class OpClock:
    """The per-op roofline of one device, efficiency and precision (the rule `phase_seconds` sums): `seconds`
    of one call of an op and its compute-bound part, `overhead` the launch time each call adds.
    `byte_scale` rescales tensor bytes to another element size than the trace's (e.g. fp32 -> bf16: 0.5)."""

    def __init__(self, device: Device, eff: Efficiency, precision: str, byte_scale: float = 1.0) -> None:
        self.device, self.eff, self.precision = device, eff, precision
        self.bandwidth = device.memory_bandwidth_gb_s * 1e9 * eff.bandwidth / byte_scale
        self.overhead = float(device.extra.get("op_overhead_s", 0.0))  # measured by afford calibrate
        # a calibrated profile's measured GB/s per op (random numbers, transcendental and normalisation ops run
        # below the copy bandwidth on CPUs); every other op streams at the device bandwidth
        self.rates = {op: float(r) * 1e9 * eff.bandwidth / byte_scale
                      for op, r in device.extra.get("op_gb_s", {}).items()}
        self.depthwise = convtime.cuda_core_flops(device, factors())  # CUDA-core FLOP/s of depthwise convs
        # passes a GPU normalisation kernel makes over its activations, against the one read and write the trace
        # counts (efficiency.toml [passes]); a calibrated GPU profile measured its own per-op rates; a CPU runs
        # RMSNorm as the composite, not as the fused kernel the trace records (TPUs and other accelerators: their
        # compilers fuse it)
        self.passes = _passes() if applies(device) else _passes("cpu_ops") if device.kind == "cpu" else {}
        self.serial_s = serial_iteration_seconds(device)
        self.resident, self.block_s = resident_row_blocks(device)

    def seconds(self, op: str, flops: float, nbytes: float, loop: int = 0, blocks: int = 0) -> tuple[float, float]:
        """(time of one call without the overhead, its compute-bound part): max(compute, memory) per op; a kernel
        whose threads loop `loop` times over the batch and the channels (PhaseProfile.serial) takes at least one
        memory round trip per iteration, and one that gives each of `blocks` rows its own thread block
        (PhaseProfile.row_blocks) at least one per wave of resident blocks."""
        t, t_cmp = self._roofline(op, flops, nbytes)
        return max(t, loop * self.serial_s, self.row_floor(blocks)), t_cmp

    def row_floor(self, blocks: int) -> float:
        """Least time of a kernel that gives each of `blocks` rows its own thread block: one round trip per wave of
        resident blocks (0 where the rule does not apply)."""
        return -(-blocks // self.resident) * self.block_s if blocks and self.resident else 0.0

    def key_seconds(self, phase: PhaseProfile, key: tuple[str, int, int]) -> tuple[float, float]:
        """`seconds` of one call of a phase's event `key`, with the phase's loop and block records for it."""
        return self.seconds(*key, phase.serial.get(key, 0), phase.row_blocks.get(key, 0))

    def _roofline(self, op: str, flops: float, nbytes: float) -> tuple[float, float]:
        """The op on the roofline: its compute and memory time, the longer of the two."""
        t_mem = nbytes * self.passes.get(op, 1.0) / self.rates.get(op, self.bandwidth)
        if not flops:
            return t_mem, 0.0
        if self.depthwise and convkind.is_depthwise(op):  # CUDA cores, not tensor cores (estimate/convtime.py)
            return convtime.seconds(op, flops, t_mem, self.depthwise, self.precision)
        fmt = compute_format(self.precision, op, self.device)
        fraction = self.eff.matmul_fp8 if fmt == "fp8" and self.eff.matmul_fp8 else self.eff.matmul
        if self.eff.attention and "attention" in op:  # a fused attention kernel, not a GEMM library's
            fraction = self.eff.attention
        t_cmp = flops / (self.device.peak_flops(fmt) * fraction)
        return max(t_cmp, t_mem), t_cmp


def phase_seconds(phase: PhaseProfile | None, device: Device, eff: Efficiency, precision: str,
                  byte_scale: float = 1.0) -> tuple[float, float]:
    """Roofline time of a traced phase on one device, and the part of it that is compute-bound work.
    `byte_scale` rescales tensor bytes to another element size than the trace's (e.g. fp32 -> bf16: 0.5)."""
    if phase is None:
        return 0.0, 0.0
    clock = OpClock(device, eff, precision, byte_scale)
    total = busy = 0.0
    for key, calls in phase.events.items():
        flops = key[1]
        t, t_cmp = clock.key_seconds(phase, key)
        if flops:
            busy += calls * t_cmp
        total += calls * (t + clock.overhead)
    return total, busy


def serial_iteration_seconds(device: Device) -> float:
    """One iteration of a kernel whose threads loop over the batch and the channels (counting/serial.py): one
    global-memory round trip (efficiency.toml [serial]); 0 where the rule does not apply."""
    return float(factors()["serial"]["iteration_ns"]) * 1e-9 if applies(device) else 0.0


def resident_row_blocks(device: Device) -> tuple[int, float]:
    """(thread blocks of a block-per-row norm kernel resident on the whole device at once, the round-trip time
    each waits: efficiency.toml [row_blocks]); (0, 0.0) where the rule does not apply (no SM count or resident
    threads in the catalog, not an NVIDIA GPU, or a calibrated profile)."""
    if device.vendor != "nvidia" or not applies(device) or not device.sm_count or not device.threads_per_sm:
        return 0, 0.0
    table = factors()["row_blocks"]
    per_sm = device.threads_per_sm // int(table["threads_per_block"])
    return device.sm_count * per_sm, float(table["round_trips"]) * serial_iteration_seconds(device)


def row_block_seconds(phase: PhaseProfile | None, device: Device, eff: Efficiency, precision: str) -> float:
    """Seconds a phase's block-per-row norm calls take beyond their roofline time, all calls together (what the
    floor adds; 0 where it does not bind)."""
    if phase is None or not phase.row_blocks:
        return 0.0
    clock = OpClock(device, eff, precision)
    extra = 0.0
    for key, blocks in phase.row_blocks.items():
        bare = clock.seconds(*key, phase.serial.get(key, 0))[0]
        extra += phase.events.get(key, 0) * max(0.0, clock.row_floor(blocks) - bare)
    return extra


def serial_seconds(phase: PhaseProfile | None, device: Device) -> float:
    """Seconds a phase spends in those kernels' loops, all calls together."""
    if phase is None or not phase.serial:
        return 0.0
    per = serial_iteration_seconds(device)
    return sum(phase.events.get(key, 0) * loop * per for key, loop in phase.serial.items())


@dataclass(frozen=True)
class StepTime:
    """One optimizer step of a training job (all micro-batches of all devices), broken down."""

    compute_s: float
    bubble_s: float
    tp_comm_s: float
    dp_comm_s: float
    dp_exposed_s: float
    optimizer_s: float
    step_s: float
    busy_fraction: float  # share of the step the device spends in compute-bound work (for power)
    gap_s: float = 0.0  # wall seconds the GPU idles between queued kernels (estimate/runtime.py)
    host_s: float = 0.0  # wall seconds the host adds: issue time beyond the GPU's (host-bound) + the fixed cost
    host_issue_s: float = 0.0  # wall seconds the host spends issuing the step's ops, overlapped or not
    host_bound: bool = False  # the host, not the GPU, sets the pace of the micro-batches
    optimizer_host_s: float = 0.0  # wall seconds the optimizer's per-tensor host work adds beyond its traffic


def link_gb_s(device: Device, across_nodes: bool, notes: list[str], per_node: int = 1) -> float:
    """Bus bandwidth per device of a collective (the `busBW` of nccl-tests).

    Within a node: the intra-node link. Across nodes NCCL runs one ring per NIC, each crossing every node
    boundary once, so a node's `per_node` NICs carry the traffic together and the bus bandwidth is
    min(intra-node link, per_node x per-device NIC): e.g. 8 x H100 with NVLink and 400 Gb/s NDR per GPU,
    about 400 GB/s, the 400-450 GB/s nccl-tests measure (Saturn Cloud, "Validating Multi-Node GPU Clusters
    with NCCL Tests", expected bus bandwidth table).
    """
    intra = device.intra_node_gb_s or FALLBACK_INTER_NODE_GB_S
    if not across_nodes:
        return intra
    nic = device.inter_node_gb_s
    if not nic:
        nic = FALLBACK_INTER_NODE_GB_S
        note = (f"{device.id} has no scale-out bandwidth in the catalog; assumed {FALLBACK_INTER_NODE_GB_S} GB/s "
                "per device (100 Gb/s Ethernet)")
        if note not in notes:
            notes.append(note)
    return min(intra, per_node * nic)


def train_step(*, forward: PhaseProfile, backward: PhaseProfile | None, device: Device, eff: Efficiency,
               precision: str, layout: Layout, gradient_bytes: float, parameter_bytes: float,
               optimizer_bytes_touched: float, tp_activation_bytes: float, layers: int | None,
               recompute: bool, notes: list[str], host_fwd: Overhead = NONE, host_bwd: Overhead = NONE,
               fixed_s: float = 0.0, optimizer_host_s: float = 0.0) -> StepTime:
    """Time of one optimizer step: `grad_accum` micro-batches per device, then gradient sync and the update
    (`host_*`, `fixed_s`, `optimizer_host_s`: the runtime's overheads, see step_from_times)."""
    t_fwd, b_fwd = phase_seconds(forward, device, eff, precision)
    t_bwd, b_bwd = phase_seconds(backward, device, eff, precision)
    return step_from_times(t_fwd=t_fwd, b_fwd=b_fwd, t_bwd=t_bwd, b_bwd=b_bwd, device=device, eff=eff,
                           layout=layout, gradient_bytes=gradient_bytes, parameter_bytes=parameter_bytes,
                           optimizer_bytes_touched=optimizer_bytes_touched, tp_activation_bytes=tp_activation_bytes,
                           layers=layers, recompute=recompute, notes=notes, host_fwd=host_fwd, host_bwd=host_bwd,
                           fixed_s=fixed_s, optimizer_host_s=optimizer_host_s)


def step_from_times(*, t_fwd: float, b_fwd: float, t_bwd: float, b_bwd: float, device: Device, eff: Efficiency,
                    layout: Layout, gradient_bytes: float, parameter_bytes: float, optimizer_bytes_touched: float,
                    tp_activation_bytes: float, layers: int | None, recompute: bool, notes: list[str],
                    offload_seconds: float = 0.0, host_fwd: Overhead = NONE, host_bwd: Overhead = NONE,
                    fixed_s: float = 0.0, optimizer_host_s: float = 0.0) -> StepTime:
    """train_step from one micro-batch's roofline times (forward, backward; busy = compute-bound part), with
    the runtime's overhead of one micro-batch's forward and backward (estimate/runtime.py) and its fixed cost
    per step: a micro-batch takes the longer of its GPU time and the host's time to issue it, and the optimizer
    update the longer of its traffic and the host's per-tensor work (`optimizer_host_s`)."""
    if recompute:  # activation checkpointing runs the forward again during backward
        t_bwd, b_bwd = t_bwd + t_fwd, b_bwd + b_fwd
        host_bwd = host_bwd + host_fwd
    split = layout.model_split
    micro = (t_fwd + t_bwd) / split
    m = layout.grad_accum
    compute = micro * m
    # each pipeline stage issues and runs its own layers' ops; tensor parallelism splits ops, not their number
    issue = (host_fwd.host_s + host_bwd.host_s) / layout.pp
    gap = (host_fwd.gap_s + host_bwd.gap_s) / layout.pp * m
    exposed = max(0.0, issue - (micro / eff.system + gap / m)) * m
    bubble = micro * (layout.pp - 1) if layout.pp > 1 else 0.0  # 1F1B: (pp - 1) extra micro-batch slots
    tp_comm = 0.0
    if layout.tp > 1:
        if not layers:
            raise ValueError("tensor parallelism needs the model's layer count")
        per_layer_calls = 4 + (2 if recompute else 0)  # Megatron: 2 all-reduces forward, 2 backward
        size = tp_activation_bytes
        link = link_gb_s(device, layout.tp_crosses_nodes(), notes, layout.gpus_per_node) * 1e9
        per_mb = per_layer_calls * (layers / layout.pp) * ring_all_reduce_bytes(size, layout.tp) / link
        tp_comm = per_mb * m
    dp_bytes = data_parallel_bytes(layout, gradient_bytes=gradient_bytes, parameter_bytes=parameter_bytes)
    dp_link = link_gb_s(device, layout.dp_crosses_nodes(), notes, layout.gpus_per_node) * 1e9
    dp_comm = dp_bytes / dp_link if dp_bytes else 0.0
    # gradient buckets are reduced while the last micro-batch's backward runs (DDP / FSDP overlap); FSDP also
    # prefetches parameter all-gathers during forward; the last bucket cannot hide (efficiency.toml [overlap])
    hideable = t_bwd + (t_fwd if layout.parallel.shards_parameters else 0.0)
    last_bucket = ring_all_reduce_bytes(BUCKET_BYTES, layout.dp) / dp_link if dp_bytes else 0.0
    dp_exposed = max(0.0, dp_comm - eff.overlap * hideable / split) + min(dp_comm, last_bucket)
    shard = split * (layout.dp if layout.parallel.shards_optimizer else 1)
    # the optimizer step streams its state; a calibrated profile has the GB/s of a measured AdamW step
    opt_gb_s = float(device.extra.get("optimizer_gb_s", device.memory_bandwidth_gb_s))
    optimizer = optimizer_bytes_touched / shard / (opt_gb_s * 1e9 * eff.bandwidth)
    kernel = compute + bubble + tp_comm + dp_exposed + optimizer + offload_seconds
    opt_host = max(0.0, optimizer_host_s - optimizer / eff.system)  # the per-tensor host work beyond the traffic
    step = kernel / eff.system + gap + exposed + fixed_s + opt_host
    busy = (b_fwd + b_bwd) / split * m
    return StepTime(compute_s=compute, bubble_s=bubble, tp_comm_s=tp_comm, dp_comm_s=dp_comm,
                    dp_exposed_s=dp_exposed, optimizer_s=optimizer, step_s=step,
                    busy_fraction=min(1.0, busy / step) if step else 0.0, gap_s=gap,
                    host_s=exposed + fixed_s + opt_host, host_issue_s=issue * m + fixed_s,
                    host_bound=exposed > 0.0, optimizer_host_s=opt_host)


def steps_for(samples: float, micro_batch: int, layout: Layout) -> int:
    """Optimizer steps to see `samples`: each step takes micro_batch x grad_accum x dp samples."""
    per_step = micro_batch * layout.grad_accum * layout.dp
    return math.ceil(samples / per_step) if samples > 0 else 0
