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
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from afford.errors import InputError
from afford.measure.quiet import quiet_native_stderr

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


# (m, k, n): square matmuls and the rectangular ones of transformer layers (tokens x hidden x 4 hidden, and
# the weight-gradient shapes of backward); the achieved rate is their median, not the best shape's
MATMUL_SHAPES = ((1024, 1024, 1024), (2048, 2048, 2048), (512, 768, 3072), (512, 3072, 768), (768, 512, 3072),
                 (2048, 1024, 4096), (4096, 2048, 1024))
# (batch, channels, side, kernel): ResNet-like stages, forward and backward each
CONV_SHAPES = ((8, 64, 56, 3), (8, 128, 28, 3), (8, 256, 14, 3), (8, 256, 28, 1))


@dataclass(frozen=True)
class Effort:
    """How long each part of a calibration runs: the full one (`afford calibrate`) or the quick one (`--quick`,
    and `afford measure` when this machine has none yet): fewer shapes, fewer repeats, smaller buffers."""

    matmul_shapes: tuple[tuple[int, int, int], ...]
    conv_shapes: tuple[tuple[int, int, int, int], ...]
    repeats: int  # timed runs per matmul, convolution, copy and AdamW shape (best of)
    budget_s: float  # CPU seconds per part at most (a GPU gets a quarter)
    copy_floats: int  # fp32 elements of the bandwidth copy (read and written: 8 bytes each)
    op_runs: int  # profiled passes over the element-wise probes
    probe_steps: tuple[int, int]  # (warm-up, timed) training steps of each probe network


FULL = Effort(MATMUL_SHAPES, CONV_SHAPES, repeats=5, budget_s=4.0, copy_floats=64 * 2**20, op_runs=3,
              probe_steps=(2, 9))
QUICK = Effort(((1024, 1024, 1024), (512, 768, 3072), (512, 3072, 768)), ((8, 64, 56, 3), (8, 256, 14, 3)),
               repeats=3, budget_s=1.0, copy_floats=16 * 2**20, op_runs=2, probe_steps=(1, 3))


def _matmul_rates(effort: Effort, device: str, budget: float) -> dict[str, list[float]]:
    """FLOP/s of each of the effort's matmul shapes (best of its repeats), fp32 and bf16."""
    out: dict[str, list[float]] = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        out[name] = []
        for m, k, n in effort.matmul_shapes:
            a = torch.randn(m, k, device=device, dtype=dtype)
            b = torch.randn(k, n, device=device, dtype=dtype)
            out[name].append(2 * m * k * n / _best_seconds(_matmul(a, b), device, effort.repeats,
                                                           budget / len(effort.matmul_shapes)))
    return out


def _conv_pair(x: torch.Tensor, w: torch.Tensor, gy: torch.Tensor,
               kernel: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """A 'same' convolution and its backward (input and weight gradients), as autograd runs them."""
    pad = kernel // 2

    def forward() -> Any:
        return F.conv2d(x, w, padding=pad)

    def backward() -> Any:
        return torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1,
                                                   [True, True, False])

    return forward, backward


def _matmul(a: torch.Tensor, b: torch.Tensor) -> Callable[[], torch.Tensor]:
    return lambda: a @ b


