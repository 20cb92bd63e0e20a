"""`afford.plan`: the verdict for a job and budget, with the plans that make it affordable."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afford import bounds as b
from afford.assess import Assessment, batch_note
from afford.decide.budget import Budget, deadline_seconds, parse_available, parse_duration
from afford.decide.planner import Plan, PlanSearch, Strategy, Variant, evaluate, search, variants
from afford.decide.verdict import Verdict, decide
from afford.errors import InputError, opt
from afford.estimate import footprint as fp
from afford.estimate.request import DEFAULT_HARDWARE, check_rates
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

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "verdict": self.verdict.to_dict(), "asked": self.asked.to_dict(),
                "plans": [p.to_dict() for p in self.listed()],
                "cheapest": self.found.cheapest.to_dict() if self.found.cheapest else None,
                "fastest": self.found.fastest.to_dict() if self.found.fastest else None,
                "searched": len(self.found.plans), "notes": self.notes + self.found.notes}

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


def plan(model: Any, *, train_samples: int | None = None, epochs: float = 1, train_tokens: int | None = None,
         batch_size: int = 1, seq_len: int | None = None, image_size: int | None = None,
         precision: str = "bf16-mixed", optimizer: str = "adamw", freeze: tuple[str, ...] = (),
         hardware: str | None = None, count: int | None = None, budget_usd: float | None = None,
         deadline: str | float | None = None, max_kwh: float | None = None, max_co2_kg: float | None = None,
         available: str | None = None, electricity_usd_kwh: float | None = None, region: str | None = None,
         pue: float | None = None, price_per_hour: float | None = None, lora_rank: int = 16,
         adapters: tuple[str, ...] = ("full", "lora", "qlora"), max_count: int = 16384,
         hardware_file: str | Path | None = None, trust_remote_code: bool = False,
         allow_longer: bool = False, model_options: dict[str, Any] | None = None,
         trust_pickle: bool = False, assessment: Assessment | None = None) -> PlanResult:
    """Is the training job affordable within the budget, and if not, the cheapest way it becomes so.

    `assessment`, an Assessment of this model and job already traced (its training step), is reused as the plan
    of the model as asked instead of tracing it again; adapters (LoRA) are other graphs and are traced."""
    from afford.sources import resolve

    catalog = Catalog.load(Path(hardware_file) if hardware_file else None)
    budget = make_budget(budget_usd=budget_usd, deadline=deadline, max_kwh=max_kwh, max_co2_kg=max_co2_kg,
                         available=available, catalog=catalog)
    check_rates(price_per_hour=price_per_hour, pue=pue, electricity_usd_kwh=electricity_usd_kwh)
    b.whole(lora_rank, "lora_rank", high=MAX_LORA_RANK)
    b.whole(max_count, "max_count", high=b.MAX_DEVICES)
    if count is not None:
        b.whole(count, "count", high=b.MAX_DEVICES)
    workload = Workload.parse(train_samples=train_samples, epochs=epochs, train_tokens=train_tokens,
                              batch_size=batch_size, seq_len=seq_len, image_size=image_size, precision=precision,
                              optimizer=optimizer, freeze=freeze, allow_longer=allow_longer)
    if not workload.wants_training:
        raise InputError(f"plan needs a training job: give {opt('train_samples')} (and {opt('epochs')}) or "
                         f"{opt('train_tokens')}")
    model = resolve(model, trust_remote_code=trust_remote_code, options=model_options, trust_pickle=trust_pickle)
    vs = variants(model, workload, adapters=adapters, lora_rank=lora_rank, trust_remote_code=trust_remote_code,
                  traced=assessment)
    full = next(v for v in vs if v.name == "full")
    if hardware is not None:
        device, n, owned = catalog.get(hardware), count or 1, any(o.device == catalog.get(hardware).id
                                                                    for o in budget.available)
    elif budget.available:
        device, n, owned = catalog.get(budget.available[0].device), count or budget.available[0].count, True
    else:
        device, n, owned = catalog.get(DEFAULT_HARDWARE), count or 1, False
    asked_strategy = Strategy(device=device.id, count=n, precision=workload.precision.value,
                              optimizer=workload.optimizer.value, micro_batch=batch_size,
                              parallel="dp" if n == 1 else "fsdp", owned=owned)
    grid = fp.grid(region)
    pue_v = pue if pue is not None else fp.default_pue()
    notes: list[str] = [n for n in (batch_note(full.a),) if n]
    price = price_per_hour if price_per_hour is not None else (0.0 if owned else device.price_usd_per_hour)
    samples = full.a.train_samples_total
    asked = evaluate(full, device, asked_strategy, samples, price=price, grid=grid, pue=pue_v, notes=notes)
    if owned:
        asked.cost_usd = (asked.cost_usd or 0.0) + asked.kwh * (
            electricity_usd_kwh if electricity_usd_kwh is not None else fp.electricity_price())
    found = search(vs, budget, catalog=catalog, max_count=max_count, electricity_usd_kwh=electricity_usd_kwh,
                   region=region, pue=pue, price_per_hour=price_per_hour)
    trainable = {v.name: (v.trainable, v.params) for v in vs}
    verdict = decide(asked, device.name, budget, found, trainable)
    model_info = {"name": full.a.spec.name, "params": full.params, "seq_len": full.a.dims.seq_len,
                  "train_samples": samples, "variants": {v.name: {"trainable_params": v.trainable,
                                                                    "weights_bytes": v.weights_bytes}
                                                           for v in vs}}
    return PlanResult(verdict=verdict, asked=asked, found=found, model=model_info, budget=budget, notes=notes)


__all__ = ["PlanResult", "Variant", "make_budget", "plan"]
