"""`afford measure`: run real training steps and inference batches on this machine and compare with the
prediction.

The model is built for real (random weights at its real size) on the device, fed synthetic inputs of the
workload's shapes; after warm-up, `steps` training steps (forward, loss, backward, optimizer step) and `steps`
inference batches (with `--task generate`, whole generation request batches) are timed, medians reported.
Peak memory: on CUDA the caching allocator's peak (`torch.cuda.max_memory_allocated`); on the CPU PyTorch's own
allocation events over one step, else the process's resident set sampled every millisecond while the steps run,
minus the resident set before the model was built (PyTorch's CPU allocator keeps no peak of its own).

The prediction is for this machine: its calibration (`afford calibrate`), made on the fly when there is none
(measure/target.py); a catalog device only when `--hardware` names one, with a note that says so.
"""

from __future__ import annotations

import gc
import inspect
import math
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from afford import bounds as b
from afford import schema
from afford.api import assess
from afford.assess import Assessment
from afford.counting.kvcache import next_cache
from afford.counting.trace import trainable_mask
from afford.errors import InputError, UnsupportedError, WorkloadError, opt
from afford.measure.quiet import quiet_native_stderr
from afford.measure.target import AnnounceFn, check_device, check_mode, prediction_target
from afford.sources import resolve
from afford.sources.base import ModelSpec
from afford.workload import Optimizer, Precision, Workload

ProgressFn = Callable[[str, int, int], None]
MAX_STEPS = 1000  # timed steps (and inference batches) at most


def _real(value: Any, device: str, dtype: torch.dtype) -> Any:
    """A meta input (or one on another device) made real on `device`: random floats in `dtype`, integer zeros;
    tensors already there (a decode step's KV cache) and other values pass through."""
    if isinstance(value, torch.Tensor):
        if value.device.type != "meta" and value.device.type == torch.device(device).type:
            return value
        if value.is_floating_point():
            return torch.randn(value.shape, device=device, dtype=dtype)
        return torch.zeros(value.shape, device=device, dtype=value.dtype)
    if isinstance(value, tuple):
        return tuple(_real(v, device, dtype) for v in value)
    return value


def _check_optimizer(name: Optimizer) -> None:
    """Refuse, before any work, an optimizer this run cannot use (torch.optim's run here)."""
    if name is Optimizer.ROWWISE_ADAGRAD:
        raise InputError("afford measure runs torch.optim optimizers; rowwise-adagrad is FBGEMM's fused embedding "
                         "optimizer: measure with --optimizer adagrad")
    if name not in (Optimizer.ADAM, Optimizer.ADAMW, Optimizer.SGD, Optimizer.SGD_MOMENTUM, Optimizer.ADAFACTOR,
                    Optimizer.ADAGRAD):
        raise InputError(f"afford measure cannot run {name.value} here (bitsandbytes needs CUDA); measure with "
                         "adamw")


