"""A traced assessment on real hardware: time, money, energy and carbon, with a low/high range."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from afford.errors import InputError, flag, opt
from afford.estimate import footprint as fp
from afford.estimate import formats, timing
from afford.estimate.memory import gradient_share
from afford.estimate.parallel import RESERVED_BYTES, train_memory_per_device
from afford.estimate.request import Estimate, HardwareRequest
from afford.estimate.runtime import (
    Overhead,
    Runtime,
    as_run,
    optimizer_host_seconds,
    overhead,
    step_fixed_seconds,
    wall,
    weight_casts,
)
from afford.estimate.sharding import NO_SPLIT, TensorSplit, split_peak, tensor_split
from afford.estimate.timing import Efficiency, phase_seconds, steps_for, train_step
from afford.hardware.catalog import Device
from afford.workload import Precision

if TYPE_CHECKING:
    from afford.assess import Assessment
    from afford.counting.profile import GenerationProfile

def _optimizer_traffic(a: Assessment) -> float:
    """Bytes the optimizer step reads and writes: gradients once, master weights (or the weights) and every
    state tensor read and written, and the 16-bit working copy written back under mixed precision (under torch.amp
    in fp16, GradScaler's unscale pass over the gradients too)."""
    m = a.memory
    t = a.trace
    share = t.trainable_params / t.params if t.params else 0.0
    trainable_weights = m.weights_bytes * share
    touched = gradient_share(t)  # < 1 only for sparse (embedding) gradients: the rows looked up are updated
    if a.workload.precision.mixed and not a.trace.amp:  # torch.amp's fp32 weights are the masters
        return m.gradients_bytes + touched * (2 * m.master_weights_bytes + 2 * m.optimizer_bytes + trainable_weights)
    # torch.amp in fp16 scales the loss, so GradScaler.unscale_ reads and writes every fp32 gradient once more
    # before the step (torch._amp_foreach_non_finite_check_and_unscale_: the inverse scale and the inf/NaN check);
    # bf16 needs no scaling
    unscale = 2 * m.gradients_bytes if a.trace.amp and a.workload.precision is Precision.FP16_MIXED else 0
    return m.gradients_bytes + unscale + touched * (2 * trainable_weights + 2 * m.optimizer_bytes)


def live_peaks(a: Assessment, recompute: bool, notes: list[str]) -> tuple[float, float]:
    """Live bytes other than gradients at the forward peak and at the backward peak of a traced step.

    The backward peak as traced holds every gradient produced so far; they are removed here so that a layout
    can add back the share of gradients a device keeps (all of them, or 1/dp under ZeRO-2/3). With full
    activation checkpointing per layer only each layer's input (batch x seq x hidden) stays saved, plus one
    layer's activations while it is recomputed (Chen et al. 2016, "Training Deep Nets with Sublinear Memory
    Cost"; Korthikanti et al. 2022, sec. 4)."""
    t = a.trace
    fwd = float(t.forward.peak_live_bytes)
    bwd = max(float(t.backward.peak_live_bytes if t.backward else 0.0) - t.gradients_bytes, 0.0)
    if not recompute:
        return fwd, bwd
    layers = int(a.spec.metadata.get("num_layers") or 0)
    hidden = int(a.spec.metadata.get("hidden_size") or 0)
    if not layers or not hidden:
        notes.append("--recompute: checkpointed activation memory is modelled for transformer configs only; "
                     "memory shown without the saving")
        return fwd, bwd
    boundary = t.batch_size * (a.dims.seq_len or 1) * hidden * a.workload.precision.compute_dtype.itemsize
    saved = float(t.saved_activations_bytes)
    kept = min(layers * boundary + saved / layers, saved)
    return max(fwd - saved + kept, 0.0), max(bwd - saved + kept, 0.0)


def phase_wall(phase: Any, device: Device, eff: Efficiency, precision: str, runtime: Runtime, mixed: bool,
               view: Callable[[Any], Any] = lambda p: p, byte_scale: float = 1.0, split: TensorSplit = NO_SPLIT,
               tokens: float = 0.0) -> tuple[float, float, Overhead]:
    """One traced phase on a device: its kernel seconds (the system efficiency applied), the compute-bound part of
    them (before it) and the runtime's overhead for its ops; the wall time is `wall(kernels, overhead)`. `view`
    and `byte_scale` re-price its events (a weight format, a batch), the overhead counts the ops as traced. Under
    a tensor-parallel `split` each device runs 1/tp of the kernels plus the all-reduces of the phase's `tokens`
    (estimate/sharding.py), and issues every op."""
    phase = as_run(phase, runtime)
    k, busy = phase_seconds(view(phase), device, eff, precision, byte_scale)
    k = k / split.tp + split.comm_seconds(tokens)
    return k / eff.system, busy / split.tp, overhead(phase, runtime, device, casts=weight_casts(phase, mixed))


def generation_walls(gen: GenerationProfile, device: Device, eff: Efficiency, precision: str, runtime: Runtime,
                     mixed: bool, view: Callable[[Any], Any] = lambda p: p, byte_scale: float = 1.0,
                     split: TensorSplit = NO_SPLIT, batch: int = 1) -> tuple[float, float, float, Overhead, float]:
    """Wall seconds of a generation batch's prefill and of all its decode steps under a runtime (each step the
    longer of its kernels and the host's time to issue it, estimate/runtime.py), the compute-bound part, the
    runtime overhead summed over the batch and the GPU seconds (kernels and the gaps between them). `view` and
    `byte_scale` re-price the phases' weights in a weight format (estimate/formats.py `reweighted`); `split` the
    tensor-parallel split of a batch of `batch` requests."""
    k, busy, ov = phase_wall(gen.prefill, device, eff, precision, runtime, mixed, view, byte_scale, split,
                             batch * gen.prompt_tokens)
    prefill, total, gpu = wall(k, ov), ov, k + ov.gap_s
    decode = 0.0
    for phase, weight in gen.steps.values():
        k, step_busy, ov = phase_wall(phase, device, eff, precision, runtime, mixed, view, byte_scale, split, batch)
        decode += float(weight) * wall(k, ov)
        busy += float(weight) * step_busy
        total = total + ov.scaled(float(weight))
        gpu += float(weight) * (k + ov.gap_s)
    return prefill, decode, busy, total, gpu


def _generation_time(gen: GenerationProfile, prefill_k: float, decode_k: float, batch_s: float, b: int,
                     count: int, price_per_hour: float | None, spread: tuple[float, float],
                     devices: int) -> dict[str, Any]:
    """Time figures of a generation batch of `b` requests per replica: prefill (time to first token), the decode
    steps, the request as a whole, generated tokens per second over `count` replicas (of `devices` devices in
    all), dollars per M tokens."""
    kernel = prefill_k + decode_k
    scale = batch_s / kernel if kernel else 0.0  # the system efficiency, or a fixed --mfu
    prefill_s, decode_s = prefill_k * scale, decode_k * scale
    steps = max(gen.generate_tokens - 1, 0)
    step_s = decode_s / steps if steps else 0.0
    step_tps = b / step_s if step_s else 0.0
    tps = b * count * gen.generate_tokens / batch_s if batch_s else 0.0
    usd_m = price_per_hour * devices / 3600 / tps * 1e6 if (tps and price_per_hour) else None
    lo, hi = spread
    return {
        "batch_size": b, "prompt_tokens": gen.prompt_tokens, "generate_tokens": gen.generate_tokens,
        "prefill_seconds": prefill_s, "prefill_seconds_range": [prefill_s * lo, prefill_s * hi],
        "decode_seconds": decode_s, "decode_seconds_range": [decode_s * lo, decode_s * hi],
        "decode_seconds_per_token": step_s, "decode_tokens_per_second": step_tps,
        "decode_tokens_per_second_range": [step_tps / hi, step_tps / lo],
        "seconds_per_request": batch_s, "seconds_per_request_range": [batch_s * lo, batch_s * hi],
        "tokens_per_second": tps, "tokens_per_second_range": [tps / hi, tps / lo],
        "usd_per_million_tokens": usd_m,
        "usd_per_million_tokens_range": [usd_m * lo, usd_m * hi] if usd_m is not None else None,
    }


def _input_pipeline(a: Assessment, req: HardwareRequest, variants: dict[str, dict[str, float]],
                    time_out: dict[str, Any], notes: list[str]) -> None:
    """`--data-workers N` for an image model's training: each GPU's loader decodes and augments N x (images per
    second per core, measured by `afford calibrate` into the host profile) images a second; a step whose
    micro-batches arrive slower than the GPU takes them is input-bound, and takes the input's time."""
    from afford.estimate.runtime import host_of
    from afford.sources import ModelKind

    if a.spec.kind is not ModelKind.IMAGE:
        notes.append(f"{opt('data_workers')} prices image decoding: this is not an image model; not priced")
        return
    per_core = host_of(req.device).input_per_core
    if not per_core:
        notes.append(f"{opt('data_workers')}: the decode rate per CPU core is measured by `afford calibrate`; "
                     f"with {opt('host_profile')} local it is priced (not priced here)")
        return
    per_device = int(req.data_workers or 0) * per_core
    input_s = a.trace.batch_size * req.layout.grad_accum / per_device
    breakdown = time_out.setdefault("train_step_breakdown", {})
    breakdown["input_seconds"] = input_s
    breakdown["input_images_per_second_per_device"] = per_device
    bound = input_s > variants["point"]["step_s"]
    breakdown["input_bound"] = bound
    gpu_rate = a.trace.batch_size * req.layout.grad_accum / variants["point"]["step_s"]
    for v in variants.values():
        if input_s > v["step_s"]:
            v["mfu"] *= v["step_s"] / input_s
            v["train_s"] *= input_s / v["step_s"]
            v["step_s"] = input_s
    if bound:
        notes.append(f"training steps are input-bound: {req.data_workers} loader workers decode {per_device:,.0f} "
                     f"images/s per GPU against the {gpu_rate:,.0f} its steps take; more {opt('data_workers')} "
                     "(cores), GPU decoding (NVIDIA DALI) or "
                     "pre-decoded data (FFCV, WebDataset of tensors) would help")


def _add_evaluation(a: Assessment, time_out: dict[str, Any], variants: dict[str, dict[str, float]],
                    batch_s: float, replicas: int, spread: tuple[float, float]) -> None:
    """`--eval-samples` E after each of the job's epochs: ceil(E / (batch x replicas)) inference batches at the
    inference batch's wall time (the same trace, no gradients), added to each variant's training time (and so to
    its cost, energy and carbon); the MFU and samples per second stay the training steps' own."""
    w = a.workload
    epochs = w.epochs if w.train_samples is not None else 1.0  # a token budget is one pass over its data
    per_epoch = math.ceil((w.eval_samples or 0) / (a.trace.batch_size * max(1, replicas))) * batch_s
    lo, hi = spread
    eval_s = epochs * per_epoch
    for name, scale in (("point", 1.0), ("low", hi), ("high", lo)):  # the slow end (low efficiency) is longer
        variants[name]["train_s"] += eval_s * scale
    time_out["eval_seconds"] = eval_s
    time_out["train_step_breakdown"]["eval_seconds_per_step"] = eval_s / (time_out.get("train_steps") or 1)


def _host_note(what: str, rt: Runtime, issue_s: float, ops: int) -> str:
    """The note of a host-bound job: what bounds it and what would help."""
    fix = f"a larger {flag('batch_size')}"
    if rt is not Runtime.CUDAGRAPHS:
        fix += f" or {flag('runtime')} cudagraphs"
    return (f"{what} are host-bound under the {rt.value} runtime: issuing {ops:,} ops takes {issue_s * 1e3:.3g} ms, "
            f"longer than the GPU's work; {fix} would help")


def estimate(a: Assessment, req: HardwareRequest) -> Estimate:
    """Time the assessment's traced phases on the requested hardware and price it."""
    notes: list[str] = []
    dev, lay = req.device, req.layout
    base = Efficiency.for_device(dev)
    precision = a.workload.precision.value
    t = a.trace
    if req.default_device:
        notes.append(f"hardware defaults to {dev.id}; choose with --hardware")
    if req.price_per_hour is None:
        notes.append(f"{dev.id} has no on-demand price in the catalog; give --price-per-hour for dollars")
    if precision == "tf32" and (not dev.has_format("tf32") or dev.extra.get("calibrated")):
        notes.append(f"{dev.id} has no TF32 tensor-core rate to price: {flag('precision')} tf32 runs its matmuls "
                     "in fp32 here, as PyTorch does where the hardware lacks TF32")
    if dev.kind == "cpu" and t.backward is not None and a.workload.wants_training:
        notes.append("a CPU training step is timed as with an allocator that reuses freed memory (jemalloc, tcmalloc, "
                     "or glibc with MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ raised); glibc's defaults "
                     "fault tensors over 32 MiB in afresh every step (GPT-2 small on 2 cores: 2.80-3.30 s a step "
                     "against 2.13 s so configured; docs/validation.md)")
    if lay.tp > 1 and not a.spec.metadata.get("num_layers"):
        raise InputError(f"{opt('tp')} needs a transformer whose layer count is known (a Hugging Face config)")
    b, seq = t.batch_size, a.dims.seq_len or 1
    hidden = int(a.spec.metadata.get("hidden_size") or 0)
    tp_bytes = b * seq * hidden * a.workload.precision.compute_dtype.itemsize
    # one peak per precision: the peaks the roofline times each op with, for the training step and for inference
    mfu_peak, mfu_format = timing.mfu_peak([t.forward, t.backward], dev, precision)
    gen_phases = [] if t.generation is None else [t.generation.prefill, *(p for p, _ in t.generation.steps.values())]
    infer_peak = timing.mfu_peak(gen_phases or [t.infer], dev, precision)[0]
    out: dict[str, Any] = {}

    # ---- training --------------------------------------------------------------------------------------
    samples = a.train_samples_total
    train_flops_per_sample = a.train_forward_flops + a.backward_flops
    time_out: dict[str, Any] = {"mfu_peak_format": mfu_format, "mfu_peak_flops_per_second": mfu_peak}
    variants: dict[str, dict[str, float]] = {}
    busy = 0.0
    rt, mixed = req.runtime, a.workload.precision.mixed
    fixed = step_fixed_seconds(dev)
    casts = weight_casts(t.forward, mixed)  # autocast: each weight cast in forward, its gradient cast in backward
    run_fwd, run_bwd = as_run(t.forward, rt), as_run(t.backward, rt)  # fused under compiled and cudagraphs
    host_fwd = overhead(run_fwd, rt, dev, casts=casts)
    host_bwd = overhead(run_bwd, rt, dev, backward=True, casts=casts)
    opt_host = optimizer_host_seconds(t.trainable_tensors, a.workload.optimizer.value, rt, dev)
    if t.backward is not None:
        for name, eff in (("point", base), ("low", base.scaled("low")), ("high", base.scaled("high"))):
            step = train_step(forward=run_fwd, backward=run_bwd, device=dev, eff=eff, precision=precision,
                              layout=lay, gradient_bytes=a.memory.gradients_bytes,
                              parameter_bytes=a.memory.weights_bytes, optimizer_bytes_touched=_optimizer_traffic(a),
                              tp_activation_bytes=tp_bytes, layers=a.spec.metadata.get("num_layers"),
                              recompute=req.recompute, notes=notes, host_fwd=host_fwd, host_bwd=host_bwd,
                              fixed_s=fixed, optimizer_host_s=opt_host)
            per_step_samples = b * lay.grad_accum * lay.dp
            step_s = step.step_s
            if req.mfu is not None:
                step_s = train_flops_per_sample * per_step_samples / (lay.count * mfu_peak * req.mfu)
            n_steps = steps_for(samples, b, lay)
            variants[name] = {"step_s": step_s, "train_s": n_steps * step_s,
                              "mfu": train_flops_per_sample * per_step_samples / (step_s * lay.count * mfu_peak)}
            if name == "point":
                busy = step.busy_fraction if req.mfu is None else req.mfu
                time_out["train_step_breakdown"] = {
                    "compute_seconds": step.compute_s / eff.system,
                    "pipeline_bubble_seconds": step.bubble_s / eff.system,
                    "tp_comm_seconds": step.tp_comm_s / eff.system, "dp_comm_seconds": step.dp_comm_s,
                    "dp_comm_exposed_seconds": step.dp_exposed_s / eff.system,
                    "optimizer_seconds": step.optimizer_s / eff.system, "efficiency": vars(eff),
                    "kernel_gap_seconds": step.gap_s, "host_seconds": step.host_s,
                    "host": {"runtime": rt.value, "bound": step.host_bound, "issue_seconds": step.host_issue_s,
                             "fixed_seconds": fixed, "optimizer_seconds": step.optimizer_host_s,
                             "forward": host_fwd.to_dict(),
                             "backward": host_bwd.to_dict()}}
                time_out["train_steps"] = n_steps
                time_out["samples_per_step"] = per_step_samples
                if step.host_bound and req.mfu is None:
                    notes.append(_host_note("training micro-batches", rt,
                                            (step.host_issue_s - fixed) / lay.grad_accum, host_fwd.ops + host_bwd.ops))
        if req.data_workers:
            _input_pipeline(a, req, variants, time_out, notes)
    # ---- inference ---------------------------------------------------------------------------------------
    gen = t.generation
    # --weights: the weights read in that format and the ops computed at its precision (estimate/formats.py)
    fmt = formats.weight_format(req.weights) if req.weights else None
    infer_prec = formats.compute_precision(fmt, precision) if fmt else precision
    act = fmt.dense_bytes / a.workload.precision.compute_dtype.itemsize if fmt else 1.0
    meta = {**a.spec.metadata, "params": t.params}
    view: Callable[[Any], Any] = (lambda p: formats.reweighted(p, t, fmt, meta, act)) if fmt else (lambda p: p)
    # tensor parallelism: each replica split over tp devices (estimate/sharding.py); the rest are replicas
    split = tensor_split(a, dev, lay.tp, fmt.dense_bytes if fmt else a.workload.precision.compute_dtype.itemsize,
                         notes)
    replicas = lay.count // lay.tp
    if gen is not None:  # --task generate: a batch of requests is its prefill and every decode step
        pre_k, dec_k, b_busy, infer_ov, gpu_s = generation_walls(gen, dev, base, infer_prec, rt, mixed, view, act,
                                                                 split, b)
        t_batch = pre_k + dec_k + fixed  # each step already the longer of its GPU and host times
    else:
        k_infer, b_busy, infer_ov = phase_wall(t.infer, dev, base, infer_prec, rt, mixed, view, act, split, b * seq)
        gpu_s = k_infer + infer_ov.gap_s
        t_batch = wall(k_infer, infer_ov) + fixed
    # `host_seconds`: the host's time to issue the batch (overlapped with the GPU's), plus the fixed cost
    infer_breakdown = {"runtime": rt.value, "gpu_seconds": gpu_s, **infer_ov.to_dict(),
                       "host_seconds": infer_ov.host_s + fixed, "fixed_seconds": fixed,
                       "host_bound": infer_ov.host_s > gpu_s}
    if infer_breakdown["host_bound"] and req.mfu is None and (a.workload.infer_samples or gen is not None):
        notes.append(_host_note("inference batches", rt, infer_ov.host_s, infer_ov.ops))
    if gen is None and req.mfu is None:  # kernels whose time is a latency, not bytes, when they set the batch
        run = as_run(t.infer, rt)
        serial_s = timing.serial_seconds(run, dev) / base.system
        if serial_s > 0.2 * gpu_s:
            notes.append(f"eager NCHW bilinear/bicubic upsampling takes {serial_s * 1e3:,.1f} ms of the inference "
                         f"batch's {gpu_s * 1e3:,.1f} ms on the GPU: PyTorch's kernel loops over batch x channels in "
                         f"each thread (docs/methodology.md); channels_last inputs (bilinear, 16+ channels) or "
                         f"{flag('runtime')} compiled avoid it")
        rows_s = timing.row_block_seconds(run, dev, base, infer_prec) / base.system
        if rows_s > 0.2 * gpu_s:
            notes.append(f"PyTorch's layer/RMS norm kernel gives every row its own thread block: over short rows "
                         f"(few channels) those blocks add {rows_s * 1e3:,.1f} ms to the inference batch's "
                         f"{gpu_s * 1e3:,.1f} ms on the GPU (docs/methodology.md); {flag('runtime')} compiled "
                         "normalises several rows per block")
    if req.mfu is not None:
        t_batch = (a.flops_per_request if gen is not None else a.forward_flops) * b / (infer_peak * req.mfu)
    infer_samples = a.workload.infer_samples or 0
    infer_batches = math.ceil(infer_samples / (b * replicas)) if infer_samples else 0
    # a fixed --mfu has no range; otherwise the system-efficiency range scales every roofline time
    spread = (1.0, 1.0) if req.mfu is not None else base.spread()
    time_out["infer_batch_breakdown"] = infer_breakdown
    time_out.update({"infer_batch_seconds": t_batch,
                     "infer_samples_per_second": b * replicas / t_batch if t_batch else 0,
                     "infer_seconds": infer_batches * t_batch,
                     "infer_seconds_range": [infer_batches * t_batch * spread[0], infer_batches * t_batch * spread[1]]})
    if variants:  # training: its steps, then the evaluation passes its epochs add (they price inference batches)
        if a.workload.eval_samples:
            _add_evaluation(a, time_out, variants, t_batch, replicas, spread)
        # the slow end (low efficiency) gives the high time; a host-bound step is the same at every efficiency, and
        # its three figures may differ in the last bit: each range is kept around its point
        point, fast, slow = (variants[k]["train_s"] for k in ("point", "high", "low"))
        train_range = [min(fast, point), max(slow, point)]
        mfu = variants["point"]["mfu"]
        time_out.update({
            "train_step_seconds": variants["point"]["step_s"],
            "train_seconds": point,
            "train_seconds_range": train_range,
            "train_gpu_hours": point * lay.count / 3600,
            "train_gpu_hours_range": [t * lay.count / 3600 for t in train_range],
            "train_mfu": mfu,
            "train_mfu_range": [min(variants["low"]["mfu"], mfu), max(variants["high"]["mfu"], mfu)],
            "train_samples_per_second": (variants["point"]["step_s"] and
                                         b * lay.grad_accum * lay.dp / variants["point"]["step_s"]),
        })
    out["time"] = time_out
    # JSON `infer` (issue 11's stable keys): one batch (a generation batch: one request's whole time) per replica
    lo, hi = spread
    sps = time_out["infer_samples_per_second"]
    out["infer"] = {"batch_size": b, "replicas": replicas, "tp": lay.tp, "latency_seconds": t_batch,
                    "latency_seconds_range": [t_batch * lo, t_batch * hi], "samples_per_second": sps,
                    "samples_per_second_range": [sps / hi, sps / lo]}

    # ---- generation -------------------------------------------------------------------------------------
    if gen is not None:
        out["generate"] = _generation_time(gen, pre_k, dec_k, t_batch, b, replicas, req.price_per_hour, spread,
                                           lay.count)
        out["generate"]["total_seconds"] = time_out["infer_seconds"]
        out["generate"]["total_seconds_range"] = time_out["infer_seconds_range"]
    elif t.decode is not None and t.prefill is not None:
        prefill_k, _, prefill_ov = phase_wall(t.prefill, dev, base, infer_prec, rt, mixed, view, act, split, b * seq)
        decode_k, _, decode_ov = phase_wall(t.decode, dev, base, infer_prec, rt, mixed, view, act, split, b)
        prefill_s, decode_s = wall(prefill_k, prefill_ov), wall(decode_k, decode_ov)
        tps = b / decode_s if decode_s else 0.0
        usd_m = (req.price_per_hour * lay.tp / 3600 / tps * 1e6) if (tps and req.price_per_hour) else None
        out["generate"] = {
            "batch_size": b, "prompt_tokens": seq, "prefill_seconds": prefill_s,
            "prefill_seconds_range": [prefill_s * spread[0], prefill_s * spread[1]],
            "decode_seconds_per_token": decode_s, "decode_tokens_per_second": tps,
            "decode_tokens_per_second_range": [tps / spread[1], tps / spread[0]],
            "usd_per_million_tokens": usd_m,
            "usd_per_million_tokens_range": [usd_m * spread[0], usd_m * spread[1]] if usd_m is not None else None,
        }

    # ---- memory per device --------------------------------------------------------------------------------
    mem = a.memory
    per_dev = train_memory_per_device(lay, weights=mem.weights_bytes + mem.buffers_bytes,
                                      gradients=mem.gradients_bytes,
                                      optimizer=mem.optimizer_bytes + mem.master_weights_bytes,
                                      live=live_peaks(a, req.recompute, notes))
    usable = dev.memory_bytes - RESERVED_BYTES
    training = a.workload.wants_training or (not a.workload.infer_samples and gen is None)
    # generate: the KV cache at P+G; under tensor parallelism one device's share (estimate/sharding.py)
    infer_bytes = split_peak(float(mem.generate_peak_bytes if gen is not None else mem.infer_peak_bytes),
                             mem.weights_bytes + mem.buffers_bytes, mem.kv_cache_bytes, split.tp, split.kv_heads)
    per_device = per_dev.total_bytes if training and t.backward is not None else infer_bytes
    out["memory"] = {"per_device_bytes": per_device, "fits": per_device <= usable,
                     "device_bytes": dev.memory_bytes, "usable_bytes": usable,
                     "train_per_device_bytes": per_dev.total_bytes if t.backward is not None else 0,
                     "model_states_per_device_bytes": per_dev.model_states_bytes,
                     "infer_per_device_bytes": infer_bytes,
                     "infer_fits": infer_bytes <= usable}

    # ---- money, energy, carbon ---------------------------------------------------------------------------
    cost: dict[str, Any] = {"price_per_device_hour": req.price_per_hour}
    energy: dict[str, Any] = {"pue": req.pue}
    co2: dict[str, Any] = {"grid": req.grid.id, "gco2_per_kwh": req.grid.gco2_per_kwh}
    if variants:
        for key, idx in (("", None), ("_low", 0), ("_high", 1)):
            secs = variants["point"]["train_s"] if idx is None else time_out["train_seconds_range"][idx]
            f = fp.footprint(dev, lay.count, secs, busy, price_per_hour=req.price_per_hour, pue=req.pue,
                             grid_=req.grid)
            cost[f"train_usd{key}"] = None if f.usd is None else f.usd + f.kwh * req.energy_usd_per_kwh
            energy[f"train_kwh{key}"] = f.kwh
            co2[f"train_kg{key}"] = f.co2_kg
        cost["train_usd_range"] = [cost.pop("train_usd_low"), cost.pop("train_usd_high")]
        energy["train_kwh_range"] = [energy.pop("train_kwh_low"), energy.pop("train_kwh_high")]
        co2["train_kg_range"] = [co2.pop("train_kg_low"), co2.pop("train_kg_high")]
    fi = fp.footprint(dev, lay.count, time_out["infer_seconds"], b_busy / (t_batch or 1),
                      price_per_hour=req.price_per_hour, pue=req.pue, grid_=req.grid)
    infer_usd = None if fi.usd is None else fi.usd + fi.kwh * req.energy_usd_per_kwh
    cost["infer_usd"], energy["infer_kwh"], co2["infer_kg"] = infer_usd, fi.kwh, fi.co2_kg
    cost["infer_usd_range"] = [infer_usd * spread[0], infer_usd * spread[1]] if infer_usd is not None else None
    energy["infer_kwh_range"] = [fi.kwh * spread[0], fi.kwh * spread[1]]
    if gen is not None:
        out["generate"].update({"total_usd": infer_usd, "total_usd_range": cost["infer_usd_range"],
                                "total_kwh": fi.kwh, "total_co2_kg": fi.co2_kg})
    out.update({"cost": cost, "energy": energy, "co2": co2})
    out["hardware"] = {"name": dev.id, "count": lay.count, "device": dev.name, **lay.to_dict(),
                       "memory_bytes": dev.memory_bytes, "price_source": dev.price_source,
                       "recompute": req.recompute, "mfu_override": req.mfu, "attention": req.attention.value}
    return Estimate(req=req, data=out, notes=notes)
