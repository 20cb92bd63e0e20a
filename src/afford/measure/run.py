"""`afford measure`: run real training steps and inference batches on this machine and compare with the
prediction.

The model is built for real (random weights at its real size) on the device, fed synthetic inputs of the
workload's shapes; after warm-up, `steps` training steps (forward, loss, backward, optimizer step) and `steps`
inference batches are timed, medians reported. Peak memory: on CUDA the caching allocator's peak
(`torch.cuda.max_memory_allocated`); on the CPU the process's resident set, sampled every millisecond while the
steps run, minus the resident set before the model was built (PyTorch's CPU allocator keeps no peak of its own).
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from afford.assess import Assessment, assess
from afford.errors import InputError, UnsupportedError
from afford.sources.base import ModelSpec
from afford.workload import Optimizer

ProgressFn = Callable[[str, int, int], None]


def _real(value: Any, device: str, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            return torch.randn(value.shape, device=device, dtype=dtype)
        return torch.zeros(value.shape, device=device, dtype=value.dtype)
    if isinstance(value, tuple):
        return tuple(_real(v, device, dtype) for v in value)
    return value


def _optimizer(name: Optimizer, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if name in (Optimizer.ADAM, Optimizer.ADAMW):
        return (torch.optim.AdamW if name is Optimizer.ADAMW else torch.optim.Adam)(params, lr=1e-4)
    if name is Optimizer.SGD:
        return torch.optim.SGD(params, lr=1e-3)
    if name is Optimizer.SGD_MOMENTUM:
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    if name is Optimizer.ADAFACTOR:
        return torch.optim.Adafactor(params, lr=1e-2)
    if name is Optimizer.ADAGRAD:
        return torch.optim.Adagrad(params, lr=1e-2)
    if name is Optimizer.ROWWISE_ADAGRAD:
        raise InputError("afford measure runs torch.optim optimizers; rowwise-adagrad is FBGEMM's fused embedding "
                         "optimizer: measure with --optimizer adagrad")
    raise InputError(f"afford measure cannot run {name.value} here (bitsandbytes needs CUDA); measure with adamw")


class _RssSampler:
    """Peak resident set of this process, sampled every millisecond on a thread."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.001)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


@dataclass
class Measurement:
    """Measured against predicted, with the error in percent ((predicted - measured) / measured)."""

    model: str
    device: str
    hardware: str
    measured: dict[str, float]
    predicted: dict[str, float]
    peak_method: str
    steps: int
    notes: list[str] = field(default_factory=list)

    @property
    def error_pct(self) -> dict[str, float]:
        return {k: 100.0 * (self.predicted[k] - v) / v for k, v in self.measured.items() if v and k in self.predicted}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "device": self.device, "hardware": self.hardware, "steps": self.steps,
                "measured": self.measured, "predicted": self.predicted, "error_pct": self.error_pct,
                "peak_method": self.peak_method, "notes": self.notes}


def _time(fn: Callable[[], Any], device: str) -> float:
    t = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t


def measure(model: str, *, steps: int = 5, device: str = "cpu", batch_size: int = 1, seq_len: int | None = None,
            image_size: int | None = None, precision: str = "fp32", optimizer: str = "adamw",
            hardware: str | None = None, progress: ProgressFn | None = None) -> Measurement:
    """Time `steps` real training steps and inference batches of `model` here and predict the same job."""
    if steps < 1 or steps > 1000:
        raise InputError(f"--steps must be between 1 and 1000, got {steps}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is visible here; use --device cpu")
    notes: list[str] = []
    if hardware is None:
        hardware = "cuda-local" if device.startswith("cuda") else "cpu-local"
    try:
        predicted_a = assess(model, batch_size=batch_size, seq_len=seq_len, image_size=image_size,
                             precision=precision, optimizer=optimizer, train_samples=batch_size,
                             infer_samples=batch_size, hardware=hardware)
    except InputError as exc:
        if "no calibration" not in str(exc):
            raise
        notes.append(f"{exc}; predicted with the generic catalog entry instead")
        hardware = "cpu-generic" if device == "cpu" else "a100-80gb"
        predicted_a = assess(model, batch_size=batch_size, seq_len=seq_len, image_size=image_size,
                             precision=precision, optimizer=optimizer, train_samples=batch_size,
                             infer_samples=batch_size, hardware=hardware)
    need = predicted_a.to_dict()["memory"]["train_peak_bytes"]
    free = _free_bytes(device)
    if need > 0.8 * free:
        raise InputError(f"{model} needs about {need / 2**30:,.1f} GiB to train at batch {batch_size}, and "
                         f"{device} has {free / 2**30:,.1f} GiB free; try a smaller --batch-size or a smaller sibling")
    measured, method = _run(predicted_a, steps, device, progress)
    d = predicted_a.to_dict()
    predicted = {"train_step_seconds": d["time"]["train_step_seconds"],
                 "infer_batch_seconds": d["time"]["infer_batch_seconds"],
                 "peak_bytes": d["memory"]["train_peak_bytes"]}
    notes.extend(n for n in d["notes"] if "hardware defaults" not in n)
    return Measurement(model=d["model"]["name"], device=device, hardware=hardware, measured=measured,
                       predicted=predicted, peak_method=method, steps=steps, notes=notes)