def _optimizer(name: Optimizer, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The torch.optim optimizer of `name` over `params`."""
    _check_optimizer(name)
    if name in (Optimizer.ADAM, Optimizer.ADAMW):
        return (torch.optim.AdamW if name is Optimizer.ADAMW else torch.optim.Adam)(params, lr=1e-4)
    if name is Optimizer.SGD:
        return torch.optim.SGD(params, lr=1e-3)
    if name is Optimizer.SGD_MOMENTUM:
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    if name is Optimizer.ADAFACTOR:
        return torch.optim.Adafactor(params, lr=1e-2)
    return torch.optim.Adagrad(params, lr=1e-2)


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
    job: dict[str, Any] = field(default_factory=dict)  # train_steps / infer_batches the job totals count

    @property
    def error_pct(self) -> dict[str, float]:
        return {k: 100.0 * (self.predicted[k] - v) / v for k, v in self.measured.items() if v and k in self.predicted}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "device": self.device, "hardware": self.hardware, "steps": self.steps,
                "measured": self.measured, "predicted": self.predicted, "error_pct": self.error_pct,
                "peak_method": self.peak_method, "job": self.job, "notes": self.notes}


def _time(fn: Callable[[], Any], device: str) -> float:
    t = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return time.perf_counter() - t


def measure(model: str | ModelSpec, *, steps: int = 5, device: str = "cpu", calibration: str = "quick",
            announce: AnnounceFn | None = None, progress: ProgressFn | None = None, **options: Any) -> Measurement:
    """Time `steps` real training steps and inference batches of `model` here and predict the same job for this
    machine (its calibration, made on the fly when there is none; see `target.prediction_target`), or for
    `hardware` when asked. With train_samples/train_tokens or infer_samples, the whole job too: the predicted
    time and the measured step time times the job's steps. `freeze`, `grad_accum` and `--task generate` change
    what runs: frozen parameters take no gradient, a step runs `grad_accum` micro-batches, and an inference
    batch is a whole generation request batch (prefill, then G - 1 cached decode steps). The options are
    `afford.JobRequest`'s fields that `measure` takes (schema.names("measure"))."""
    r = schema.build("measure", options)
    batch_size, seq_len, image_size, precision, optimizer = (r.batch_size, r.seq_len, r.image_size, r.precision,
                                                             r.optimizer)
    train_samples, epochs, train_tokens, infer_samples = r.train_samples, r.epochs, r.train_tokens, r.infer_samples
    freeze, grad_accum, allow_longer, task = r.freeze, r.grad_accum, r.allow_longer, r.task
    prompt_tokens, generate_tokens, hardware, hardware_file = (r.prompt_tokens, r.generate_tokens, r.hardware,
                                                               r.hardware_file)
    trust_remote_code, allow_hub, model_options, trust_pickle = (r.trust_remote_code, r.allow_hub, r.model_options,
                                                                 r.trust_pickle)
    b.whole(steps, "steps", high=MAX_STEPS)
    device = check_device(device)
    check_mode(calibration)
    workload = Workload.parse(train_samples=train_samples, epochs=epochs, train_tokens=train_tokens,
                              infer_samples=infer_samples, batch_size=batch_size, seq_len=seq_len,
                              image_size=image_size, precision=precision, optimizer=optimizer, freeze=freeze,
                              allow_longer=allow_longer, task=task, prompt_tokens=prompt_tokens,
                              generate_tokens=generate_tokens)
    b.whole(grad_accum, "grad_accum", high=b.MAX_GRAD_ACCUM)
    _check_optimizer(workload.optimizer)
    spec = resolve(model, trust_remote_code=trust_remote_code, allow_hub=allow_hub, options=model_options,
                   trust_pickle=trust_pickle)
    why = spec.metadata.get("not_measurable")
    if why:
        raise UnsupportedError(f"afford measure cannot run {spec.name}: {why}")
    inference_only = bool(spec.metadata.get("inference_only"))
    if inference_only and workload.wants_training:
        raise WorkloadError(f"{spec.name} is inference-only ({spec.metadata['inference_only']}); drop "
                            f"{opt('train_samples')}/{opt('train_tokens')}")
    target = prediction_target(device, hardware, calibration=calibration, hardware_file=hardware_file,
                               announce=announce)
    a = assess(spec, batch_size=batch_size, seq_len=seq_len, image_size=image_size, precision=precision,
               optimizer=optimizer, freeze=tuple(freeze), allow_longer=allow_longer, task=task,
               prompt_tokens=prompt_tokens, generate_tokens=generate_tokens, epochs=epochs,
               train_samples=None if inference_only or train_tokens is not None else (train_samples or batch_size),
               train_tokens=train_tokens, infer_samples=infer_samples or batch_size, grad_accum=grad_accum,
               hardware=target.hardware, hardware_file=hardware_file)
    d = a.to_dict()
    trains = not inference_only and "train_step_seconds" in d["time"]
    # the peak of what is measured for memory: a training step, else an inference batch or generation request
    need = d["memory"]["train_peak_bytes" if trains else "generate_peak_bytes" if a.generation else "infer_peak_bytes"]
    free = _free_bytes(device)
    if need > 0.8 * free:
        raise InputError(f"{spec.name} needs about {need / 2**30:,.1f} GiB to "
                         f"{'train' if trains else 'run'} at batch {batch_size}, and {device} has "
                         f"{free / 2**30:,.1f} GiB free; try a smaller {opt('batch_size')} or a smaller sibling")
    tf32 = torch.backends.cuda.matmul.allow_tf32  # "tf32" runs the matmuls in TF32, "fp32" PyTorch's default
    torch.backends.cuda.matmul.allow_tf32 = a.workload.precision is Precision.TF32
    try:
        measured, method = _run(a, steps, device, progress, trains, grad_accum)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    predicted = {"infer_batch_seconds": d["time"]["infer_batch_seconds"], "peak_bytes": need}
    if trains:
        predicted["train_step_seconds"] = d["time"]["train_step_seconds"]
    notes = list(target.notes)
    job = _job_totals(d, measured, predicted, workload, trains)
    if a.generation is not None:
        job["generation"] = {"prompt_tokens": a.generation.prompt_tokens,
                             "generate_tokens": a.generation.generate_tokens}
    # a measurement prices nothing and names its hardware: the estimate's notes about those do not apply
    notes.extend(n for n in d["notes"] if "hardware defaults" not in n and "on-demand price" not in n)
    allocator = allocator_note(os.environ, platform.system()) if trains and device == "cpu" else None
    if allocator:
        notes.append(allocator)
    if not trains:
        notes.append("no training step measured: " + (
            "the model is inference-only" if inference_only else "every parameter is frozen"
            if d["model"]["trainable_params"] == 0 else "the prediction has no training step (see its note)"))
    return Measurement(model=d["model"]["name"], device=device, hardware=target.hardware, measured=measured,
                       predicted=predicted, peak_method=method, steps=steps, notes=notes, job=job)


def allocator_note(env: Mapping[str, str], system: str) -> str | None:
    """What a CPU training step measured here includes when the process runs glibc's default allocator (Linux,
    no jemalloc/tcmalloc/mimalloc preloaded, glibc's mmap threshold not raised): the re-faulting of its large
    tensors every step, which the prediction does not price (docs/methodology.md, section 11); None otherwise."""
    preload = env.get("LD_PRELOAD", "")
    if system != "Linux" or any(lib in preload for lib in ("jemalloc", "tcmalloc", "mimalloc")) \
            or env.get("MALLOC_MMAP_THRESHOLD_"):
        return None
    return ("measured with glibc's default allocator, which maps tensors over 32 MiB afresh and faults them in "
            "again every step; the prediction assumes freed memory is reused (LD_PRELOAD jemalloc or tcmalloc, or "
            "MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ raised, measure that: make cpu-check shows both)")


measure.__signature__ = schema.signature(  # type: ignore[attr-defined]
    "measure", [inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str | ModelSpec)],
    [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
     for name, default, kind in (("steps", 5, int), ("device", "cpu", str), ("calibration", "quick", str),
                                 ("announce", None, AnnounceFn | None), ("progress", None, ProgressFn | None))])


