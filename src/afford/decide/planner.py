"""Search strategies and hardware for the cheapest and fastest feasible training plans, and their Pareto set.

Variants that change what is computed are traced (the model as asked; LoRA adapters injected with `peft`, so
frozen base weights skip their gradients exactly; QLoRA = the LoRA trace with 4-bit base weights). Everything
else is derived from those traces: memory savers (8-bit Adam, activation checkpointing, CPU offload of the
optimizer), ZeRO stage / FSDP, tensor parallelism, micro-batch with gradient accumulation, FP8 matmuls where the
device has them, device type and count.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from afford.assess import Assessment, prepare, traced_assessment
from afford.decide.budget import Budget
from afford.errors import AffordError
from afford.estimate import footprint as fp
from afford.estimate import runtime as rt
from afford.estimate.job import live_peaks
from afford.estimate.memory import gradient_share, optimizer_state_bytes
from afford.estimate.parallel import RESERVED_BYTES, Layout, Parallel, train_memory_per_device
from afford.estimate.runtime import Overhead, Runtime, as_run, overhead, step_fixed_seconds, weight_casts
from afford.estimate.timing import Efficiency, mfu_peak, phase_seconds, step_from_times, steps_for
from afford.hardware.catalog import Catalog, Device
from afford.workload import Optimizer, Precision, Workload

# QLoRA (Dettmers et al. 2023, sec. 3): NF4 base weights (4 bits) with double-quantised block constants,
# 0.127 bits per parameter on average.
QLORA_BITS_PER_PARAM = 4 + 0.127
# LoRA rank when none is given; QLoRA's paper uses 64 on all linear layers, PEFT's default is 8; 16 is the
# common middle used in the PEFT and QLoRA examples.
DEFAULT_LORA_RANK = 16
# Host <-> device transfers for CPU offload: PCIe 4.0 x16, 31.5 GB/s per direction, at the achievable
# fraction of streaming bandwidth (efficiency.toml default 0.83).
HOST_LINK_GB_S = 31.5 * 0.83
COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)

QUALITY = {
    "full": "full fine-tuning: every parameter trains",
    "lora": "LoRA trains low-rank adapters only ({trainable} of {params} parameters); Hu et al. 2021 report "
            "quality on par with full fine-tuning on GLUE and GPT-3 tasks, but it can trail on harder domain shifts",
    "qlora": "QLoRA: 4-bit NF4 base weights plus LoRA adapters; Dettmers et al. 2023 report it matches 16-bit "
             "full fine-tuning on their benchmarks; dequantising the weights in every pass slows each step",
    "adam-8bit": "8-bit Adam states (Dettmers et al. 2022 report no loss of quality)",
    "recompute": "activation checkpointing: recomputes the forward in backward (about +33% compute)",
    "offload": "optimizer state and master weights on the CPU (ZeRO-Offload): slower steps over PCIe",
    "fp8": "FP8 matmuls (Transformer Engine style): small numerical differences, usually harmless",
}


@dataclass(frozen=True)
class Strategy:
    """One way to run the job: what is trained, in which format, how memory is saved, on what hardware."""

    device: str
    count: int
    adapter: str = "full"
    lora_rank: int | None = None
    precision: str = "bf16-mixed"
    fp8: bool = False
    optimizer: str = "adamw"
    recompute: bool = False
    offload: bool = False
    parallel: str = "dp"
    tp: int = 1
    pp: int = 1
    micro_batch: int = 1
    grad_accum: int = 1
    owned: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Plan:
    """A strategy with its cost, time, memory and energy; `feasible` when it meets every limit."""

    strategy: Strategy
    cost_usd: float | None
    train_seconds: float
    gpu_hours: float
    per_device_bytes: float
    device_bytes: int
    fits: bool
    kwh: float
    co2_kg: float
    mfu: float
    feasible: bool = False
    violations: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy.to_dict(), "cost_usd": self.cost_usd, "train_seconds": self.train_seconds,
                "gpu_hours": self.gpu_hours, "per_device_bytes": self.per_device_bytes,
                "device_bytes": self.device_bytes, "fits": self.fits, "energy_kwh": self.kwh,
                "co2_kg": self.co2_kg, "mfu": self.mfu, "feasible": self.feasible, "violations": self.violations,
                "changes": self.changes}


@dataclass
class Variant:
    """A traced model variant (as asked, LoRA or QLoRA) and its memory facts."""

    name: str
    a: Assessment
    weights_bytes: float
    trainable: int
    params: int
    lora_rank: int | None = None
    _times: dict[tuple[str, str, float, bool], tuple[float, float, float, float]] = field(default_factory=dict)
    _optim: dict[tuple[str, str], float] = field(default_factory=dict)
    _peaks: dict[tuple[str, str], float] = field(default_factory=dict)
    _host: dict[tuple[str, Runtime, bool], tuple[Overhead, Overhead]] = field(default_factory=dict)

    def overheads(self, device: Device, runtime: Runtime, mixed: bool) -> tuple[Overhead, Overhead]:
        """The runtime's overhead of one forward and one backward of this variant (estimate/runtime.py); it
        counts ops, so it does not change with the micro-batch."""
        key = (device.id, runtime, mixed)
        if key not in self._host:
            t = self.a.trace
            casts = weight_casts(t.forward, mixed)
            self._host[key] = (overhead(as_run(t.forward, runtime), runtime, device, casts=casts),
                               overhead(as_run(t.backward, runtime), runtime, device, backward=True, casts=casts))
        return self._host[key]

    def optimizer_bytes(self, optimizer: str, precision: Precision) -> float:
        """Optimizer state of the trainable parameters (memoised: the search asks thousands of times)."""
        key = (optimizer, precision.value)
        if key not in self._optim:
            self._optim[key] = optimizer_state_bytes(self.a.trace.param_shapes, Optimizer(optimizer), precision,
                                                     self.a.trace.embedding_params)
        return self._optim[key]

    def peak(self, device: Device, fmt: str) -> float:
        """The peak FLOP/s the MFU of a training step in format `fmt` is measured against (timing.mfu_peak)."""
        key = (device.id, fmt)
        if key not in self._peaks:
            self._peaks[key] = mfu_peak([self.a.trace.forward, self.a.trace.backward], device, fmt)[0]
        return self._peaks[key]

    def times(self, device: Device, fmt: str, byte_scale: float,
              runtime: Runtime = Runtime.EAGER) -> tuple[float, float, float, float]:
        """Roofline forward/backward seconds (and their compute-bound parts) of one traced batch, with tensor
        bytes scaled to another element size, its element-wise ops fused where the runtime fuses them."""
        key = (device.id, fmt, byte_scale, runtime.fuses)
        if key not in self._times:
            eff = Efficiency.for_device(device)
            t_f, b_f = phase_seconds(as_run(self.a.trace.forward, runtime), device, eff, fmt, byte_scale)
            t_b, b_b = phase_seconds(as_run(self.a.trace.backward, runtime), device, eff, fmt, byte_scale)
            self._times[key] = (t_f, b_f, t_b, b_b)
        return self._times[key]


def _lora(module: torch.nn.Module, rank: int) -> torch.nn.Module:
    import peft

    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear")
    with torch.device("meta"):
        return peft.get_peft_model(module, config)


def variants(model: Any, workload: Workload, *, adapters: tuple[str, ...] = ("full", "lora", "qlora"),
             lora_rank: int = DEFAULT_LORA_RANK, trust_remote_code: bool = False,
             traced: Assessment | None = None) -> list[Variant]:
    """Trace the model as asked and, where adapters apply, with LoRA injected (training step only). `traced`, an
    Assessment of the same model and training job, stands for the model as asked: it is not traced again."""
    out: list[Variant] = []
    dtype = workload.precision.compute_dtype
    module: torch.nn.Module | None = None
    if traced is not None and traced.trace.backward is not None:
        spec, dims, full = traced.spec, traced.dims, traced
    else:
        spec, dims = prepare(model, workload, trust_remote_code=trust_remote_code)
        module = spec.build(dtype, dims)
        full = traced_assessment(spec, workload, dims, module, infer=False, decode=False)
    if "full" in adapters:
        # the trace's weights in the compute dtype: plans price mixed precision as 16-bit weights and gradients
        # plus fp32 masters, which for --amp (fp32 weights and gradients) is the same total
        out.append(Variant("full", full, full.trace.weights_bytes + full.memory.buffers_bytes,
                           full.trace.trainable_params, full.trace.params))
    # adapters are offered for transformers (their linear layers carry the model); a CNN's only linear layer is
    # its classifier, where "LoRA" would be a poorer linear probe
    if ("lora" in adapters or "qlora" in adapters) and spec.metadata.get("num_layers"):
        lw = dataclasses.replace(workload, precision=Precision.BF16_MIXED, freeze=())
        try:
            # the traced module is reused (peft wraps it in place) unless it was built in another dtype
            base = module if module is not None and dtype == torch.bfloat16 else spec.build(torch.bfloat16, dims)
            module = _lora(base, lora_rank)
            la = traced_assessment(spec, lw, dims, module, infer=False, decode=False)
        except (AffordError, ValueError, TypeError, RuntimeError, ImportError):
            return out  # no linear layers to adapt, or peft cannot wrap this architecture
        lora_params = la.trace.trainable_params
        base_params = la.trace.params - lora_params
        if "lora" in adapters:
            out.append(Variant("lora", la, la.trace.weights_bytes + la.memory.buffers_bytes, lora_params,
                               la.trace.params, lora_rank=lora_rank))
        if "qlora" in adapters:
            weights = base_params * QLORA_BITS_PER_PARAM / 8 + lora_params * 2 + la.memory.buffers_bytes
            out.append(Variant("qlora", la, weights, lora_params, la.trace.params, lora_rank=lora_rank))
    return out


def _counts(limit: int, samples: float, micro: int) -> list[int]:
    """Device counts to try: powers of two up to the limit (and the limit itself), never more devices than the
    job has micro-batches."""
    most = max(1, int(samples // max(micro, 1)))
    return sorted({c for c in COUNTS if c <= min(limit, most)} | ({limit} if limit <= most else set()))


def _savers(asked_opt: str) -> list[tuple[str, bool, bool]]:
    """(optimizer, recompute, offload), cheapest in time and quality first."""
    opts = [asked_opt] if asked_opt == Optimizer.ADAM_8BIT.value else [asked_opt, Optimizer.ADAM_8BIT.value]
    out = [(o, False, False) for o in opts] + [(o, True, False) for o in opts]
    out += [(asked_opt, False, True), (asked_opt, True, True)]
    return out


def _fmt(precision: str, fp8: bool) -> str:
    return "fp8" if fp8 else precision


def evaluate(v: Variant, device: Device, s: Strategy, samples: float, *, price: float | None, grid: fp.Grid,
             pue: float, notes: list[str], mfu: float | None = None, runtime: Runtime = Runtime.EAGER) -> Plan:
    """Memory, time, money and energy of one strategy for one traced variant; a fixed `mfu` (`--mfu`) times the
    step as the model FLOPs at that fraction of the peak, as the assessment does, instead of the roofline;
    `runtime` adds its host and launch overheads (estimate/runtime.py), as the assessment does."""
    a, t = v.a, v.a.trace
    traced_batch = t.batch_size
    scale = s.micro_batch / traced_batch
    prec = Precision(s.precision)
    byte_scale = prec.compute_dtype.itemsize / a.workload.precision.compute_dtype.itemsize
    layout = Layout(count=s.count, gpus_per_node=min(device.gpus_per_node, s.count),
                    parallel=Parallel(s.parallel), tp=s.tp, pp=s.pp, grad_accum=s.grad_accum)
    weights = v.weights_bytes * (byte_scale if v.name != "qlora" else 1.0)
    touched = gradient_share(t)  # < 1 only for sparse (embedding) gradients
    grads = v.trainable * prec.compute_dtype.itemsize * touched
    master = 4 * v.trainable if prec.mixed else 0
    optim = v.optimizer_bytes(s.optimizer, prec)
    states = 0.0 if s.offload else optim + master
    fwd, bwd = live_peaks(a, s.recompute, notes)
    live = (fwd * scale * byte_scale, bwd * scale * byte_scale)
    mem = train_memory_per_device(layout, weights=weights, gradients=grads, optimizer=states, live=live)
    fits = mem.total_bytes <= device.memory_bytes - RESERVED_BYTES
    fmt = _fmt(s.precision, s.fp8)
    t_f, b_f, t_b, b_b = (x * scale for x in v.times(device, fmt, byte_scale, runtime))
    eff = Efficiency.for_device(device)
    if v.name == "qlora":
        # every use of a 4-bit weight dequantises it: read 4.127 bits, write and read back 16 bits, in forward
        # and again in backward (bitsandbytes' 4-bit matmul); memory-bound, on top of the traced step
        per_pass = (v.params - v.trainable) * (QLORA_BITS_PER_PARAM / 8 + 2 * 2)
        bw = device.memory_bandwidth_gb_s * 1e9 * eff.bandwidth
        t_f += per_pass / bw
        t_b += per_pass / bw
    # optimizer step: gradients read, master (or the weights) and states read and written, and the trainable
    # parameters' 16-bit copy written back under mixed precision
    trainable_bytes = v.trainable * prec.compute_dtype.itemsize
    traffic = grads + touched * (2 * (master or trainable_bytes) + 2 * optim + (trainable_bytes if prec.mixed else 0))
    offload_s = 0.0
    if s.offload:
        offload_s = (grads + weights) / (HOST_LINK_GB_S * 1e9) / (s.tp * s.pp)
        offload_s += traffic / (460.8e9 * eff.bandwidth) / (s.tp * s.pp)  # CPU Adam at a server socket's bandwidth
    hidden = int(a.spec.metadata.get("hidden_size") or 0)
    host_f, host_b = v.overheads(device, runtime, prec.mixed)
    opt_host = rt.optimizer_host_seconds(t.trainable_tensors, s.optimizer, runtime, device)
    step = step_from_times(t_fwd=t_f, b_fwd=b_f, t_bwd=t_b, b_bwd=b_b, device=device, eff=eff, layout=layout,
                           gradient_bytes=grads, parameter_bytes=weights,
                           optimizer_bytes_touched=0.0 if s.offload else traffic,
                           tp_activation_bytes=s.micro_batch * (a.dims.seq_len or 1) * hidden * 2,
                           layers=a.spec.metadata.get("num_layers"), recompute=s.recompute, notes=notes,
                           offload_seconds=offload_s, host_fwd=host_f, host_bwd=host_b,
                           fixed_s=step_fixed_seconds(device), optimizer_host_s=opt_host)
    # MFU of a step, as the assessment's: the model FLOPs of the samples one step takes, against the peaks the
    # roofline above timed each op with
    step_flops = (a.train_forward_flops + a.backward_flops) * s.micro_batch * layout.grad_accum * layout.dp
    peak = v.peak(device, fmt)
    step_s, busy = step.step_s, step.busy_fraction
    if mfu is not None:
        step_s, busy = step_flops / (s.count * peak * mfu), mfu
    n_steps = steps_for(samples, s.micro_batch, layout)
    seconds = n_steps * step_s
    foot = fp.footprint(device, s.count, seconds, busy, price_per_hour=price, pue=pue, grid_=grid)
    achieved = step_flops / (step_s * s.count * peak) if step_s else 0.0
    return Plan(strategy=s, cost_usd=foot.usd, train_seconds=seconds, gpu_hours=foot.device_hours,
                per_device_bytes=mem.total_bytes, device_bytes=device.memory_bytes, fits=fits, kwh=foot.kwh,
                co2_kg=foot.co2_kg, mfu=achieved)


@dataclass
class PlanSearch:
    """Every evaluated plan, and the cheapest, fastest and Pareto-optimal feasible ones."""

    plans: list[Plan]
    cheapest: Plan | None
    fastest: Plan | None
    pareto: list[Plan]
    by_adapter: dict[str, Plan]
    notes: list[str]


def _hardware(catalog: Catalog, budget: Budget, max_count: int) -> list[tuple[Device, int, bool]]:
    """(device, most devices, owned) to search: the user's own hardware, else every rentable device with peaks."""
    if budget.available:
        return [(catalog.get(o.device), o.count, True) for o in budget.available]
    return [(d, max_count, False) for d in catalog.rentable() if d.peak_tflops and d.kind != "cpu"]


