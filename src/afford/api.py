"""The one pipeline: resolve -> trace -> estimate -> decide. `assess` is the friendly surface over it.

Layers below (sources, counting, estimate, decide) never import this module; it is the only place that calls
them in sequence, so a budget verdict reuses the trace the assessment made instead of tracing again.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

from afford import schema, tracecache
from afford.assess import MAX_DEPTH, Assessment, batch_note, job_dims, traced_assessment
from afford.bounds import whole
from afford.decide.budget import parse_available
from afford.decide.inference import Targets
from afford.decide.inference import decide as decide_inference
from afford.decide.run import make_budget, plan
from afford.errors import InputError, WorkloadError, opt
from afford.estimate.footprint import electricity_price
from afford.estimate.formats import inference_memory, weight_format
from afford.estimate.job import estimate
from afford.estimate.request import check_rates, load_catalog, request
from afford.estimate.serving import batch_curve, serve, serve_request
from afford.fusion import fuse_assessment
from afford.sources import resolve
from afford.workload import Task, Workload

__all__ = ["assess", "plan_job"]


def assess(model: Any, *, example_inputs: Any = None, **options: Any) -> Assessment:
    """Count compute and memory of `model` for a job, by tracing it on the meta device (no weights), and
    time and price it on `hardware` (default a100-80gb) x `count` devices under a parallel layout.

    `model` is a spec string (`torchvision:resnet50`, `timm:vit_base_patch16_224`, `hf:meta-llama/Llama-2-7b-hf`,
    a config.json path, `module:pkg.mod:fn`, a bare name) or an nn.Module (its weights are not copied).
    `task="generate"` with `prompt_tokens` P and `generate_tokens` G makes each of the `infer_samples` requests
    a prefill of P tokens and G cached decode steps. `model_options` size built-in specs (`recsys:dlrm`);
    pickled checkpoints are read only with `trust_pickle`.

    The options are `afford.JobRequest`'s fields (the command line's flags, with underscores): an unknown one is
    one error naming the closest. `example_inputs` feeds the model your inputs instead of the ones afford makes
    (needed for a module whose inputs cannot be guessed): a tensor, a tuple of tensors (positional arguments) or
    a dict of keyword tensors, on any device. They are a batch, the batch dimension first: only their shapes and
    dtypes are used, moved to meta, and the batch dimension is re-batched to `batch_size` (tensors whose first
    dimension differs from the first tensor's, such as a shared mask, are kept as given). Without them, a
    transformers PreTrainedModel gets token ids from its config (`main_input_name`, `vocab_size`, maximum
    positions) and other modules a guess.
    """
    r = schema.build("assess", options)
    catalog = load_catalog(r.hardware_file, r.host_profile)
    hardware, count, price_per_hour = r.hardware, r.count, r.price_per_hour
    if r.available and hardware is None:
        # the job as asked runs on the hardware the user owns
        owned = parse_available(r.available, catalog)[0]
        hardware, count = owned.device, count or owned.count
        owned_energy = price_per_hour is None
        price_per_hour = 0.0 if price_per_hour is None else price_per_hour
    else:
        owned_energy = False
    req = request(hardware=hardware, count=count, nodes=r.nodes, gpus_per_node=r.gpus_per_node,
                  parallel=r.parallel, tp=r.tp, pp=r.pp, grad_accum=r.grad_accum, price_per_hour=price_per_hour,
                  region=r.region, grid_gco2_kwh=r.grid_gco2_kwh, pue=r.pue, mfu=r.mfu, recompute=r.recompute,
                  catalog=catalog, runtime=r.runtime, attention=r.attention)
    fmt = weight_format(r.weights) if r.weights is not None else None  # checked before the trace
    if fmt is not None:
        req = replace(req, weights=fmt.id)
    if r.data_workers is not None:
        req = replace(req, data_workers=whole(r.data_workers, "data_workers", high=4096))
    check_rates(electricity_usd_kwh=r.electricity_usd_kwh)
    serve_options = serve_request(r.concurrency, r.rate, r.gpu_memory_utilization)  # checked before the trace
    limited = any(v is not None for v in (r.budget_usd, r.deadline, r.max_kwh, r.max_co2_kg))
    if limited:
        # the limits are checked now, before the trace (the plan builds the same Budget again)
        make_budget(budget_usd=r.budget_usd, deadline=r.deadline, max_kwh=r.max_kwh, max_co2_kg=r.max_co2_kg,
                    catalog=catalog)
    if owned_energy:
        req = replace(req, energy_usd_per_kwh=r.electricity_usd_kwh if r.electricity_usd_kwh is not None
                      else electricity_price())
    whole(r.depth, "depth", low=0, high=MAX_DEPTH, error=WorkloadError)
    workload = Workload.parse(train_samples=r.train_samples, epochs=r.epochs, train_tokens=r.train_tokens,
                              infer_samples=r.infer_samples, batch_size=r.batch_size, seq_len=r.seq_len,
                              image_size=r.image_size, precision=r.precision, optimizer=r.optimizer, freeze=r.freeze,
                              allow_longer=r.allow_longer, task=r.task, prompt_tokens=r.prompt_tokens,
                              generate_tokens=r.generate_tokens, eval_samples=r.eval_samples, amp=r.amp)
    if r.forward_only and workload.wants_training:
        raise WorkloadError(f"{opt('forward_only')} traces no training step: drop {opt('train_samples')}/"
                            f"{opt('train_tokens')}")
    flags = (r.trust_remote_code, r.allow_hub, r.trust_pickle, r.forward_only)
    cache_key = tracecache.key(model, workload, options=r.model_options, example_inputs=example_inputs,
                               flags=flags) if r.cache else None
    result = tracecache.get(cache_key, workload, r.depth)
    if result is None:
        result = _traced(model, workload, depth=r.depth, trust_remote_code=r.trust_remote_code,
                         allow_hub=r.allow_hub, model_options=r.model_options, trust_pickle=r.trust_pickle,
                         example_inputs=example_inputs, train=not r.forward_only)
        tracecache.put(cache_key, result)
    result = fuse_assessment(result, req.attention, req.device)  # eager attention as the kernel the job runs
    spec = result.spec
    oversized = batch_note(result)
    if oversized:
        result.notes.append(oversized)
    result.estimate = estimate(result, req)
    result.notes.extend(result.estimate.notes)
    if fmt is not None or r.kv_cache_dtype is not None:
        result.inference_memory = inference_memory(result, fmt or weight_format(workload.precision.dense_format),
                                                   r.kv_cache_dtype, req.device, tp=req.layout.tp)
    if result.generation is not None and req.device.kind == "gpu" and result.trace.generation is not None \
            and result.trace.generation.steps:
        result.serving = serve(result, req.device, fmt or weight_format(workload.precision.dense_format),
                               r.kv_cache_dtype, serve_options, req.price_per_hour, req.layout.tp)
    elif workload.infer_samples and result.generation is None and req.device.kind == "gpu" \
            and result.trace.infer is not None:
        result.serving = batch_curve(result, req.device, fmt or weight_format(workload.precision.dense_format),
                                     req.runtime, r.max_latency, req.layout.tp)
    if result.serving is not None and result.generation is not None:
        if r.rate is not None and result.serving.get("fits"):
            result.notes.append(
                f"served at {r.rate:,.3g} requests/s (serve.*): {result.serving['replicas_for_rate']:,} x "
                f"{req.device.id} under continuous batching; the time and cost above run the requests "
                f"{workload.batch_size} at a time, one batch after another")
    targets = Targets(max_latency=r.max_latency, ttft=r.ttft, tpot=r.tpot)
    if (limited or r.available or targets.any) and not workload.wants_training:
        if not (workload.infer_samples or workload.task is Task.GENERATE):
            raise WorkloadError(f"a budget verdict needs a job: give {opt('train_samples')} or "
                                f"{opt('train_tokens')} to train, or {opt('infer_samples')} to infer")
        # an inference job: its verdict and plans re-price this trace (decide/inference.py)
        budget = make_budget(budget_usd=r.budget_usd, deadline=r.deadline, max_kwh=r.max_kwh,
                             max_co2_kg=r.max_co2_kg, available=r.available, catalog=catalog)
        result.decision = decide_inference(result, req, budget, targets, catalog=catalog, weights=r.weights,
                                           kv_cache_dtype=r.kv_cache_dtype, max_count=r.max_count,
                                           electricity_usd_kwh=r.electricity_usd_kwh, owned_asked=owned_energy,
                                           serving=serve_options)
        result.notes.extend(result.decision.notes)
    elif limited or r.available or targets.any:
        # the resolved spec (its --model-option sizes and checkpoint checks) and this trace carry into the plans,
        # with every option of the request that the plan takes (the sizes are in the spec already)
        asked = {**schema.values(r, "plan"), "precision": workload.precision.value,
                 "optimizer": workload.optimizer.value, "freeze": workload.freeze, "model_options": None}
        result.decision = plan(spec, assessment=result, **asked)
        if workload.eval_samples:
            result.notes.append(f"the plans' times leave out the {opt('eval_samples')} passes that "
                                "time.train_seconds includes (time.eval_seconds)")
    return result


assess.__signature__ = schema.signature(  # type: ignore[attr-defined]
    "assess", [inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Any)],
    [inspect.Parameter("example_inputs", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Any)])


def _traced(model: Any, workload: Workload, *, depth: int, trust_remote_code: bool, allow_hub: bool,
            model_options: dict[str, Any] | None, trust_pickle: bool, example_inputs: Any,
            train: bool = True) -> Assessment:
    """Resolve, build and trace the model for the job (`train`: with a training step): the Assessment before any
    hardware is priced."""
    spec = resolve(model, trust_remote_code=trust_remote_code, allow_hub=allow_hub, options=model_options,
                   trust_pickle=trust_pickle, example_inputs=example_inputs)
    if spec.metadata.get("inference_only") and workload.wants_training:
        raise WorkloadError(f"{spec.name} is inference-only ({spec.metadata['inference_only']}); drop "
                            f"{opt('train_samples')}/{opt('train_tokens')} and ask for {opt('infer_samples')}")
    notes: list[str] = list(spec.metadata.get("notes", ()))  # a source's stated assumptions (recsys)
    dims = job_dims(spec, workload, notes)
    module = spec.build(workload.precision.compute_dtype, dims)
    if not train:
        notes.append(f"{opt('forward_only')}: no training step traced; backward FLOPs and training figures are "
                     "left out")
    return traced_assessment(spec, workload, dims, module, depth=depth, notes=notes, train=train)


def plan_job(model: Any, **options: Any) -> Any:
    """`afford plan`: a training job's plans (decide/run.plan, a PlanResult), or, for an inference job (only
    `infer_samples` or `task="generate"`, no training samples or tokens), the assessment with its inference verdict
    and plans (an Assessment: devices, replicas, weight formats, served at a `rate`). An inference plan needs a
    limit: a budget, a deadline, owned devices or a latency target."""
    r = schema.build("plan", options)
    inference = r.train_samples is None and r.train_tokens is None and (
        r.infer_samples is not None or str(r.task).lower() == "generate")
    if not inference:
        return plan(model, **options)
    if not any(v is not None for v in (r.budget_usd, r.deadline, r.max_kwh, r.max_co2_kg, r.available,
                                       r.max_latency, r.ttft, r.tpot)):
        raise InputError(f"plan needs a limit for an inference job: {opt('budget_usd')}, {opt('deadline')}, "
                         f"{opt('available')} or a latency target ({opt('max_latency')}, {opt('ttft')}, "
                         f"{opt('tpot')})")
    kwargs = schema.values(r, "assess")
    if str(kwargs.get("parallel")).lower() == "auto":  # plan's default; an inference job has no training layout
        kwargs.pop("parallel")
    return assess(model, **kwargs)


plan_job.__signature__ = schema.signature(  # type: ignore[attr-defined]
    "plan", [inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Any)])
