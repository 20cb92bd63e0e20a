"""A traced job on a device's roofline: the device's ceilings (peak FLOP/s per number format used, memory
bandwidth, the achievable fractions the time model applies) and each traced op shape placed at its arithmetic
intensity and at the FLOP/s the time model gives it (estimate/timing.py OpClock, the rule phase_seconds sums)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from afford.assess import Assessment


@dataclass
class RooflinePoint:
    """An op (or op group) at its arithmetic intensity (FLOPs / byte) and modelled achieved FLOP/s."""

    label: str
    intensity: float
    flops_per_s: float
    share: float  # share of the phase's modelled time, for the marker size
    series: str = "training step"


@dataclass
class Roofline:
    """A device's ceilings: peak FLOP/s per number format used, and memory bandwidth (bytes/s), with the
    achievable fractions the time model applies (matmul, bandwidth)."""

    device: str
    bandwidth: float
    peaks: dict[str, float]
    matmul_fraction: float
    bandwidth_fraction: float
    points: list[RooflinePoint] = field(default_factory=list)
    zero_flop_share: dict[str, float] = field(default_factory=dict)  # series -> share of time in 0-FLOP ops


def roofline_data(a: Assessment) -> Roofline:
    """The device's ceilings and the workload's ops placed by arithmetic intensity (traced FLOPs / traced bytes
    per op) at the FLOP/s the time model gives them (estimate/timing.py OpClock, op by op, with its overhead)."""
    from afford.estimate.timing import Efficiency, OpClock, compute_format

    assert a.estimate is not None
    dev = a.estimate.req.device
    eff = Efficiency.for_device(dev)
    precision = a.workload.precision.value
    clock = OpClock(dev, eff, precision)
    t = a.trace
    training = t.backward is not None and a.workload.wants_training
    phases = [("training step", [t.forward, t.backward])] if training else [("inference batch", [t.infer])]
    if t.decode is not None:
        phases.append(("decode step", [t.decode]))
    peaks: dict[str, float] = {}
    points: list[RooflinePoint] = []
    shares: dict[str, float] = {}
    for series, profiles in phases:
        shapes: dict[tuple[str, int, int], list[float]] = {}  # (op, flops, bytes) -> [calls, seconds per call]
        total_time = zero_flop_time = 0.0
        for prof in profiles:
            if prof is None:
                continue
            for (op, flops, nbytes), calls in prof.events.items():
                op_t = clock.key_seconds(prof, (op, flops, nbytes))[0] + clock.overhead
                if flops:
                    fmt = compute_format(precision, op, dev)
                    peaks[fmt] = dev.peak_flops(fmt)
                else:
                    zero_flop_time += calls * op_t
                total_time += calls * op_t
                shapes.setdefault((op, flops, nbytes), [0.0, op_t])[0] += calls
        for (op, flops, nbytes), (n_calls, per_call) in shapes.items():
            if flops > 0 and nbytes > 0 and per_call > 0:
                points.append(RooflinePoint(op, flops / nbytes, flops / per_call,
                                            n_calls * per_call / total_time if total_time else 0.0, series))
        shares[series] = zero_flop_time / total_time if total_time else 0.0
    if not peaks:
        fmt = compute_format(precision, "mm", dev)
        peaks[fmt] = dev.peak_flops(fmt)
    return Roofline(device=dev.name, bandwidth=dev.memory_bandwidth_gb_s * 1e9, peaks=peaks,
                    matmul_fraction=eff.matmul, bandwidth_fraction=eff.bandwidth, points=points,
                    zero_flop_share=shares)