def _free_bytes(device: str) -> float:
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info()
        return float(free)
    import psutil

    return float(psutil.virtual_memory().available)


def _run(a: Assessment, steps: int, device: str, progress: ProgressFn | None) -> tuple[dict[str, float], str]:
    spec: ModelSpec = a.spec
    dtype = a.workload.precision.compute_dtype
    report = progress or (lambda what, i, n: None)
    gc.collect()
    sampler = _RssSampler() if device == "cpu" else None
    baseline = sampler.peak if sampler else 0
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    why = spec.metadata.get("not_measurable")
    if why:
        raise UnsupportedError(f"afford measure cannot run {spec.name}: {why}")
    module = spec.build(dtype, a.dims, device)
    module.train()
    inputs = {k: _real(v, device, dtype) for k, v in spec.make_inputs(a.workload.batch_size, a.dims, True).items()}
    kwargs = {k: v for k, v in inputs.items() if not k.startswith("_")}
    args = inputs.get("_args", ())
    opt = _optimizer(a.workload.optimizer, [p for p in module.parameters() if p.requires_grad])

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        spec.loss(module(*args, **kwargs), inputs).backward()
        opt.step()

    def infer_step() -> None:
        with torch.no_grad():
            module(*args, **{k: v for k, v in kwargs.items() if k not in ("labels", "return_loss")})

    train_times: list[float] = []
    if sampler:
        sampler.__enter__()
    try:
        for i in range(steps + 2):  # two warm-up steps: kernel selection, optimizer state allocation
            t = _time(train_step, device)
            if i >= 2:
                train_times.append(t)
            report("training steps", i + 1, steps + 2)
    finally:
        if sampler:
            sampler.__exit__(None, None, None)
    peak = (sampler.peak - baseline) if sampler else torch.cuda.max_memory_allocated() - baseline
    extra: dict[str, float] = {}
    method = "torch.cuda.max_memory_allocated (caching allocator peak)"
    if sampler:
        extra["rss_peak_bytes"] = float(peak)
        events_peak = _allocation_peak(train_step, module, opt, inputs)
        if events_peak is not None:
            peak = events_peak
            method = ("PyTorch's CPU allocation events over one training step (torch.profiler, profile_memory) on "
                      "top of the tensors alive when it starts; rss_peak_bytes is the process resident set for "
                      "comparison")
        else:
            method = "process resident set (sampled every 1 ms) minus the resident set before the model was built"
    module.eval()
    infer_times = []
    for i in range(steps + 1):
        t = _time(infer_step, device)
        if i >= 1:
            infer_times.append(t)
        report("inference batches", i + 1, steps + 1)
    return ({"train_step_seconds": statistics.median(train_times),
             "infer_batch_seconds": statistics.median(infer_times), "peak_bytes": float(peak), **extra}, method)


def _storage_bytes(tensors: Iterable[Any]) -> int:
    """Bytes of the distinct storages behind `tensors` (views and shared storages once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.layout == torch.strided:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def _allocation_peak(step: Callable[[], Any], module: torch.nn.Module, opt: torch.optim.Optimizer,
                     inputs: dict[str, Any]) -> float | None:
    """Peak tensor memory of one CPU training step from PyTorch's own allocation events: the bytes alive when
    the step starts (weights, buffers, optimizer state, inputs; gradients freed first) plus the highest running
    sum of the allocations and frees the CPU allocator reports during the step. None when the profiler cannot
    report them (the RSS figure is used then)."""
    from torch.profiler import ProfilerActivity, profile

    opt.zero_grad(set_to_none=True)
    gc.collect()
    state = [v for st in opt.state.values() for v in st.values()]
    flat = [t for v in inputs.values() for t in (v if isinstance(v, tuple) else (v,))]
    alive = _storage_bytes([*module.parameters(), *module.buffers(), *state, *flat])
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
        events = prof.profiler.kineto_results.events()
        rows = sorted((e.start_ns(), e.nbytes()) for e in events
                      if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    except Exception:  # noqa: BLE001 - a profiler without memory events: fall back to the resident set
        return None
    if not rows:
        return None
    running = highest = 0
    for _, nbytes in rows:
        running += nbytes
        highest = max(highest, running)
    return float(alive + highest)
