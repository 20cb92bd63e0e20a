"""The serving model for causal LMs (issue 11 item 3): a vLLM-style engine on one replica (the whole model on one
device, or split over `tp` devices: estimate/sharding.py), priced from the trace of one generation request batch,
never traced again.

- **KV capacity (paged).** The engine takes `gpu_memory_utilization` of the device's memory; from it go the weights
  in their format, the activations of one profiling batch of `max_batched_tokens` tokens and afford's runtime
  reserve. What is left holds KV blocks of `block_size` tokens: the maximum concurrency at P + G tokens a request
  (each request rounds up to whole blocks) and the longest context one request can have. Under tensor
  parallelism each device gives its memory to 1/tp of the weights and activations and holds its key/value heads'
  share of every block.
- **Step time at batch b.** The traced decode steps (batch B, at their contexts) are re-priced at b sequences:
  every event's FLOPs and bytes scale by b / B except the weight bytes a linear layer reads once per step
  (`formats.linear_shape`), so a step goes from memory-bound (weights) to compute-bound as b grows. Decode runs
  under CUDA graphs, as vLLM captures them by default. The prefill is re-priced the same way; its cost per prompt
  token is the difference of two large prefill batches (its weight reads shared with the decode batch it rides
  along, as chunked prefill runs).
- **Continuous batching.** At concurrency c an engine iteration decodes one token for each of c requests and, in
  the steady state, prefills c x P / G prompt tokens: T(c) = decode(c) + c x P / G x prefill per token. Output
  throughput c / T(c); TPOT T(c); TTFT the prompt's own prefill plus one decode iteration of the batch it joins.
  Max load is c = min(KV concurrency, `max_num_seqs`). For a rate R: ceil(R / max-load requests/s) replicas, each
  at the smallest concurrency whose requests/s meets its share of R (`at_rate`).

Every constant is cited in `DEFAULTS`; docs/inference.md derives the figures. Time figures carry the system
efficiency's range (`*_range`). Not modelled: pipeline-parallel serving, prefix caching, speculative decoding,
preemption and queueing delay under a rate near capacity.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from afford import bounds as b
from afford.counting import convkind
from afford.counting.profile import GenerationProfile, PhaseProfile
from afford.errors import InputError, opt
from afford.estimate import formats
from afford.estimate.job import phase_wall
from afford.estimate.parallel import RESERVED_BYTES
from afford.estimate.runtime import Runtime, wall
from afford.estimate.sharding import NO_SPLIT, TensorSplit, tensor_split
from afford.estimate.timing import Efficiency
from afford.hardware.catalog import Device

VLLM_ARGS = "vLLM engine arguments (docs.vllm.ai/en/v0.5.3/models/engine_args.html)"
DEFAULTS: dict[str, tuple[float, str]] = {
    "gpu_memory_utilization": (0.9, f"{VLLM_ARGS}: --gpu-memory-utilization, default 0.9"),
    "block_size": (16, f"{VLLM_ARGS}: --block-size {{8,16,32}}, default 16"),
    "max_num_seqs": (256, f"{VLLM_ARGS}: --max-num-seqs, default 256"),
    "max_batched_tokens": (8192, "afford's choice for the profiling batch and the prefill chunk: the throughput "
                                 "end (8192) of the max_num_batched_tokens range vLLM's tuning guides give "
                                 "(about 2048 for latency, 8192 and up for throughput); docs/inference.md"),
}


@dataclass(frozen=True)
class ServeOptions:
    """What the serving figures are asked for: a concurrency (default: the maximum load) and a request rate."""

    concurrency: int | None = None
    rate: float | None = None
    gpu_memory_utilization: float = DEFAULTS["gpu_memory_utilization"][0]
    block_size: int = int(DEFAULTS["block_size"][0])


def serve_request(concurrency: int | None, rate: float | None, gpu_memory_utilization: float) -> ServeOptions:
    """The serving options, checked: a whole concurrency of 1 to 1,000,000, a positive finite rate, a utilisation
    in (0, 1]; one-line InputError naming the option otherwise."""
    if concurrency is not None:
        b.whole(concurrency, "concurrency", high=1_000_000)
    if rate is not None:
        b.real(rate, "rate", high=1e9, open_low=True, unit=" requests per second")
    b.real(gpu_memory_utilization, "gpu_memory_utilization", high=1.0, open_low=True)
    return ServeOptions(concurrency=concurrency, rate=rate, gpu_memory_utilization=gpu_memory_utilization)


def event_weights(phase: PhaseProfile, trace: Any) -> dict[tuple[str, Any, Any], float]:
    """The weight bytes each event of `phase` reads (linear layers, convolutions, expert stacks; 0 for the rest)."""
    itemsize = trace.weights_bytes / trace.params if trace.params else 2
    shapes = {(fi, fo) for _, fi, fo in trace.linear_params}
    if trace.output_param is not None:  # a head tied to the token embedding is no nn.Linear of its own
        head = trace.param_shapes[trace.output_param][0]
        if len(head) == 2:
            shapes.add((int(head[1]), int(head[0])))
    kernels = {tuple(shape) for shape, _ in trace.param_shapes if len(shape) >= 3}  # convolutions, expert stacks
    out = {}
    for op, flops, nbytes in phase.events:
        shape = formats.linear_shape(op, flops, nbytes, shapes, itemsize)
        stack = formats.expert_stack(op, flops, nbytes, kernels, itemsize)
        out[(op, flops, nbytes)] = (itemsize * shape[0] * shape[1] if shape else
                                    _conv_weight(op, flops, nbytes, kernels, itemsize)
                                    or (itemsize * math.prod(stack) if stack else 0.0))
    return out


def scaled(phase: PhaseProfile, trace: Any, k: float,
           weights: dict[tuple[str, Any, Any], float] | None = None) -> PhaseProfile:
    """`phase` as if it ran k times the traced batch: FLOPs and bytes times k, except the weight bytes of each linear
    layer's matmul (the output head too, tied or not) and of each convolution, read once per step whatever the
    batch."""
    weights = event_weights(phase, trace) if weights is None else weights
    events: dict[tuple[str, Any, Any], int] = {}
    keys: dict[tuple[str, Any, Any], tuple[str, Any, Any]] = {}
    for (op, flops, nbytes), calls in phase.events.items():
        weight = weights.get((op, flops, nbytes), 0.0)
        key = keys[(op, flops, nbytes)] = (op, flops * k, weight + (nbytes - weight) * k)
        events[key] = events.get(key, 0) + calls
    # a per-thread loop over the batch (counting/serial.py) and a norm's rows (counting/rowblocks.py) grow with it
    serial = {keys[key]: round(loop * k) for key, loop in phase.serial.items() if key in keys}
    rows = {keys[key]: round(n * k) for key, n in phase.row_blocks.items() if key in keys}
    return dataclasses.replace(phase, events=events, serial=serial, row_blocks=rows)


def _conv_weight(op: str, flops: float, nbytes: float, kernels: set[tuple[int, ...]], itemsize: float) -> float:
    """The weight bytes of a traced convolution event, 0 for any other event. A kernel shape (out, in / groups,
    k...) is the event's when its size divides the FLOPs (2 x output positions x kernel size) and the bytes left
    for the input, against the output's (out x positions), give in / out x (input / output positions) with an
    input-to-output position ratio of 1, 2, 4 or 8 (strides 1 and 2, padded) for some power-of-two group count
    (or one group per output channel). A convolution no kernel fits this way (unpadded, odd strides) counts none:
    its weight then scales with the batch, an overestimate of its bytes."""
    if op not in convkind.FORWARD or not flops:  # dense, depthwise and grouped forward convolutions
        return 0.0
    for shape in sorted(kernels, key=math.prod):
        size = math.prod(shape)
        positions, rest = divmod(int(flops), 2 * size)
        if not positions or rest:
            continue
        out_bytes = itemsize * shape[0] * positions
        for bias in (0.0, itemsize * shape[0]):
            in_bytes = nbytes - itemsize * size - out_bytes - bias
            if in_bytes <= 0:
                continue
            q = in_bytes / out_bytes * shape[0] / shape[1]  # groups x (input / output positions)
            for r in (1, 2, 4, 8):
                g = round(q / r)
                if g >= 1 and abs(q / g - r) <= 0.01 * r and (g == shape[0] or not g & (g - 1)):
                    return itemsize * size
    return 0.0


class _Pricer:
    """Wall seconds of a traced phase re-priced at k times its batch, in the job's weight format and runtime."""

    def __init__(self, a: Any, device: Device, fmt: formats.WeightFormat, kv_dtype: str | None = None,
                 split: TensorSplit = NO_SPLIT, engine: bool = False) -> None:
        self.a, self.device, self.fmt, self.split = a, device, fmt, split
        self.eff = Efficiency.for_device(device)
        if engine:  # a serving engine runs its own attention kernels, not PyTorch's (efficiency.toml [attention])
            self.eff = dataclasses.replace(self.eff, attention=None)
        traced = a.workload.precision.compute_dtype.itemsize
        self.act = fmt.dense_bytes / traced
        # attention reads the KV cache in its own dtype (--kv-cache-dtype fp8 halves 16-bit reads)
        self.kv = formats.KV_DTYPES[kv_dtype] / (traced * self.act) if kv_dtype in formats.KV_DTYPES else 1.0
        self.precision = formats.compute_precision(fmt, a.workload.precision.value)
        self.meta = {**a.spec.metadata, "params": a.trace.params}
        self.mixed = a.workload.precision.value.endswith("-mixed")
        self._weights: dict[int, dict[tuple[str, Any, Any], float]] = {}  # per traced phase (id): weight bytes

    def seconds(self, phase: PhaseProfile, k: float, runtime: Runtime, tokens: float = 0.0) -> float:
        """One execution of `phase` at k times its traced batch (`timed`, its wall seconds alone)."""
        return self.timed(phase, k, runtime, tokens)[0]

    def timed(self, phase: PhaseProfile, k: float, runtime: Runtime, tokens: float = 0.0) -> tuple[float, bool]:
        """One execution of `phase` at k times its traced batch (of `tokens` tokens, for the tensor-parallel
        all-reduces): the longer of its kernels and its host time, and whether the host's time is the longer."""
        weights = self._weights.get(id(phase))
        if weights is None:
            weights = self._weights[id(phase)] = event_weights(phase, self.a.trace)

        def view(traced: PhaseProfile) -> PhaseProfile:
            """The phase at k times its batch, its weights in the format, its KV reads in the KV dtype."""
            p = formats.reweighted(scaled(traced, self.a.trace, k, weights), self.a.trace, self.fmt, self.meta,
                                   self.act)
            if self.kv == 1.0:
                return p
            events: dict[tuple[str, Any, Any], int] = {}
            for (op, f, nb), c in p.events.items():
                key = (op, f, nb * self.kv if "attention" in op else nb)
                events[key] = events.get(key, 0) + c
            return dataclasses.replace(p, events=events)

        kernels, _, ov = phase_wall(phase, self.device, self.eff, self.precision, runtime, self.mixed, view,
                                    self.act, self.split, k * tokens)
        return wall(kernels, ov), ov.host_s > kernels + ov.gap_s

    def decode(self, gen: GenerationProfile, k: float) -> float:
        """Mean seconds of one decode step over the request's contexts, at k times the traced batch."""
        total = sum(float(w) for _, w in gen.steps.values())
        b = self.a.trace.batch_size
        return sum(float(w) * self.seconds(p, k, Runtime.CUDAGRAPHS, b) for p, w in gen.steps.values()) / total