def _job_totals(d: dict[str, Any], measured: dict[str, float], predicted: dict[str, float], w: Workload,
                trains: bool) -> dict[str, Any]:
    """The job the options asked for: its predicted time and the measured step (or batch) time times the
    job's steps (or batches); added to `measured`/`predicted` as train_seconds / infer_seconds."""
    job: dict[str, Any] = {}
    if trains and w.wants_training:
        n = int(d["time"]["train_steps"])
        measured["train_seconds"] = measured["train_step_seconds"] * n
        predicted["train_seconds"] = d["time"]["train_seconds"]
        job["train_steps"] = n
    if w.infer_samples:
        n = math.ceil(w.infer_samples / w.batch_size)
        measured["infer_seconds"] = measured["infer_batch_seconds"] * n
        predicted["infer_seconds"] = d["time"]["infer_seconds"]
        job["infer_batches"] = n
    return job


def _free_bytes(device: str) -> float:
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return float(free)
    import psutil

    return float(psutil.virtual_memory().available)


def _run(a: Assessment, steps: int, device: str, progress: ProgressFn | None, trains: bool,
         grad_accum: int = 1) -> tuple[dict[str, float], str]:
    """Build the model here, then time its training steps (when `trains`) and inference batches; the peak
    memory of a training step, or of an inference batch when nothing trains."""
    spec: ModelSpec = a.spec
    dtype = a.workload.precision.compute_dtype
    report = progress or (lambda what, i, n: None)
    gc.collect()
    sampler = _RssSampler() if device == "cpu" else None
    baseline = sampler.peak if sampler else 0
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
    module = spec.build(dtype, a.dims, device)
    mask = trainable_mask(module, a.workload.freeze)
    for name, p in module.named_parameters():
        p.requires_grad_(mask[name])
    module.train(trains)
    inputs = {k: _real(v, device, dtype) for k, v in spec.make_inputs(a.workload.batch_size, a.dims, trains).items()}
    kwargs = {k: v for k, v in inputs.items() if not k.startswith("_")}
    args = inputs.get("_args", ())
    opt = _optimizer(a.workload.optimizer, [p for p in module.parameters() if p.requires_grad]) if trains else None

    def train_step() -> None:
        assert opt is not None
        opt.zero_grad(set_to_none=True)
        for _ in range(grad_accum):
            spec.loss(module(*args, **kwargs), inputs).backward()
        opt.step()

    generation = a.generation
    if generation is not None:
        infer_step = _generation_request(spec, module, a.workload.batch_size, generation.prompt_tokens,
                                         generation.generate_tokens, device, dtype)
    else:
        def infer_step() -> None:
            with torch.no_grad():
                module(*args, **{k: v for k, v in kwargs.items() if k not in ("labels", "return_loss")})

    peak_step = train_step if trains else infer_step
    train_times: list[float] = []
    if trains:
        for i in range(steps + 2):  # two warm-up steps: kernel selection, optimizer state allocation
            t = _time(train_step, device)
            if i >= 2:
                train_times.append(t)
            report("training steps", i + 1, steps + 2)
    if not trains:
        module.eval()
    if sampler:
        # the resident set's peak over one more step, apart from the timed ones: the sampler polls every ms on a
        # thread, which on a machine of few cores slows the steps it watches (BERT-base on 2 cores: +7% to +15%)
        with sampler:
            peak_step()
    elif not trains:
        peak_step()
    peak = (sampler.peak - baseline) if sampler else torch.cuda.max_memory_allocated(device) - baseline
    extra: dict[str, float] = {}
    method = "torch.cuda.max_memory_allocated (caching allocator peak)"
    if sampler:
        extra["rss_peak_bytes"] = float(peak)
        state = [v for st in opt.state.values() for v in st.values()] if opt is not None else []
        events_peak = _allocation_peak(peak_step, module, opt, state, inputs)
        if events_peak is not None:
            peak = events_peak
            method = (f"PyTorch's CPU allocation events over one {'training step' if trains else 'inference batch'} "
                      "(torch.profiler, profile_memory) on top of the tensors alive when it starts; rss_peak_bytes "
                      "is the process resident set for comparison")
        else:
            method = "process resident set (sampled every 1 ms) minus the resident set before the model was built"
    module.eval()
    infer_times = []
    what = "generation request batches" if generation is not None else "inference batches"
    for i in range(steps + 1):
        t = _time(infer_step, device)
        if i >= 1:
            infer_times.append(t)
        report(what, i + 1, steps + 1)
    out = {"infer_batch_seconds": statistics.median(infer_times), "peak_bytes": float(peak), **extra}
    if trains:
        out["train_step_seconds"] = statistics.median(train_times)
    return out, method