def _probes(device: str) -> list[Callable[[], Any]]:
    """Forward and backward of the element-wise, normalisation, pooling and random ops that models spend their
    non-matmul time in, on tensors of 16-26 MB (past the caches): dropout's mask (bernoulli_), GELU (erf and tanh
    forms), tanh, softmax (plain and SDPA math path's `_safe_softmax`), log-softmax, LayerNorm, SiLU, sigmoid,
    ReLU, BatchNorm, max-pooling and the basic arithmetic."""
    x = torch.randn(4096, 1024, device=device, requires_grad=True)
    y = torch.randn(4096, 1024, device=device)
    g = torch.randn(4096, 1024, device=device)
    x4 = torch.randn(8, 64, 56, 56, device=device, requires_grad=True)
    g4 = torch.randn(8, 64, 56, 56, device=device)
    gp = torch.randn(8, 64, 28, 28, device=device)
    w, b = torch.ones(1024, device=device, requires_grad=True), torch.zeros(1024, device=device, requires_grad=True)
    w4, b4 = torch.ones(64, device=device, requires_grad=True), torch.zeros(64, device=device, requires_grad=True)
    rm, rv = torch.zeros(64, device=device), torch.ones(64, device=device)

    def run(make: Callable[[], torch.Tensor], grad: torch.Tensor) -> Callable[[], Any]:
        def probe() -> None:
            make().backward(grad)
        return probe

    return [
        run(lambda: F.dropout(x, 0.1, training=True), g),
        run(lambda: F.gelu(x), g),
        run(lambda: F.gelu(x, approximate="tanh"), g),
        run(lambda: torch.tanh(x), g),
        run(lambda: torch.softmax(x, -1), g),
        run(lambda: torch.ops.aten._safe_softmax(x, -1), g),  # the softmax of SDPA's math path (dropout on a CPU)
        run(lambda: torch.log_softmax(x, -1), g),
        run(lambda: F.layer_norm(x, (1024,), w, b), g),
        run(lambda: F.silu(x), g),
        run(lambda: torch.sigmoid(x), g),
        run(lambda: x * y + y, g),
        run(lambda: x / (y.abs() + 1), g),
        run(lambda: F.relu(x4), g4),
        run(lambda: F.batch_norm(x4, rm, rv, w4, b4, training=True), g4),
        run(lambda: F.max_pool2d(x4, 3, 2, 1), gp),
    ]


def _op_rates(device: str, runs: int = 3) -> dict[str, float]:
    """Achieved GB/s of each aten op the probes run: bytes as afford's trace counts them (inputs + outputs, from
    the same counter) over the op's own time in PyTorch's profiler (the mean of `runs` runs after a warm-up)."""
    from torch.profiler import ProfilerActivity, profile

    from afford.counting.engine import Counter
    from afford.counting.livebytes import LiveBytes

    probes = _probes(device)
    nbytes: dict[str, float] = {}
    counter = Counter(LiveBytes(set()))
    with counter:
        for probe in probes:
            counter.start_phase("probe")
            probe()
            phase = counter.finish_phase()
            for (op, _flops, size), calls in phase.events.items():
                nbytes[op] = nbytes.get(op, 0.0) + size * calls
    for probe in probes:
        probe()  # warm-up outside the profiler
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with quiet_native_stderr(), profile(activities=activities) as prof:
        for _ in range(runs):
            for probe in probes:
                probe()
            _sync(device)
    # the mean over the runs, not the fastest: on a CPU the fastest run of these 16 MB probes finds its tensors in
    # the last-level cache (x * y + y at 56 GB/s against a 26 GB/s copy on 12-05's machine), which a model's
    # steps, allocating fresh outputs, do not (GPT-2's mul at 6-11 GB/s in a profiled training step)
    seconds = _op_seconds(prof, nbytes, device)
    return {op: round(nbytes[op] / (t / runs) / 1e9, 3) for op, t in sorted(seconds.items())
            if nbytes[op] >= 2**20}  # ops moving under 1 MB per probe are launch-bound: the per-op overhead


def _op_seconds(prof: Any, nbytes: dict[str, float], device: str) -> dict[str, float]:
    """Seconds each traced op took in the profiled runs of the probes, the kernels it calls inside included."""
    seconds: dict[str, float] = {}
    for event in prof.events():
        name = event.name.removeprefix("aten::")
        if name not in nbytes or not event.name.startswith("aten::"):
            continue
        parent, nested = event.cpu_parent, False
        while parent is not None:  # an op called inside another traced op's kernel is part of that op's time
            nested = nested or (parent.name.startswith("aten::") and parent.name.removeprefix("aten::") in nbytes)
            parent = parent.cpu_parent
        if nested:
            continue
        # the op as afford's trace sees it: its whole time, the kernels it calls inside included
        took = event.device_time_total if device.startswith("cuda") else event.cpu_time_total
        seconds[name] = seconds.get(name, 0.0) + took / 1e6
    return seconds


def _optimizer_rate(device: str, budget: float, repeats: int = 10) -> float:
    """Achieved GB/s of an AdamW step (PyTorch's default multi-tensor implementation) over 8M fp32 parameters,
    counting the bytes afford's time model charges an fp32 AdamW step: the gradient read, the weights and the
    two moments read and written (4 + 2 x 4 + 2 x 8 = 28 bytes per parameter)."""
    params = [torch.zeros(1 << 20, device=device, requires_grad=True) for _ in range(8)]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW(params, lr=1e-4)
    s = _best_seconds(opt.step, device, repeats, budget)
    return 28 * 8 * (1 << 20) / s / 1e9