def serve(a: Any, device: Device, fmt: formats.WeightFormat, kv_dtype: str | None, options: ServeOptions,
          price_per_hour: float | None, tp: int = 1) -> dict[str, Any]:
    """The serving figures (JSON `serve`) of a generation job on one replica of `device` with `fmt` weights, split
    over `tp` devices (`price_per_hour` is one device's)."""
    gen: GenerationProfile | None = a.trace.generation
    if gen is None or not gen.steps:
        raise InputError(f"the serving figures need {opt('task')} generate with {opt('generate_tokens')} of 2 or more")
    b_traced = a.trace.batch_size
    p_tok, g_tok = gen.prompt_tokens, gen.generate_tokens
    util, block = options.gpu_memory_utilization, options.block_size
    mem = formats.inference_memory(a, fmt, kv_dtype, device, tp)
    split = tensor_split(a, device, tp, fmt.dense_bytes)
    traced_kv = formats.KV_DTYPES.get(mem["kv_cache_dtype"], 2) / a.workload.precision.compute_dtype.itemsize
    kv_per_token = gen.kv_cache_bytes / max(1, gen.kv_cache_tokens * b_traced) * traced_kv * split.kv_share
    chunk = int(DEFAULTS["max_batched_tokens"][0])
    prefill_live = max(0.0, gen.prefill.peak_live_bytes - gen.kv_cache_bytes * p_tok / max(1, gen.kv_cache_tokens))
    activations = prefill_live * mem["activations_scale"] / (p_tok * b_traced) * chunk / tp
    weights = mem["weights_bytes"] / tp + mem["dequant_workspace_bytes"]
    kv_bytes = util * device.memory_bytes - weights - activations - RESERVED_BYTES
    blocks = max(0, math.floor(kv_bytes / (block * kv_per_token))) if kv_per_token else 0
    per_request = math.ceil((p_tok + g_tok) / block)
    max_seqs = int(DEFAULTS["max_num_seqs"][0])
    # a model that caches nothing per token (no KV cache) is bounded by the memory left at all, then max_num_seqs
    kv_concurrency = blocks // per_request if kv_per_token else (max_seqs if kv_bytes > 0 else 0)
    out: dict[str, Any] = {
        "device": device.id, "tp": tp, "weights": fmt.id, "kv_cache_dtype": mem["kv_cache_dtype"],
        "prompt_tokens": p_tok, "generate_tokens": g_tok, "gpu_memory_utilization": util, "block_size": block,
        "weights_bytes": weights, "activations_reserve_bytes": activations, "runtime_reserve_bytes": RESERVED_BYTES,
        "kv_cache_bytes": max(0.0, kv_bytes), "kv_bytes_per_token": kv_per_token, "kv_blocks": blocks,
        "kv_tokens": blocks * block, "kv_cache_capacity_tokens": blocks * block,
        "max_concurrency_kv": kv_concurrency, "max_num_seqs": max_seqs,
        "longest_context_tokens": min(blocks * block, a.spec.max_seq_len or blocks * block),
        "fits": kv_concurrency >= 1, "sources": {k: v[1] for k, v in DEFAULTS.items()},
    }
    if kv_concurrency < 1:
        out["reason"] = (f"no request of {p_tok + g_tok:,} tokens fits: {max(0.0, kv_bytes) / 2**30:,.2f} GiB "
                         f"is left for the KV cache at {util:.0%} of {device.memory_bytes / 2**30:,.0f} GiB" +
                         (f" on each of {tp} devices" if tp > 1 else ""))
        out.update(max_concurrency=0, max_context_tokens=out["longest_context_tokens"], replicas=0)
        return out
    pricer = _Pricer(a, device, fmt, kv_dtype, split, engine=True)
    # prefill cost per prompt token when it rides along a decode batch: two large prefills, weights read in both
    big = max(1.0, chunk / (p_tok * b_traced))
    traced_tokens = p_tok * b_traced
    per_prompt_token = ((pricer.seconds(gen.prefill, 2 * big, Runtime.CUDAGRAPHS, traced_tokens)
                         - pricer.seconds(gen.prefill, big, Runtime.CUDAGRAPHS, traced_tokens)) / (big * traced_tokens))
    alone = pricer.seconds(gen.prefill, 1.0 / b_traced, Runtime.CUDAGRAPHS, traced_tokens)  # one request's prompt

    def at(c: int) -> dict[str, float]:
        step = pricer.decode(gen, c / b_traced) + c * p_tok / g_tok * per_prompt_token
        tps = c / step
        return {"concurrency": c, "tpot_seconds": step, "ttft_seconds": alone + step,
                "output_tokens_per_second": tps, "total_tokens_per_second": tps * (p_tok + g_tok) / g_tok,
                "requests_per_second": tps / g_tok}

    max_load = at(min(kv_concurrency, max_seqs))
    out["max_load"] = max_load
    # the curve the report plots: powers of two up to the maximum load, with the KV bytes each concurrency holds
    top = int(max_load["concurrency"])
    levels = sorted({*(2**i for i in range(top.bit_length()) if 2**i <= top), top})
    out["curve"] = [{**at(c), "kv_cache_bytes": c * per_request * block * kv_per_token} for c in levels]
    out["limited_by"] = "kv_cache" if kv_concurrency < max_seqs else "max_num_seqs"
    if options.concurrency is not None:
        if options.concurrency > kv_concurrency:
            out["note"] = (f"{opt('concurrency')} {options.concurrency} exceeds the {kv_concurrency} requests the KV "
                           "cache holds; the engine would queue or preempt the rest")
        out["at_concurrency"] = at(min(options.concurrency, kv_concurrency))
    if price_per_hour:
        share = (p_tok * per_prompt_token * max_load["concurrency"] / g_tok) / max_load["tpot_seconds"]
        usd_s = price_per_hour * tp / 3600
        out["usd_per_million_output_tokens"] = usd_s * (1 - share) / max_load["output_tokens_per_second"] * 1e6
        out["usd_per_million_input_tokens"] = (usd_s * share / (max_load["output_tokens_per_second"] * p_tok / g_tok)
                                               * 1e6)
        out["cost_split"] = "the hour's price split by the share of each iteration spent on prompt tokens"
    if options.rate is not None:
        replicas = math.ceil(options.rate / max_load["requests_per_second"])
        load = options.rate / replicas
        # the fewest requests in flight per replica that serve its share of the rate (throughput grows with them)
        low, high = 1, int(max_load["concurrency"])
        while low < high:
            mid = (low + high) // 2
            low, high = (mid + 1, high) if at(mid)["requests_per_second"] < load else (low, mid)
        out.update(rate_requests_per_second=options.rate, replicas_for_rate=replicas, devices_for_rate=replicas * tp,
                   at_rate=at(low))
    _headline(out, pricer.eff.spread())
    return out


