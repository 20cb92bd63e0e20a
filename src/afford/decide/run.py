"""`afford.plan`: the verdict for a job and budget, with the plans that make it affordable."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from afford import bounds as b
from afford import schema
from afford.assess import Assessment, batch_note
from afford.decide.budget import Budget, deadline_seconds, parse_available, parse_duration
from afford.decide.planner import Plan, PlanSearch, Strategy, Variant, evaluate, search, variants
from afford.decide.verdict import Verdict, decide
from afford.errors import InputError, opt
from afford.estimate import footprint as fp
from afford.estimate.request import check_rates, load_catalog, request
from afford.fusion import fuse_assessment
from afford.hardware.catalog import Catalog
from afford.workload import Workload

MAX_LORA_RANK = 65536


@dataclass
class PlanResult:
    """The verdict, the job as asked, and the plans searched (cheapest, fastest, Pareto, best per adapter)."""

    verdict: Verdict
    asked: Plan
    found: PlanSearch
    model: dict[str, Any]
    budget: Budget
    notes: list[str] = field(default_factory=list)

    def listed(self) -> list[Plan]:
        """The plans worth showing: the Pareto set, then the best plan of each adapter, without repeats."""
        out: list[Plan] = []
        for p in [*self.found.pareto, *self.found.by_adapter.values()]:
            if all(p is not q for q in out):
                out.append(p)
        return out

    def device_ids(self) -> list[str]:
        """The devices of the listed plans, each once (the report's provenance lists them)."""
        return list(dict.fromkeys(p.strategy.device for p in self.listed()))

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "verdict": self.verdict.to_dict(), "asked": self.asked.to_dict(),
                "plans": [p.to_dict() for p in self.listed()],
                "cheapest": self.found.cheapest.to_dict() if self.found.cheapest else None,
                "fastest": self.found.fastest.to_dict() if self.found.fastest else None,
                "searched": len(self.found.plans), "notes": self.notes + self.found.notes}

    def to_json(self, indent: int | None = 2) -> str:
        """The CLI's `--json` object as strict JSON text (`to_dict()` through the CLI's one serializer)."""
        from afford.display import dumps

        return dumps(self.to_dict(), indent)

    def __repr__(self) -> str:
        """The terminal's one screen as plain text (drawn by report/); one line if drawing it fails."""
        from afford.display import screen

        return screen(self, lambda: f"<PlanResult {self.model.get('name')}: {self.verdict.status.value}>")

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: the same page as `--report PATH.html`, without the page chrome."""
        from afford.display import render

        return str(render("repr_html", self))

    def to_dataframe(self) -> Any:
        """A pandas DataFrame of the result's rows (pandas is optional: `pip install afford[notebook]`)."""
        from afford.display import render

        return render("to_dataframe", self)


def make_budget(*, budget_usd: float | None = None, deadline: str | float | None = None,
                max_kwh: float | None = None, max_co2_kg: float | None = None, available: str | None = None,
                catalog: Catalog) -> Budget:
    """The Budget of a job: a deadline as a duration string ('36h') or seconds; every figure checked there."""
    seconds = None if deadline is None else (parse_duration(deadline) if isinstance(deadline, str)
                                              else deadline_seconds(deadline, deadline))
    owned = tuple(parse_available(available, catalog)) if available else ()
    return Budget(usd=budget_usd, deadline_s=seconds, max_kwh=max_kwh, max_co2_kg=max_co2_kg, available=owned)