def _probe_models() -> list[tuple[str, torch.nn.Module, torch.Tensor, torch.Tensor]]:
    """Two small generic networks, neither of the models validated in docs/validation.md: a 2-layer transformer
    encoder (d 256, 4 heads, ff 1024, dropout 0.1, 8 x 128 tokens) and a 4-stage conv-BN-ReLU net (8 x 64 px)."""
    from torch import nn

    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(256, 4, 1024, dropout=0.1, batch_first=True)
    encoder = nn.Sequential(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), nn.Flatten(),
                            nn.Linear(128 * 256, 10))
    stages: list[nn.Module] = []
    ch = 3
    for out in (32, 64, 128, 256):
        stages += [nn.Conv2d(ch, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
        ch = out
    cnn = nn.Sequential(*stages, nn.Flatten(), nn.Linear(256 * 4 * 4, 10))
    return [("transformer encoder", encoder, torch.randn(8, 128, 256), torch.zeros(8, dtype=torch.long)),
            ("conv net", cnn, torch.randn(8, 3, 64, 64), torch.zeros(8, dtype=torch.long))]


def _system_efficiency(entry: dict[str, Any], steps: tuple[int, int] = (2, 9)) -> tuple[float,
                                                                                        dict[str, dict[str, float]]]:
    """What the per-op roofline does not see on this machine (framework and Python overhead, caches shared
    between ops): median over the probe networks of predicted kernel time / measured training step, each
    predicted with the figures just measured (system factor 1) and measured over real AdamW steps."""
    from afford.api import assess
    from afford.estimate import footprint as fp
    from afford.estimate.job import estimate
    from afford.estimate.parallel import Layout
    from afford.estimate.request import HardwareRequest
    from afford.hardware.catalog import _device
    from afford.sources.module_src import from_module

    device = _device({**entry, "id": "calibration-probe"}, "afford calibrate")
    req = HardwareRequest(device=device, layout=Layout(count=1, gpus_per_node=1), price_per_hour=None,
                          grid=fp.grid(None), pue=1.0)
    probes: dict[str, dict[str, float]] = {}
    for name, module, x, y in _probe_models():
        spec = from_module(module, name=name, input_shape=tuple(x.shape[1:]))
        make = spec.make_inputs

        def with_target(batch: int, dims: Any, train: bool, make: Any = make) -> dict[str, Any]:
            labels = {"_target": torch.zeros(batch, dtype=torch.long, device="meta")} if train else {}
            return {**make(batch, dims, train), **labels}  # the cross-entropy the real steps train with

        spec.make_inputs = with_target
        a = assess(spec, train_samples=x.shape[0], batch_size=x.shape[0], hardware="cpu-generic")
        predicted = estimate(a, req).data["time"]["train_step_seconds"]
        opt = torch.optim.AdamW(module.parameters(), lr=1e-4)

        def step(module: torch.nn.Module = module, x: torch.Tensor = x, y: torch.Tensor = y,
                 opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(module(x), y).backward()
            opt.step()

        for _ in range(steps[0]):
            step()
        times = []
        for _ in range(steps[1]):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        measured = statistics.median(times)
        probes[name] = {"predicted_kernel_seconds": predicted, "measured_seconds": measured}
    factor = statistics.median(p["predicted_kernel_seconds"] / p["measured_seconds"] for p in probes.values())
    return min(1.0, max(0.1, factor)), probes


def host_ops(device: str, calls: int = 2000) -> dict[str, float]:
    """Host microseconds of a tiny in-place add, an nn.Linear(8, 8) call on an (8,) input, an nn.Conv2d(3, 8, 3)
    call (bench/gpu_check.py `host_ops`, the microbenchmarks the `h200-2026` host profile comes from) and an
    nn.Identity call (a module call and nothing else), each the best of 3 means of `calls` calls back to back."""
    tiny = torch.ones(8, device=device)
    ident = torch.nn.Identity()
    lin = torch.nn.Linear(8, 8).to(device)
    conv = torch.nn.Conv2d(3, 8, 3).to(device)
    img = torch.randn(1, 3, 8, 8, device=device)
    out: dict[str, float] = {}
    with torch.inference_mode():
        for name, fn in (("add_us", lambda: tiny.add_(0)), ("linear_module_us", lambda: lin(tiny)),
                         ("conv_module_us", lambda: conv(img)), ("identity_module_us", lambda: ident(tiny))):
            fn()  # warm-up
            _sync(device)
            out[name] = min(_per_call(fn, device, calls, 3)) * 1e6
    return out


def _per_call(fn: Callable[[], Any], device: str, calls: int, runs: int) -> list[float]:
    """Seconds per call of `fn` in each of `runs` runs of `calls` calls issued back to back (one sync a run)."""
    out: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(device)
        out.append((time.perf_counter() - t) / calls)
    return out


def decode_rate(images: int = 64) -> float:
    """Images per second one CPU core decodes and augments as a torchvision ImageNet training loader does: a
    500 x 375 JPEG (ImageNet's typical size, quality 90) decoded, RandomResizedCrop to 224, flipped and
    normalised to a float tensor, on one thread."""
    import torchvision
    from torchvision.transforms import v2

    side = torch.Generator().manual_seed(0)
    pixels = (torch.rand(3, 375, 500, generator=side) * 255).to(torch.uint8)
    data = torchvision.io.encode_jpeg(pixels, quality=90)
    augment = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(),
                          v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.485, 0.456, 0.406],
                                                                               [0.229, 0.224, 0.225])])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        augment(torchvision.io.decode_jpeg(data))  # warm-up
        t = time.perf_counter()
        for _ in range(images):
            augment(torchvision.io.decode_jpeg(data))
        return images / (time.perf_counter() - t)
    finally:
        torch.set_num_threads(threads)