def _headline(out: dict[str, Any], spread: tuple[float, float]) -> None:
    """The stable top-level `serve.*` keys (issue 11): capacity, max-load throughput, TTFT and TPOT of the load
    asked (a rate, else a concurrency, else the maximum load), replicas, and a `*_range` for each time and cost
    from the system efficiency's range."""
    lo, hi = spread
    load = out.get("at_rate") or out.get("at_concurrency") or out["max_load"]
    tps = out["max_load"]["output_tokens_per_second"]
    out.update(max_concurrency=out["max_load"]["concurrency"], max_context_tokens=out["longest_context_tokens"],
               throughput_output_tokens_per_s=tps, throughput_output_tokens_per_s_range=[tps / hi, tps / lo],
               ttft_seconds=load["ttft_seconds"], ttft_seconds_range=[load["ttft_seconds"] * lo,
                                                                      load["ttft_seconds"] * hi],
               tpot_seconds=load["tpot_seconds"], tpot_seconds_range=[load["tpot_seconds"] * lo,
                                                                      load["tpot_seconds"] * hi],
               replicas=out.get("replicas_for_rate", 1))
    for key in ("usd_per_million_output_tokens", "usd_per_million_input_tokens"):
        if out.get(key) is not None:
            out[f"{key}_range"] = [out[key] * lo, out[key] * hi]


BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def batch_curve(a: Any, device: Device, fmt: formats.WeightFormat, runtime: Runtime,
                max_latency: float | None, tp: int = 1) -> dict[str, Any]:
    """Latency and throughput of an inference batch against its size (JSON `serve` of a non-generation job): the
    traced batch re-priced at 1 to 1,024 samples (`scaled`), each under the job's runtime with its fixed cost per
    step, and its memory (the activations scale with the batch), split over `tp` devices for a transformer; with
    `max_latency`, the largest batch within it."""
    from afford.estimate.runtime import step_fixed_seconds

    mem = formats.inference_memory(a, fmt, None, device, tp)
    base = mem["infer_peak_bytes"] - mem["weights_bytes"] / tp - mem["dequant_workspace_bytes"]
    pricer = _Pricer(a, device, fmt, split=tensor_split(a, device, tp, fmt.dense_bytes))
    b_traced, tokens = a.trace.batch_size, a.trace.batch_size * (a.dims.seq_len or 1)
    fixed = step_fixed_seconds(device)
    rows = []
    for size in sorted({*BATCHES, b_traced}):
        issued, host_bound = pricer.timed(a.trace.infer, size / b_traced, runtime, tokens)
        latency = issued + fixed
        need = mem["infer_peak_bytes"] + base * (size / b_traced - 1)
        rows.append({"batch_size": size, "latency_seconds": latency, "samples_per_second": size / latency,
                     "per_device_bytes": need, "fits": need <= mem["device_usable_bytes"],
                     "host_bound": host_bound})
    out: dict[str, Any] = {"device": device.id, "tp": tp, "weights": fmt.id, "runtime": runtime.value,
                           "batches": rows}
    fitting = [r for r in rows if r["fits"]]
    if fitting:
        out["max_throughput"] = max(fitting, key=lambda r: r["samples_per_second"])
    if max_latency is not None:
        within = [r for r in fitting if r["latency_seconds"] <= max_latency]
        out["max_latency_seconds"] = max_latency
        out["best_batch_for_latency"] = max(within, key=lambda r: r["samples_per_second"]) if within else None
    return out
