"""`afford calibrate`: measure this machine's achieved matmul and convolution throughput, memory bandwidth and
per-op overhead, and keep them as a calibrated hardware profile (`cpu-local` / `cuda-local`) in the store.

The profile's figures are achieved, not peak, so its efficiency factors are 1 and the system factor too (one
process on one device: no cluster effects); later assessments with `--hardware cpu-local` use it and say so.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from afford.errors import InputError

ProgressFn = Callable[[str, float], None]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _best_seconds(fn: Callable[[], Any], device: str, repeats: int, budget_s: float) -> float:
    fn()  # warm-up (kernel selection, allocation)
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and time.perf_counter() - start < budget_s:
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


def _matmul(a: torch.Tensor, b: torch.Tensor) -> Callable[[], torch.Tensor]:
    return lambda: a @ b


def local_id(device: str) -> str:
    return "cuda-local" if device.startswith("cuda") else "cpu-local"


def calibrate(device: str = "cpu", progress: ProgressFn | None = None) -> dict[str, Any]:
    """Measure and return a device entry (the catalog's schema) for this machine; about 30 s on a 2-core CPU."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is visible here; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"--device {device!r}: choose cpu or cuda")
    report = progress or (lambda what, frac: None)
    budget = 4.0 if device == "cpu" else 1.0
    results: dict[str, float] = {}
    matmul: dict[str, float] = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        best = 0.0
        for n in (512, 1024, 2048):
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            s = _best_seconds(_matmul(a, b), device, 10, budget)
            best = max(best, 2 * n**3 / s)
        matmul[name] = best
        report(f"matmul {name}: {best / 1e12:.3f} TFLOP/s", 0.2 if name == "fp32" else 0.4)
    # a ResNet-like 3x3 convolution (64 channels, 56 x 56, batch 8): fp32 convolutions run at this rate
    x = torch.randn(8, 64, 56, 56, device=device)
    w = torch.randn(64, 64, 3, 3, device=device)
    s = _best_seconds(lambda: F.conv2d(x, w, padding=1), device, 10, budget)
    conv = 2 * 8 * 64 * 64 * 9 * 56 * 56 / s
    report(f"conv fp32: {conv / 1e12:.3f} TFLOP/s", 0.6)
    # streaming bandwidth: a 256 MB copy reads and writes every byte
    src = torch.empty(64 * 2**20, device=device, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    s = _best_seconds(lambda: dst.copy_(src), device, 10, budget)
    bandwidth = 2 * src.numel() * 4 / s
    report(f"bandwidth: {bandwidth / 1e9:.1f} GB/s", 0.8)
    # per-op overhead: dispatch and launch of a tiny op, paid by every traced op
    tiny = torch.ones(8, device=device)
    per: list[float] = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(2000):
            tiny.add_(0)
        _sync(device)
        per.append((time.perf_counter() - t) / 2000)
    results["op_overhead_s"] = statistics.median(per)
    report(f"op overhead: {results['op_overhead_s'] * 1e6:.1f} us", 1.0)
    if device == "cpu":
        import psutil

        memory = int(psutil.virtual_memory().total)
        name = platform.processor() or platform.machine()
    else:
        memory = int(torch.cuda.get_device_properties(0).total_memory)
        name = torch.cuda.get_device_name(0)
    return {
        "id": local_id(device), "name": f"{name} (calibrated, {torch.get_num_threads()} threads)",
        "vendor": "local", "kind": "cpu" if device == "cpu" else "gpu", "memory_bytes": memory,
        "memory_bandwidth_gb_s": bandwidth / 1e9,
        # 'tf32' is where fp32 convolutions are timed (section 8 of methodology): here the measured conv rate
        "peak_tflops": {"fp32": matmul["fp32"] / 1e12, "bf16": matmul["bf16"] / 1e12, "tf32": conv / 1e12},
        "tdp_w": None, "gpus_per_node": 1, "calibrated": True, "op_overhead_s": results["op_overhead_s"],
        "source": f"afford calibrate on this machine, {time.strftime('%Y-%m-%d %H:%M')}",
        "source_date": time.strftime("%Y-%m-%d"),
        "notes": "achieved figures measured by afford calibrate: best of repeated matmuls (512-2048, fp32 and "
                 "bf16), a 3x3 convolution, a 256 MB copy, and the per-call time of a tiny op",
    }