def search(vs: list[Variant], budget: Budget, *, catalog: Catalog | None = None, precisions: tuple[str, ...] = (),
           max_count: int = 16384, electricity_usd_kwh: float | None = None, region: str | None = None,
           pue: float | None = None, price_per_hour: float | None = None, grid_gco2_kwh: float | None = None,
           mfu: float | None = None, runtime: Runtime = Runtime.EAGER) -> PlanSearch:
    """Evaluate strategies over hardware and mark the feasible ones against the budget (a fixed `mfu` times
    every plan, see `evaluate`)."""
    cat = catalog or Catalog.load()
    grid = fp.grid(region, grid_gco2_kwh)
    pue_v = pue if pue is not None else fp.default_pue()
    elec = electricity_usd_kwh if electricity_usd_kwh is not None else fp.electricity_price()
    notes: list[str] = []
    plans: list[Plan] = []
    for v in vs:
        asked = v.a.workload
        samples = v.a.train_samples_total or asked.batch_size
        precs = precisions or (tuple(dict.fromkeys((asked.precision.value, "bf16-mixed"))) if v.name == "full"
                               else ("bf16-mixed",))
        for device, limit, owned in _hardware(cat, budget, max_count):
            price = price_per_hour if price_per_hour is not None else (0.0 if owned else device.price_usd_per_hour)
            for prec in precs:
                # FP8 only where the catalog has an FP8 peak and a measured FP8 matmul efficiency
                fp8_ok = device.has_format("fp8") and Efficiency.for_device(device).matmul_fp8 is not None
                fp8_options = [False] + ([True] if fp8_ok and v.name != "qlora" and prec != "fp32" else [])
                for count in _counts(limit, samples, asked.batch_size):
                    # tensor/pipeline splits need a transformer's layer count (recommenders have none)
                    big = v.params > 2e10 and bool(v.a.spec.metadata.get("num_layers"))
                    tps = [1] + ([8] if count >= 8 and count % 8 == 0 and big else [])
                    pps = [1] + ([4] if count >= 32 and big else [])
                    pars = ["dp"] if count == 1 else ["dp", "zero2", "fsdp"]
                    for tp, pp in ((t, p) for t in tps for p in pps if count % (t * p) == 0):
                        for par in pars:
                            plan = _first_fit(v, device, count, tp, pp, par, prec, asked, samples, price, grid,
                                              pue_v, notes, owned, mfu, runtime)
                            if plan is None:
                                continue
                            for fp8 in fp8_options:
                                p = plan if not fp8 else evaluate(
                                    v, device, dataclasses.replace(plan.strategy, fp8=True), samples, price=price,
                                    grid=grid, pue=pue_v, notes=notes, mfu=mfu, runtime=runtime)
                                if owned:
                                    p.cost_usd = (p.cost_usd or 0.0) + p.kwh * elec
                                plans.append(p)
                            break  # the least sharding that fits is enough for this count and tp
    for p in plans:
        mark(p, budget)
    feasible = [p for p in plans if p.feasible]
    cheapest = min(feasible, key=lambda p: (p.cost_usd or 0.0, p.train_seconds), default=None)
    fastest = min(feasible, key=lambda p: (p.train_seconds, p.cost_usd or 0.0), default=None)
    by_adapter: dict[str, Plan] = {}
    for p in sorted((p for p in plans if p.fits), key=lambda p: (not p.feasible, p.cost_usd or 0.0)):
        by_adapter.setdefault(p.strategy.adapter, p)
    return PlanSearch(plans=plans, cheapest=cheapest, fastest=fastest, pareto=pareto(feasible),
                      by_adapter=by_adapter, notes=notes)


