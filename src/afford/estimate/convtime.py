"""Time of a depthwise convolution on an NVIDIA GPU: CUDA cores, not tensor cores (efficiency.toml [depthwise]).

Depthwise convolutions do one multiply-accumulate per kernel tap and channel, with no reduction over channels to
feed a tensor core; PyTorch runs them in its own direct kernel (`conv_depthwise2d`, every format) or, for small fp16
filters, in cuDNN (counting/convkind.py says which). Measured on the direct kernel (RepLKNet, Table 1), a layer's
time is its memory time plus its arithmetic at a small share of the fp32 peak, one after the other:

    direct kernel:  t = bytes / (bandwidth x eta_bandwidth) + FLOPs / (fp32 peak x cuda_core_fraction)
    cuDNN (fp16):   t = max(the same two terms)              (no published rate: the usual roofline, on CUDA cores)

Grouped convolutions (1 < groups < channels) keep the dense rule: cuDNN runs each group as an implicit GEMM on
tensor cores, and no measured rate by group width was found to derive a factor from (docs/methodology.md, "Time").
"""

from __future__ import annotations

from typing import Any

from afford.counting import convkind
from afford.hardware.catalog import Device


def cuda_core_flops(device: Device, table: dict[str, Any]) -> float | None:
    """FLOP/s a depthwise convolution's arithmetic runs at on `device`: its fp32 peak x the [depthwise] fraction;
    None where the rule does not apply (not an NVIDIA GPU, no fp32 peak in the catalog, or a calibrated profile,
    whose measured rates already stand for the machine)."""
    fp32 = device.peak_tflops.get("fp32")
    if device.vendor != "nvidia" or device.kind != "gpu" or not fp32 or device.extra.get("calibrated"):
        return None
    entry = table.get("depthwise", {}).get(device.id) or table.get("depthwise", {}).get("default") or {}
    fraction = entry.get("cuda_core_fraction") if isinstance(entry, dict) else None
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise KeyError("efficiency.toml lacks [depthwise.default].cuda_core_fraction in (0, 1]")
    return float(fp32) * 1e12 * float(fraction)


def seconds(op: str, flops: float, t_mem: float, rate: float, precision: str) -> tuple[float, float]:
    """(time of one call, its compute part) of a depthwise convolution event `op` with `flops` FLOPs whose bytes
    take `t_mem` at the streaming bandwidth, its arithmetic at `rate` FLOP/s (`cuda_core_flops`)."""
    t_cmp = flops / rate
    if convkind.runs_direct(op, precision):
        return t_mem + t_cmp, t_cmp
    return max(t_mem, t_cmp), t_cmp