def _generation_request(spec: ModelSpec, module: torch.nn.Module, batch: int, prompt: int, new: int, device: str,
                        dtype: torch.dtype) -> Callable[[], None]:
    """One generation request batch as the trace counts it (counting/generation.py `trace_generation`): the prefill of
    the prompt, which yields the first new token, then `new` - 1 cached decode steps."""
    adapter = spec.decode
    if adapter is None:
        raise UnsupportedError(f"{spec.name}: a {spec.kind.value} model has no decode step to run")
    start = adapter.decoder_prompt(prompt) if adapter.decoder_prompt is not None else prompt

    def run(*args: Any, **kwargs: Any) -> Any:
        return module(*_real(args, device, dtype), **{k: _real(v, device, dtype) for k, v in kwargs.items()})

    def request() -> None:
        with torch.no_grad():
            if adapter.encode_prefill is not None:
                cache = adapter.encode_prefill(run, batch, prompt, start)
            else:
                cache = adapter.prefill(run, batch, start)
            for position in range(start, start + new - 1):
                cache = next_cache(adapter.step(run, batch, cache, position), cache)

    return request


def _storage_bytes(tensors: Iterable[Any]) -> int:
    """Bytes of the distinct storages behind `tensors` (views and shared storages once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.layout == torch.strided:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def _allocation_peak(step: Callable[[], Any], module: torch.nn.Module, opt: torch.optim.Optimizer | None,
                     state: list[Any], inputs: dict[str, Any]) -> float | None:
    """Peak tensor memory of one CPU step from PyTorch's own allocation events: the bytes alive when the step
    starts (weights, buffers, optimizer `state`, inputs; gradients freed first) plus the highest running sum of
    the allocations and frees the CPU allocator reports during the step. None when the profiler cannot report
    them (the RSS figure is used then)."""
    from torch.profiler import ProfilerActivity, profile

    if opt is not None:
        opt.zero_grad(set_to_none=True)
    gc.collect()
    flat = [t for v in inputs.values() for t in (v if isinstance(v, tuple) else (v,))]
    alive = _storage_bytes([*module.parameters(), *module.buffers(), *state, *flat])
    try:
        with quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
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