def _first_fit(v: Variant, device: Device, count: int, tp: int, pp: int, par: str, prec: str, asked: Workload,
               samples: float, price: float | None, grid: fp.Grid, pue: float, notes: list[str],
               owned: bool, mfu: float | None = None, runtime: Runtime = Runtime.EAGER) -> Plan | None:
    """The first (least costly) memory saver and micro-batch that make this layout fit, evaluated."""
    micro = asked.batch_size
    while micro >= 1:
        for opt, recompute, offload in _savers(asked.optimizer.value):
            s = Strategy(device=device.id, count=count, adapter=v.name,
                         lora_rank=v.lora_rank, precision=prec, optimizer=opt,
                         recompute=recompute, offload=offload, parallel=par, tp=tp, pp=pp, micro_batch=micro,
                         grad_accum=max(1, asked.batch_size // micro), owned=owned)
            try:
                p = evaluate(v, device, s, samples, price=price, grid=grid, pue=pue, notes=notes, mfu=mfu,
                             runtime=runtime)
            except AffordError:
                return None
            if p.fits:
                return p
        micro //= 2
    return None


def mark(p: Plan, budget: Budget) -> Plan:
    """Set a plan's violated limits and whether it is feasible (fits in memory and breaks no limit)."""
    p.violations = budget.violations(p.cost_usd, p.train_seconds, p.kwh, p.co2_kg)
    p.feasible = p.fits and not p.violations
    return p


def pareto(plans: list[Plan]) -> list[Plan]:
    """Plans no other plan beats on both cost and time, cheapest first."""
    front: list[Plan] = []
    best_time = math.inf
    for p in sorted(plans, key=lambda p: (p.cost_usd or 0.0, p.train_seconds)):
        if p.train_seconds < best_time:
            front.append(p)
            best_time = p.train_seconds
    return front
