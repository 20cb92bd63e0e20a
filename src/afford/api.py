"""The one pipeline: resolve -> trace -> estimate -> decide. `assess` is the friendly surface over it.

Layers below (sources, counting, estimate, decide) never import this module; it is the only place that calls
them in sequence, so a budget verdict reuses the trace the assessment made instead of tracing again.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from afford import tracecache
from afford.assess import MAX_DEPTH, Assessment, batch_note, job_dims, traced_assessment
from afford.bounds import whole
from afford.decide.budget import parse_available
from afford.decide.run import make_budget, plan
from afford.errors import WorkloadError, opt
from afford.estimate.footprint import electricity_price
from afford.estimate.job import estimate
from afford.estimate.request import check_rates, request
from afford.hardware.catalog import Catalog
from afford.sources import resolve
from afford.workload import Optimizer, Precision, Task, Workload

__all__ = ["assess"]


def assess(model: Any, *, train_samples: int | None = None, epochs: float = 1, train_tokens: int | None = None,
           infer_samples: int | None = None, batch_size: int = 1, seq_len: int | None = None,
           image_size: int | None = None, precision: str | Precision = "fp32",
           optimizer: str | Optimizer = "adamw", freeze: tuple[str, ...] | list[str] = (), depth: int = 2,
           allow_longer: bool = False, trust_remote_code: bool = False, allow_hub: bool = False,
           hardware: str | None = None, count: int | None = None, nodes: int | None = None,
           gpus_per_node: int | None = None, parallel: str = "dp", tp: int = 1, pp: int = 1, grad_accum: int = 1,
           price_per_hour: float | None = None, region: str | None = None, grid_gco2_kwh: float | None = None,
           pue: float | None = None, mfu: float | None = None, recompute: bool = False,
           hardware_file: str | Path | None = None, budget_usd: float | None = None,
           deadline: str | float | None = None, max_kwh: float | None = None, max_co2_kg: float | None = None,
           available: str | None = None, electricity_usd_kwh: float | None = None, task: str | Task = "auto",
           prompt_tokens: int | None = None, generate_tokens: int | None = None,
           model_options: dict[str, Any] | None = None, trust_pickle: bool = False,
           example_inputs: Any = None) -> Assessment:
    """Count compute and memory of `model` for a job, by tracing it on the meta device (no weights), and
    time and price it on `hardware` (default a100-80gb) x `count` devices under a parallel layout.

    `model` is a spec string (`torchvision:resnet50`, `timm:vit_base_patch16_224`, `hf:meta-llama/Llama-2-7b-hf`,
    a config.json path, `module:pkg.mod:fn`, a bare name) or an nn.Module (its weights are not copied).
    `task="generate"` with `prompt_tokens` P and `generate_tokens` G makes each of the `infer_samples` requests
    a prefill of P tokens and G cached decode steps. `model_options` size built-in specs (`recsys:dlrm`);
    pickled checkpoints are read only with `trust_pickle`.

    `example_inputs` feeds the model your inputs instead of the ones afford makes (needed for a module whose
    inputs cannot be guessed): a tensor, a tuple of tensors (positional arguments) or a dict of keyword tensors,
    on any device. They are a batch, the batch dimension first: only their shapes and dtypes are used, moved to
    meta, and the batch dimension is re-batched to `batch_size` (tensors whose first dimension differs from the
    first tensor's, such as a shared mask, are kept as given). Without them, a transformers PreTrainedModel gets
    token ids from its config (`main_input_name`, `vocab_size`, maximum positions) and other modules a guess.
    """
    catalog = Catalog.load(Path(hardware_file) if hardware_file else None)
    if available and hardware is None:
        # the job as asked runs on the hardware the user owns
        owned = parse_available(available, catalog)[0]
        hardware, count = owned.device, count or owned.count
        owned_energy = price_per_hour is None
        price_per_hour = 0.0 if price_per_hour is None else price_per_hour
    else:
        owned_energy = False
    req = request(hardware=hardware, count=count, nodes=nodes, gpus_per_node=gpus_per_node, parallel=parallel,
                  tp=tp, pp=pp, grad_accum=grad_accum, price_per_hour=price_per_hour, region=region,
                  grid_gco2_kwh=grid_gco2_kwh, pue=pue, mfu=mfu, recompute=recompute, catalog=catalog)
    check_rates(electricity_usd_kwh=electricity_usd_kwh)
    if any(v is not None for v in (budget_usd, deadline, max_kwh, max_co2_kg)):
        # the limits are checked now, before the trace (the plan builds the same Budget again)
        make_budget(budget_usd=budget_usd, deadline=deadline, max_kwh=max_kwh, max_co2_kg=max_co2_kg,
                    catalog=catalog)
    if owned_energy:
        req = replace(req, energy_usd_per_kwh=electricity_usd_kwh if electricity_usd_kwh is not None
                      else electricity_price())
    whole(depth, "depth", low=0, high=MAX_DEPTH, error=WorkloadError)
    workload = Workload.parse(train_samples=train_samples, epochs=epochs, train_tokens=train_tokens,
                              infer_samples=infer_samples, batch_size=batch_size, seq_len=seq_len,
                              image_size=image_size, precision=precision, optimizer=optimizer, freeze=freeze,
                              allow_longer=allow_longer, task=task, prompt_tokens=prompt_tokens,
                              generate_tokens=generate_tokens)
    cache_key = tracecache.key(model, workload, options=model_options, example_inputs=example_inputs,
                               flags=(trust_remote_code, allow_hub, trust_pickle))
    result = tracecache.get(cache_key, workload, depth)
    if result is None:
        result = _traced(model, workload, depth=depth, trust_remote_code=trust_remote_code, allow_hub=allow_hub,
                         model_options=model_options, trust_pickle=trust_pickle, example_inputs=example_inputs)
        tracecache.put(cache_key, result)
    spec = result.spec
    oversized = batch_note(result)
    if oversized:
        result.notes.append(oversized)
    result.estimate = estimate(result, req)
    result.notes.extend(result.estimate.notes)
    if any(v is not None for v in (budget_usd, deadline, max_kwh, max_co2_kg, available)):
        if not workload.wants_training:
            raise WorkloadError(f"a budget verdict needs a training job: give {opt('train_samples')} or "
                                f"{opt('train_tokens')}")
        # the resolved spec (its --model-option sizes and checkpoint checks) and this trace carry into the plans
        result.decision = plan(spec, assessment=result, train_samples=train_samples, epochs=epochs,
                               train_tokens=train_tokens,
                               batch_size=batch_size, seq_len=seq_len, image_size=image_size,
                               precision=workload.precision.value, optimizer=workload.optimizer.value,
                               freeze=workload.freeze, hardware=hardware, count=count, budget_usd=budget_usd,
                               deadline=deadline, max_kwh=max_kwh, max_co2_kg=max_co2_kg, available=available,
                               electricity_usd_kwh=electricity_usd_kwh, region=region, pue=pue,
                               price_per_hour=price_per_hour, hardware_file=hardware_file,
                               trust_remote_code=trust_remote_code, allow_longer=allow_longer)
    return result


def _traced(model: Any, workload: Workload, *, depth: int, trust_remote_code: bool, allow_hub: bool,
            model_options: dict[str, Any] | None, trust_pickle: bool, example_inputs: Any) -> Assessment:
    """Resolve, build and trace the model for the job: the Assessment before any hardware is priced."""
    spec = resolve(model, trust_remote_code=trust_remote_code, allow_hub=allow_hub, options=model_options,
                   trust_pickle=trust_pickle, example_inputs=example_inputs)
    if spec.metadata.get("inference_only") and workload.wants_training:
        raise WorkloadError(f"{spec.name} is inference-only ({spec.metadata['inference_only']}); drop "
                            f"{opt('train_samples')}/{opt('train_tokens')} and ask for {opt('infer_samples')}")
    notes: list[str] = list(spec.metadata.get("notes", ()))  # a source's stated assumptions (recsys)
    dims = job_dims(spec, workload, notes)
    module = spec.build(workload.precision.compute_dtype, dims)
    return traced_assessment(spec, workload, dims, module, depth=depth, notes=notes)