def host_profile_entry(measured: dict[str, float], device: str) -> dict[str, Any]:
    """A host profile (estimate/runtime.py `hosts`) from `host_ops`: a module call is the nn.Identity call where
    measured, else runtime.toml's h200-2026 derivation (an nn.Linear call on CUDA = module + 2 kernels + a view);
    an nn.Conv2d call = module + convolution + bias add + a view. Measured on a CPU, each kernel op gains the cited
    CUDA launch (runtime.toml [launch]): the host's Python and dispatcher cost is the CPU's own, the launch the
    driver's; its convolution is the CPU library's set-up, not cuDNN's."""
    from afford.estimate.runtime import constants

    launch = 0.0 if device.startswith("cuda") else constants().launch_s * 1e6
    view = constants().view_s * 1e6
    add = measured["add_us"]
    module = measured["identity_module_us"] if "identity_module_us" in measured else max(
        0.0, measured["linear_module_us"] - 2 * add - view)
    conv = max(add, measured["conv_module_us"] - module - add - view)
    return {"op_us": add + launch, "conv_us": conv + launch, "module_us": module, "step_ms": 0.0,
            "input_images_per_s_per_core": measured.get("decode_images_per_s"), "measured": measured,
            "device": device,
            "source": f"afford calibrate --device {device} on this machine, {time.strftime('%Y-%m-%d %H:%M')}"}


def local_id(device: str) -> str:
    """The id a calibration of `device` is stored under: cuda-local or cpu-local."""
    return "cuda-local" if device.startswith("cuda") else "cpu-local"


