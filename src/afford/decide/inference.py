"""The verdict for an inference job (issue 11): does serving M samples or requests fit the budget, the deadline, the
latency targets and the device's memory, and if not, which device, count, split and weight format make it so.

The assessment's trace is re-priced, never traced again: each plan is `estimate(assessment, request)` on another
device, tensor-parallel degree (a replica split over tp devices of a node, estimate/sharding.py), count of
replicas (each holds the whole model and takes its share of the samples) and weight format (estimate/formats.py:
the format's bytes for memory and for the weight reads of the inference steps). A device's plans split a replica
only as far as needed: the next degree is tried while the smaller one does not fit or misses a latency target.
With a `--rate`, each plan is the job as served (estimate/serving.py: paged KV, continuous batching): the replicas
the rate needs, for as long as the requests take to arrive.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from afford import bounds as b
from afford.decide.budget import Budget
from afford.decide.verdict import Status, duration
from afford.errors import AffordError, InputError, opt
from afford.estimate import footprint as fp
from afford.estimate.formats import WeightFormat, inference_memory, weight_format
from afford.estimate.job import estimate
from afford.estimate.parallel import Layout
from afford.estimate.request import HardwareRequest
from afford.estimate.runtime import Runtime
from afford.estimate.serving import ServeOptions, batch_curve, serve
from afford.estimate.sharding import tp_choices
from afford.hardware.catalog import Catalog, Device

# what a weight format costs in quality, quoted from its source (None: afford has no published figure to quote)
QUALITY: dict[str, str | None] = {
    "int8": "LLM.int8() weights: 'without performance degradation' up to 175B parameters (Dettmers et al. 2022, "
            "abstract)",
    "awq-4bit": "AWQ INT4 g128: WikiText-2 perplexity of Llama-2-7B 5.47 -> 5.60, Llama-2-70B 3.32 -> 3.41 "
                "(github.com/dwithchenna/llm-quantization, AWQ implementation)",
    "gptq-4bit": "GPTQ INT4 g128: WikiText-2 perplexity of Llama-2-7B 5.47 -> 5.87 (github.com/dwithchenna/"
                 "llm-quantization, AutoGPTQ)",
    "gguf-q4_k_m": "GGUF Q4_K_M: +0.1754 perplexity on Llama-3-8B (llama.cpp tools/quantize/quantize.cpp)",
    "fp8": None,
}
LATENCY = frozenset({"latency", "ttft", "tpot"})  # the violations a faster split, runtime or KV cache can mend
SEARCHED = ("int8", "awq-4bit", "fp8")  # beside the 16-bit weights; fp8 where the device has FP8
KV_FP8_QUALITY = ("vLLM docs, FP8 E4M3 KV Cache (docs.vllm.ai/en/v0.6.6/quantization/fp8_e4m3_kvcache.html): "
                  "'Studies have shown that FP8 E4M3 quantization typically only minimally degrades inference "
                  "accuracy'")
GRAPHS = ("CUDA graphs (torch.compile mode='reduce-overhead', or a serving engine's captured graphs): the host "
          "launches one graph a batch instead of every op; the same kernels, so no quality change")


@dataclass(frozen=True)
class Targets:
    """Latency targets, in seconds: per batch (per request batch for generation), time to first token, time per
    output token."""

    max_latency: float | None = None
    ttft: float | None = None
    tpot: float | None = None

    def __post_init__(self) -> None:
        """Each target a finite positive number of seconds (at most a day): one-line InputError naming it."""
        for name in ("max_latency", "ttft", "tpot"):
            value = getattr(self, name)
            if value is not None:
                b.real(value, name, high=86400.0, open_low=True, unit=" seconds")

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.max_latency, self.ttft, self.tpot))


@dataclass
class InferencePlan:
    """One way to run the inference job: device, devices in all (`tp` per replica) and weight format, with its
    figures."""

    device: str
    count: int
    weights: str
    owned: bool
    per_device_bytes: float
    device_bytes: float
    fits: bool
    seconds: float
    cost_usd: float | None
    kwh: float
    co2_kg: float
    latency_s: float
    ttft_s: float | None
    tpot_s: float | None
    violations: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    tp: int = 1
    runtime: str = "eager"
    kv_cache_dtype: str | None = None  # None: the compute dtype
    host_bound: bool = False  # the host, not the device, sets the pace of a batch (estimate/runtime.py)
    batch_size: int | None = None  # the samples of a batch; None: the job's

    @property
    def feasible(self) -> bool:
        return self.fits and not self.violations

    @property
    def replicas(self) -> int:
        return self.count // self.tp

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "count": self.count, "tp": self.tp, "replicas": self.replicas,
                "weights": self.weights, "runtime": self.runtime, "kv_cache_dtype": self.kv_cache_dtype,
                "host_bound": self.host_bound, "batch_size": self.batch_size, "owned": self.owned,
                "per_device_bytes": self.per_device_bytes, "device_bytes": self.device_bytes, "fits": self.fits,
                "infer_seconds": self.seconds, "cost_usd": self.cost_usd, "energy_kwh": self.kwh,
                "co2_kg": self.co2_kg, "latency_seconds": self.latency_s, "ttft_seconds": self.ttft_s,
                "tpot_seconds": self.tpot_s, "feasible": self.feasible, "violations": self.violations,
                "changes": self.changes}


@dataclass
class InferenceDecision:
    """The verdict of an inference job, the job as asked and the plans found (cheapest, lowest latency, best per
    weight format)."""

    status: Status
    reasons: list[str]
    asked: InferencePlan
    plans: list[InferencePlan]
    budget: Budget
    searched: int
    notes: list[str] = field(default_factory=list)

    @property
    def chosen(self) -> InferencePlan | None:
        """The plan the verdict names: the job as asked when it is affordable, else the cheapest feasible plan."""
        if self.status is Status.AFFORDABLE:
            return self.asked
        return next((p for p in self.plans if p.feasible), None)

    def device_ids(self) -> list[str]:
        """The devices of the job as asked and of the listed plans, each once."""
        return list(dict.fromkeys([self.asked.device, *(p.device for p in self.plans)]))

    def to_dict(self) -> dict[str, Any]:
        chosen = self.chosen
        verdict = {"status": self.status.value, "reasons": self.reasons, "job": "inference",
                   "plan": chosen.to_dict() if chosen else None, "options": {}}
        return {"verdict": verdict, "asked": self.asked.to_dict(), "plans": [p.to_dict() for p in self.plans],
                "searched": self.searched, "notes": self.notes}


def _layout(device: Device, replicas: int, tp: int) -> Layout:
    """`replicas` copies of the model, each split over `tp` devices of one node (replicas never communicate)."""
    n = replicas * tp
    return Layout(count=n, gpus_per_node=n if n <= device.gpus_per_node else tp, tp=tp)


def _evaluate(a: Any, req: HardwareRequest, device: Device, count: int, fmt: WeightFormat, kv: str | None,
              price: float | None, owned: bool, energy_price: float,
              serving: ServeOptions | None = None, tp: int = 1, runtime: Runtime | None = None) -> InferencePlan:
    """Re-price the assessment on `count` replicas of `device`, each split over `tp` devices, with `fmt` weights;
    with a `serving` rate (a generation job on a GPU), as served: the replicas the rate needs, for the M requests'
    arrival time; `runtime` (default: the request's) for the ops' dispatch."""
    layout = _layout(device, count, tp)
    r = dataclasses.replace(req, device=device, layout=layout, price_per_hour=price, weights=fmt.id,
                            default_device=False, energy_usd_per_kwh=energy_price if owned else 0.0,
                            runtime=runtime or req.runtime)
    d = estimate(a, r).data
    mem = inference_memory(a, fmt, kv, device, tp)
    gen = d.get("generate") or {}
    generating = a.generation is not None
    latency = gen.get("seconds_per_request", 0.0) if generating else d["time"]["infer_batch_seconds"]
    plan = InferencePlan(device=device.id, count=count * tp, tp=tp, weights=fmt.id, owned=owned,
                         per_device_bytes=(mem["generate_peak_bytes"] if generating else
                                           max(mem["infer_peak_bytes"], mem["generate_peak_bytes"])),
                         device_bytes=device.memory_bytes, fits=mem["fits"], seconds=d["time"]["infer_seconds"],
                         cost_usd=d["cost"]["infer_usd"], kwh=d["energy"]["infer_kwh"], co2_kg=d["co2"]["infer_kg"],
                         latency_s=latency, ttft_s=gen.get("prefill_seconds"),
                         tpot_s=gen.get("decode_seconds_per_token"), runtime=r.runtime.value, kv_cache_dtype=kv,
                         host_bound=bool(d["time"]["infer_batch_breakdown"]["host_bound"]),
                         batch_size=None if generating else a.trace.batch_size)
    if serving is None or serving.rate is None:
        return plan
    if _servable(a, device):
        s = serve(a, device, fmt, kv, serving, price, tp)
        if not s["fits"]:
            plan.fits = False
            return plan
        f = s["at_rate"]
        replicas, ttft, tpot = s["replicas_for_rate"], f["ttft_seconds"], f["tpot_seconds"]
        latency = ttft + (a.generation.generate_tokens - 1) * tpot
    else:  # batches of the job's batch size, back to back on each replica
        per_replica = a.trace.batch_size / d["time"]["infer_batch_seconds"]
        replicas, latency, ttft, tpot = math.ceil(serving.rate / per_replica), plan.latency_s, plan.ttft_s, plan.tpot_s
    seconds = (a.workload.infer_samples or 0) / serving.rate  # the requests arrive at the rate: so long it lasts
    device_s = plan.count * plan.seconds
    share = replicas * tp * seconds / device_s if device_s else 0.0  # energy follows device-seconds
    return dataclasses.replace(
        plan, count=replicas * tp, seconds=seconds,
        cost_usd=None if price is None else replicas * tp * price * seconds / 3600,
        kwh=plan.kwh * share, co2_kg=plan.co2_kg * share, latency_s=latency, ttft_s=ttft, tpot_s=tpot)


def _servable(a: Any, device: Device) -> bool:
    """Whether the serving model prices this job on this device: a generation job with decode steps, on a GPU."""
    g = a.trace.generation
    return a.generation is not None and device.kind == "gpu" and g is not None and bool(g.steps)


def _violations(p: InferencePlan, lim: Budget, t: Targets) -> list[str]:
    out = lim.violations(p.cost_usd, p.seconds, p.kwh, p.co2_kg)
    if t.max_latency is not None and p.latency_s > t.max_latency:
        out.append("latency")
    if t.ttft is not None and (p.ttft_s or 0.0) > t.ttft:
        out.append("ttft")
    if t.tpot is not None and (p.tpot_s or 0.0) > t.tpot:
        out.append("tpot")
    return out


def _changes(p: InferencePlan, asked: InferencePlan) -> list[str]:
    """What a plan changes against the job as asked, with what a format costs in quality where published."""
    out = []
    if (p.device, p.count, p.tp) != (asked.device, asked.count, asked.tp):
        split = f", each replica split over {p.tp} devices (tensor parallelism)" if p.tp > 1 else ""
        out.append(f"run on {p.count} x {p.device}" + (" (owned)" if p.owned else "") +
                   (f" ({p.replicas} replicas, each with its share of the samples{split})" if p.replicas > 1 else
                    f" (one replica split over {p.tp} devices: tensor parallelism)" if p.tp > 1 else ""))
    if p.weights != asked.weights:
        quality = QUALITY.get(p.weights)
        out.append(f"weights in {p.weights} instead of {asked.weights}: " +
                   (quality or "its quality change is not quantified in afford's sources"))
    if p.runtime != asked.runtime:
        out.append(f"run under {p.runtime} instead of {asked.runtime}" +
                   (f": {GRAPHS}" if p.runtime == Runtime.CUDAGRAPHS.value else ""))
    if p.batch_size is not None and p.batch_size != asked.batch_size:
        out.append(f"batches of {p.batch_size} instead of {asked.batch_size}: the trace re-priced at that batch "
                   "(serve.batches); no quality change")
    if p.kv_cache_dtype != asked.kv_cache_dtype:
        out.append(f"KV cache in {p.kv_cache_dtype or 'the compute dtype'} instead of "
                   f"{asked.kv_cache_dtype or 'the compute dtype'}" +
                   (f": half the bytes a token; {KV_FP8_QUALITY}" if p.kv_cache_dtype == "fp8" else ""))
    return out


def _reasons(p: InferencePlan, lim: Budget, t: Targets) -> list[str]:
    """The job as asked against every limit, quantified."""
    gib = 2**30
    out = [f"{'fits' if p.fits else 'does not fit'}: {p.per_device_bytes / gib:,.1f} GiB of "
           f"{p.device_bytes / gib:,.1f} GiB per device ({p.weights} weights on {p.device})"]
    if lim.usd is not None:
        cost = "unknown (no price)" if p.cost_usd is None else f"${p.cost_usd:,.2f}"
        out.append(f"costs {cost} of the ${lim.usd:,.2f} budget")
    if lim.deadline_s is not None:
        out.append(f"takes {duration(p.seconds)} of the {duration(lim.deadline_s)} deadline")
    for name, value, target in (("latency", p.latency_s, t.max_latency), ("time to first token", p.ttft_s, t.ttft),
                                ("time per output token", p.tpot_s, t.tpot)):
        if target is not None:
            shown = "n/a" if value is None else f"{value * 1e3:,.1f} ms"
            out.append(f"{name} {shown} against the {target * 1e3:,.1f} ms target")
    if lim.max_kwh is not None:
        out.append(f"uses {p.kwh:,.3g} kWh of {lim.max_kwh:,.3g}")
    if lim.max_co2_kg is not None:
        out.append(f"emits {p.co2_kg:,.3g} kg CO2e of {lim.max_co2_kg:,.3g}")
    return out


def decide(a: Any, req: HardwareRequest, budget: Budget, targets: Targets, *, catalog: Catalog,
           weights: str | None, kv_cache_dtype: str | None, max_count: int = 16384,
           electricity_usd_kwh: float | None = None, owned_asked: bool = False,
           serving: ServeOptions | None = None) -> InferenceDecision:
    """The verdict of an inference job priced as `req` (an assessment already estimated), and the plans over
    devices (the user's own, else every rentable GPU), replicas and weight formats."""
    if a.generation is None and (targets.ttft is not None or targets.tpot is not None) and a.trace.decode is None:
        raise InputError(f"{opt('ttft')} and {opt('tpot')} apply to generation: give {opt('task')} generate with "
                         f"{opt('prompt_tokens')} and {opt('generate_tokens')}")
    energy = electricity_usd_kwh if electricity_usd_kwh is not None else fp.electricity_price()
    asked_fmt = weight_format(weights or a.workload.precision.dense_format)
    lay = req.layout
    asked = _evaluate(a, req, req.device, lay.count // lay.tp, asked_fmt, kv_cache_dtype, req.price_per_hour,
                      owned_asked, energy, serving, lay.tp)
    asked.violations = _violations(asked, budget, targets)
    notes: list[str] = []
    if budget.available:
        pool = [(catalog.get(o.device), o.count, True) for o in budget.available]
    else:
        pool = [(d, max_count, False) for d in catalog.rentable() if d.peak_tflops and d.kind != "cpu"]
    plans: list[InferencePlan] = []
    dense = "bf16" if asked_fmt.id == "bf16" else "fp16"
    for device, limit, owned in pool:
        names = dict.fromkeys([asked_fmt.id, dense, *SEARCHED])
        for name in names:
            fmt = weight_format(name)
            if fmt.device_format and not device.has_format(fmt.device_format):
                continue
            if fmt.kind != "dense" and fmt.id != asked_fmt.id and (device.kind != "gpu" or device.vendor != "nvidia"):
                continue  # the int8 / 4-bit kernels searched (bitsandbytes, AWQ) are CUDA kernels
            price = 0.0 if owned else (req.price_per_hour if device.id == req.device.id
                                       else device.price_usd_per_hour)
            for tp in tp_choices(a, device, limit):
                found = _replica_plans(a, req, device, tp, limit, fmt, kv_cache_dtype, price, owned, energy,
                                       serving, budget, targets, asked)
                plans.extend(found)
                if any(p.fits and not LATENCY & set(p.violations) for p in found):
                    break  # split no further than needed: a larger tp only adds devices and all-reduces
    feasible = [p for p in plans if p.feasible]
    listed = _listed(feasible, plans)
    if asked.feasible:
        status = Status.AFFORDABLE
    elif feasible:
        status = Status.WITH_CHANGES
    else:
        status = Status.NOT_AFFORDABLE
        best = min((p for p in plans if p.fits), key=lambda p: p.latency_s, default=None)
        if best is not None and (targets.max_latency or targets.ttft or targets.tpot):
            notes.append(f"the lowest latency found is {best.latency_s * 1e3:,.1f} ms per "
                         f"{'request' if a.generation is not None else 'batch'} ({best.weights} on {best.device}); "
                         "a lower target needs a smaller batch or model, or a faster device")
    reasons = _reasons(asked, budget, targets)
    if plans and not any(p.fits for p in plans):
        smallest = min(plans, key=lambda p: p.per_device_bytes)
        reasons.append(f"no plan fits: the smallest is {smallest.per_device_bytes / 2**30:,.1f} GiB per device "
                       f"({smallest.weights} on {smallest.tp} x {smallest.device}, tensor parallelism within a "
                       "node); pipeline parallelism and offloading are not priced for inference")
    if status is Status.WITH_CHANGES and listed:
        reasons.append("as asked it breaks: " + ", ".join(asked.violations or ["memory"]) + "; the cheapest plan "
                       "that fits: " + "; ".join(listed[0].changes or ["the same job"]))
    notes.append("inference plans search devices, tensor parallelism within a node (1, 2, 4, 8), replicas, "
                 "weight formats (16-bit, int8, AWQ 4-bit, FP8), CUDA graphs where batches are host-bound and an FP8 "
                 "KV cache where a plan does not fit or is too slow, and the batch with the most samples per second "
                 "where a non-generation plan is host-bound or breaks a limit" +
                 ("; each served at the rate with continuous batching (serve.*)" if serving and serving.rate else
                  "; give --rate to price them as served with continuous batching"))
    return InferenceDecision(status=status, reasons=reasons, asked=asked, plans=listed, budget=budget,
                             searched=len(plans), notes=notes)


def _replica_plans(a: Any, req: HardwareRequest, device: Device, tp: int, limit: int, fmt: WeightFormat,
                   kv: str | None, price: float | None, owned: bool, energy: float, serving: ServeOptions | None,
                   budget: Budget, targets: Targets, asked: InferencePlan) -> list[InferencePlan]:
    """The plans of one device, split and format: one replica (or the replicas a rate needs), and for a deadline
    the replicas that meet it; none when the device cannot price the format."""
    try:
        one = _evaluate(a, req, device, 1, fmt, kv, price, owned, energy, serving, tp)
    except AffordError:  # the device cannot price this job (no peak for its format)
        return []
    counts = {one.replicas}
    if one.count > limit:
        one.fits = False  # the rate needs more devices than there are
    elif (serving is None or serving.rate is None) and budget.deadline_s is not None \
            and one.seconds > budget.deadline_s:
        # replicas share the samples; batches round up, so one more replica where the split is tight
        need = math.ceil(one.seconds / budget.deadline_s)
        counts |= {max(1, min(limit // tp, need)), max(1, min(limit // tp, need + 1))}
    out = []
    for count in sorted(counts):
        p = one if count == one.replicas else _evaluate(a, req, device, count, fmt, kv, price, owned, energy, tp=tp)
        p.violations = _violations(p, budget, targets)
        p.changes = _changes(p, asked)
        out.append(p)
    out.extend(_variants(a, req, device, out[0], fmt, kv, price, owned, energy, serving, budget, targets, asked))
    return out


def _variants(a: Any, req: HardwareRequest, device: Device, p: InferencePlan, fmt: WeightFormat, kv: str | None,
              price: float | None, owned: bool, energy: float, serving: ServeOptions | None, budget: Budget,
              targets: Targets, asked: InferencePlan) -> list[InferencePlan]:
    """The runtime and KV-cache changes worth pricing for a plan: CUDA graphs when its batches are host-bound
    under eager or compiled dispatch (a served rate already runs under graphs), and an FP8 KV cache for a
    generation job on an FP8 device when the plan does not fit or misses a latency target."""
    out = []
    rated = serving is not None and serving.rate is not None
    if p.host_bound and not rated and req.runtime is not Runtime.CUDAGRAPHS:
        out.append(_evaluate(a, req, device, p.replicas, fmt, kv, price, owned, energy, serving, p.tp,
                             Runtime.CUDAGRAPHS))
    late = LATENCY & set(p.violations)
    if a.generation is not None and kv != "fp8" and device.has_format("fp8") and (not p.fits or late):
        out.append(_evaluate(a, req, device, p.replicas, fmt, "fp8", price, owned, energy, serving, p.tp))
    if a.generation is None and not rated and device.kind == "gpu" and (p.host_bound or p.violations):
        other = _rebatched(a, device, p, fmt, targets)
        if other is not None:
            out.append(other)
    for v in out:
        v.violations = _violations(v, budget, targets)
        v.changes = _changes(v, asked)
    return out


def _rebatched(a: Any, device: Device, p: InferencePlan, fmt: WeightFormat, targets: Targets) -> InferencePlan | None:
    """The plan at the batch with the most samples per second that fits (within `max_latency` when given), from
    the batch curve (estimate/serving.py: the trace re-priced at that batch); None when it is the job's. Its time
    is the batches the samples need; its cost, energy and carbon scale with its device-seconds (the same average
    power: an approximation, stated in docs/inference.md)."""
    curve = batch_curve(a, device, fmt, Runtime(p.runtime), targets.max_latency, p.tp)
    best = curve.get("best_batch_for_latency") if targets.max_latency is not None else curve.get("max_throughput")
    if not best or best["batch_size"] == a.trace.batch_size:
        return None
    seconds = math.ceil((a.workload.infer_samples or 0) / (best["batch_size"] * p.replicas)) * best["latency_seconds"]
    share = seconds / p.seconds if p.seconds else 0.0
    return dataclasses.replace(
        p, batch_size=int(best["batch_size"]), seconds=seconds, latency_s=float(best["latency_seconds"]),
        per_device_bytes=float(best["per_device_bytes"]), fits=bool(best["fits"]),
        cost_usd=None if p.cost_usd is None else p.cost_usd * share, kwh=p.kwh * share, co2_kg=p.co2_kg * share,
        host_bound=bool(best["host_bound"]), violations=[], changes=[])


def _listed(feasible: list[InferencePlan], plans: list[InferencePlan]) -> list[InferencePlan]:
    """The plans worth showing: the cheapest and the lowest-latency feasible plans, then the cheapest feasible
    plan of each weight format; with none feasible, the cheapest plans that fit."""
    pool = feasible or [p for p in plans if p.fits]
    if not pool:
        return []
    out = [min(pool, key=lambda p: (p.cost_usd or 0.0, p.seconds)), min(pool, key=lambda p: p.latency_s)]
    for fmt in dict.fromkeys(p.weights for p in pool):
        out.append(min((p for p in pool if p.weights == fmt), key=lambda p: (p.cost_usd or 0.0, p.seconds)))
    unique: list[InferencePlan] = []
    for p in out:
        if all(p is not q for q in unique):
            unique.append(p)
    return unique[:8]