def plan(model: Any, *, assessment: Assessment | None = None,
         adapters: tuple[str, ...] = ("full", "lora", "qlora"), **options: Any) -> PlanResult:
    """Is the training job affordable within the budget, and if not, the cheapest way it becomes so.

    The options are `afford.JobRequest`'s fields that `plan` takes (schema.names("plan")): the job as asked is
    priced with its layout (`parallel="auto"`: dp on one device, else fsdp), rates, grid and a fixed `mfu`, and
    the search with the same rates, grid and MFU. `assessment`, an Assessment of this model and job already
    traced (its training step), is reused as the plan of the model as asked instead of tracing it again;
    adapters (LoRA) are other graphs and are traced."""
    from afford.sources import resolve

    r = schema.build("plan", options)
    catalog = load_catalog(r.hardware_file, r.host_profile)
    budget = make_budget(budget_usd=r.budget_usd, deadline=r.deadline, max_kwh=r.max_kwh, max_co2_kg=r.max_co2_kg,
                         available=r.available, catalog=catalog)
    check_rates(electricity_usd_kwh=r.electricity_usd_kwh)
    b.whole(r.lora_rank, "lora_rank", high=MAX_LORA_RANK)
    b.whole(r.max_count, "max_count", high=b.MAX_DEVICES)
    # the job as asked: the named device, else the first the user owns, else the default; validated as assess does
    first_owned = budget.available[0] if budget.available and r.hardware is None else None
    auto = str(r.parallel).lower() == "auto"
    req = request(hardware=r.hardware or (first_owned.device if first_owned else None),
                  count=r.count or (first_owned.count if first_owned and r.nodes is None else None), nodes=r.nodes,
                  gpus_per_node=r.gpus_per_node, parallel="dp" if auto else r.parallel, tp=r.tp, pp=r.pp,
                  grad_accum=r.grad_accum, price_per_hour=r.price_per_hour, region=r.region,
                  grid_gco2_kwh=r.grid_gco2_kwh, pue=r.pue, mfu=r.mfu, recompute=r.recompute, catalog=catalog,
                  runtime=r.runtime, attention=r.attention)
    workload = Workload.parse(train_samples=r.train_samples, epochs=r.epochs, train_tokens=r.train_tokens,
                              batch_size=r.batch_size, seq_len=r.seq_len, image_size=r.image_size,
                              precision=r.precision, optimizer=r.optimizer, freeze=r.freeze,
                              allow_longer=r.allow_longer, amp=r.amp)
    if not workload.wants_training:
        raise InputError(f"plan needs a training job: give {opt('train_samples')} (and {opt('epochs')}) or "
                         f"{opt('train_tokens')}")
    model = resolve(model, trust_remote_code=r.trust_remote_code, allow_hub=r.allow_hub, options=r.model_options,
                    trust_pickle=r.trust_pickle)
    vs = variants(model, workload, adapters=adapters, lora_rank=r.lora_rank, trust_remote_code=r.trust_remote_code,
                  traced=assessment)
    for v in vs:  # eager attention priced as the kernel the job runs (estimate/attention.py)
        v.a = fuse_assessment(v.a, req.attention, req.device)
    full = next(v for v in vs if v.name == "full")
    device, lay = req.device, req.layout
    owned = first_owned is not None or any(o.device == device.id for o in budget.available)
    asked_strategy = Strategy(device=device.id, count=lay.count, precision=workload.precision.value,
                              optimizer=workload.optimizer.value, micro_batch=r.batch_size,
                              parallel=("dp" if lay.count == 1 else "fsdp") if auto else lay.parallel.value,
                              tp=lay.tp, pp=lay.pp, grad_accum=lay.grad_accum, recompute=r.recompute, owned=owned)
    notes: list[str] = [n for n in (batch_note(full.a),) if n]
    price = r.price_per_hour if r.price_per_hour is not None else (0.0 if owned else device.price_usd_per_hour)
    samples = full.a.train_samples_total
    asked = evaluate(full, device, asked_strategy, samples, price=price, grid=req.grid, pue=req.pue, notes=notes,
                     mfu=r.mfu, runtime=req.runtime)
    if owned:
        asked.cost_usd = (asked.cost_usd or 0.0) + asked.kwh * (
            r.electricity_usd_kwh if r.electricity_usd_kwh is not None else fp.electricity_price())
    found = search(vs, budget, catalog=catalog, max_count=r.max_count, electricity_usd_kwh=r.electricity_usd_kwh,
                   region=r.region, grid_gco2_kwh=r.grid_gco2_kwh, pue=r.pue, price_per_hour=r.price_per_hour,
                   mfu=r.mfu, runtime=req.runtime)
    trainable = {v.name: (v.trainable, v.params) for v in vs}
    verdict = decide(asked, device.name, budget, found, trainable)
    model_info = {"name": full.a.spec.name, "params": full.params, "seq_len": full.a.dims.seq_len,
                  "train_samples": samples, "variants": {v.name: {"trainable_params": v.trainable,
                                                                    "weights_bytes": v.weights_bytes}
                                                           for v in vs}}
    return PlanResult(verdict=verdict, asked=asked, found=found, model=model_info, budget=budget, notes=notes)


plan.__signature__ = schema.signature(  # type: ignore[attr-defined]
    "plan", [inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Any)],
    [inspect.Parameter("assessment", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Assessment | None),
     inspect.Parameter("adapters", inspect.Parameter.KEYWORD_ONLY, default=("full", "lora", "qlora"),
                       annotation=tuple[str, ...])])


__all__ = ["PlanResult", "Variant", "make_budget", "plan"]