def calibrate(device: str = "cpu", progress: ProgressFn | None = None, quick: bool = False) -> dict[str, Any]:
    """Measure and return a device entry (the catalog's schema) for this machine: 50-90 s on a busy 2-core CPU,
    less with `quick` (fewer shapes, repeats and probe steps, `QUICK`; the entry's `quick` says which it was)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is visible here; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"--device {device!r}: choose cpu or cuda")
    report = progress or (lambda what, frac: None)
    effort = QUICK if quick else FULL
    budget = effort.budget_s if device == "cpu" else effort.budget_s / 4
    results: dict[str, float] = {}
    first = _matmul_rates(effort, device, budget)
    for name, shaped in first.items():
        report(f"matmul {name}: {statistics.median(shaped) / 1e12:.3f} TFLOP/s (median of {len(shaped)} shapes)",
               0.2 if name == "fp32" else 0.4)
    conv_rates: list[float] = []
    for batch, ch, side, kernel in effort.conv_shapes:
        x = torch.randn(batch, ch, side, side, device=device)
        w = torch.randn(ch, ch, kernel, kernel, device=device)
        gy = torch.randn(batch, ch, side, side, device=device)
        macs = batch * ch * ch * kernel * kernel * side * side
        forward, backward = _conv_pair(x, w, gy, kernel)
        share = budget / (2 * len(effort.conv_shapes))
        conv_rates.append(2 * macs / _best_seconds(forward, device, effort.repeats, share))
        conv_rates.append(4 * macs / _best_seconds(backward, device, effort.repeats, share))  # input + weight grads
    conv = statistics.median(conv_rates)
    report(f"conv fp32: {conv / 1e12:.3f} TFLOP/s (median of {len(conv_rates)} forward/backward shapes)", 0.6)
    # streaming bandwidth: a copy past the caches (256 MB; 64 MB quick) reads and writes every byte
    src = torch.empty(effort.copy_floats, device=device, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    s = _best_seconds(lambda: dst.copy_(src), device, 2 * effort.repeats, budget)
    bandwidth = 2 * src.numel() * 4 / s
    report(f"bandwidth: {bandwidth / 1e9:.1f} GB/s", 0.8)
    # per-op overhead: dispatch and launch of a tiny op, paid by every traced op
    tiny = torch.ones(8, device=device)
    results["op_overhead_s"] = statistics.median(_per_call(lambda: tiny.add_(0), device, 2000, 5))
    report(f"op overhead: {results['op_overhead_s'] * 1e6:.1f} us", 0.85)
    measured_ops = host_ops(device, 500 if quick else 2000)
    measured_ops["decode_images_per_s"] = decode_rate(16 if quick else 64)
    host = host_profile_entry(measured_ops, device)
    report(f"host profile: op {host['op_us']:.1f} us, convolution {host['conv_us']:.1f} us, module call "
           f"{host['module_us']:.1f} us", 0.86)
    rates = _op_rates(device, effort.op_runs)
    report(f"{len(rates)} element-wise/normalisation ops: {min(rates.values(), default=0):.1f}-"
           f"{max(rates.values(), default=0):.1f} GB/s", 0.95)
    optimizer = _optimizer_rate(device, budget, 2 * effort.repeats)
    report(f"AdamW step: {optimizer:.1f} GB/s", 1.0)
    # the matmuls again, a minute after the first round: each shape's faster round stands (on a shared machine a
    # slow spell of seconds had halved a whole round, and the models' matmuls are timed against it)
    again = _matmul_rates(effort, device, budget)
    matmul = {name: statistics.median(max(x, y) for x, y in zip(first[name], again[name], strict=True))
              for name in first}
    if device == "cpu":
        import psutil

        memory = int(psutil.virtual_memory().total)
        name = platform.processor() or platform.machine()
    else:
        memory = int(torch.cuda.get_device_properties(0).total_memory)
        name = torch.cuda.get_device_name(0)
    entry: dict[str, Any] = {
        "id": local_id(device),
        "name": f"{name} (calibrated{', quick' if quick else ''}, {torch.get_num_threads()} threads)",
        "vendor": "local", "kind": "cpu" if device == "cpu" else "gpu", "memory_bytes": memory,
        "memory_bandwidth_gb_s": bandwidth / 1e9,
        # 'tf32' is where fp32 convolutions are timed (section 8 of methodology): here the measured conv rate
        "peak_tflops": {"fp32": matmul["fp32"] / 1e12, "bf16": matmul["bf16"] / 1e12, "tf32": conv / 1e12},
        "tdp_w": None, "gpus_per_node": 1, "calibrated": True, "quick": quick,
        "op_overhead_s": results["op_overhead_s"], "host_profile": host,
        "op_gb_s": rates, "optimizer_gb_s": optimizer,
        "source": f"afford calibrate on this machine, {time.strftime('%Y-%m-%d %H:%M')}",
        "source_date": time.strftime("%Y-%m-%d"),
        "notes": "achieved figures measured by afford calibrate: the median rate over square and transformer-"
                 "shaped matmuls (fp32 and bf16) and over ResNet-like convolutions forward and backward, a 256 MB "
                 "copy, the per-call time of a tiny op, the GB/s of each "
                 "element-wise/normalisation/random op of a set of probes (op_gb_s) and of an AdamW step; "
                 "system_efficiency from two probe training steps (a small transformer encoder and conv net)",
    }
    if device == "cpu":  # the probe networks train on the CPU
        entry["system_efficiency"], entry["system_probes"] = _system_efficiency(entry, effort.probe_steps)
        report(f"system efficiency {entry['system_efficiency']:.3f} (probe training steps)", 1.0)
    return entry
