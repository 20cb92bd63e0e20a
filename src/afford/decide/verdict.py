"""The verdict: affordable, affordable with changes, or not affordable, every reason quantified."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from afford.decide.budget import Budget
from afford.decide.planner import QUALITY, Plan, PlanSearch, Strategy, mark


class Status(enum.StrEnum):
    AFFORDABLE = "affordable"
    WITH_CHANGES = "affordable_with_changes"
    NOT_AFFORDABLE = "not_affordable"


def _gb(n: float) -> str:
    """Memory capacities in GiB, the unit GPU memory is sold in (an '80 GB' A100 has 80 GiB)."""
    return f"{n / 2**30:,.1f} GiB"


def _usd(x: float | None) -> str:
    return "unknown (no price)" if x is None else f"${x:,.2f}" if x < 100 else f"${x:,.0f}"


def duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:,.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 86400:,.1f} days"


def describe(s: Strategy, asked: Strategy | None, trainable: int | None = None, params: int | None = None) -> list[str]:
    """What a strategy changes against the job as asked, and what that costs in quality, in plain words."""
    out: list[str] = []
    if asked is None or s.device != asked.device or s.count != asked.count:
        out.append(f"run on {s.count} x {s.device}" + (" (owned)" if s.owned else ""))
    if s.adapter != "full":
        text = QUALITY[s.adapter].format(trainable=f"{trainable:,}" if trainable else "?",
                                         params=f"{params:,}" if params else "?")
        out.append(f"{s.adapter.upper()} rank {s.lora_rank}: {text}")
    if asked is not None and s.precision != asked.precision:
        out.append(f"precision {s.precision} instead of {asked.precision}")
    if s.fp8:
        out.append(QUALITY["fp8"])
    if asked is not None and s.optimizer != asked.optimizer and s.optimizer == "adam-8bit":
        out.append(QUALITY["adam-8bit"])
    if s.recompute and (asked is None or not asked.recompute):
        out.append(QUALITY["recompute"])
    if s.offload:
        out.append(QUALITY["offload"])
    if s.count > 1 and (asked is None or s.parallel != asked.parallel):
        out.append(f"{s.parallel.upper()} over {s.count} devices" + (f", tensor parallel {s.tp}" if s.tp > 1 else ""))
    if asked is not None and s.micro_batch != asked.micro_batch:
        out.append(f"micro-batch {s.micro_batch} with {s.grad_accum} gradient-accumulation steps (same batch)")
    return out


@dataclass
class Verdict:
    status: Status
    reasons: list[str]
    plan: Plan | None
    minimal_budget_usd: float | None = None
    minimal_budget_plan: Plan | None = None
    minimal_deadline_s: float | None = None
    minimal_deadline_plan: Plan | None = None
    options: dict[str, Plan] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status.value, "reasons": self.reasons,
                               "plan": self.plan.to_dict() if self.plan else None}
        if self.minimal_budget_usd is not None:
            out["minimal_budget_usd"] = self.minimal_budget_usd
            out["minimal_budget_plan"] = self.minimal_budget_plan.to_dict() if self.minimal_budget_plan else None
        if self.minimal_deadline_s is not None:
            out["minimal_deadline_seconds"] = self.minimal_deadline_s
            out["minimal_deadline_plan"] = self.minimal_deadline_plan.to_dict() if self.minimal_deadline_plan else None
        out["options"] = {k: p.to_dict() for k, p in self.options.items()}
        return out


def limit_reasons(*, fits: bool, per_device_bytes: float, device_bytes: float, cost_usd: float | None,
                  seconds: float, kwh: float, co2_kg: float, budget: Budget, device_name: str) -> list[str]:
    """Every limit a job breaks (memory, budget, deadline, energy, carbon), each with its numbers."""
    fails: list[str] = []
    if not fits:
        fails.append(f"needs {_gb(per_device_bytes)} per device, the {device_name} has {_gb(device_bytes)} "
                     f"({_gb(device_bytes - (1 << 30))} usable)")
    if budget.usd is not None and (cost_usd or 0.0) > budget.usd:
        fails.append(f"costs {_usd(cost_usd)}, budget {_usd(budget.usd)}")
    if budget.deadline_s is not None and seconds > budget.deadline_s:
        fails.append(f"takes {duration(seconds)}, deadline {duration(budget.deadline_s)}")
    if budget.max_kwh is not None and kwh > budget.max_kwh:
        fails.append(f"uses {kwh:,.1f} kWh, limit {budget.max_kwh:,.1f} kWh")
    if budget.max_co2_kg is not None and co2_kg > budget.max_co2_kg:
        fails.append(f"emits {co2_kg:,.1f} kg CO2e, limit {budget.max_co2_kg:,.1f} kg")
    return fails


def as_asked_reasons(p: Plan, budget: Budget, device_name: str) -> list[str]:
    """Why the job as asked fails, each with the numbers (empty when it passes)."""
    return limit_reasons(fits=p.fits, per_device_bytes=p.per_device_bytes, device_bytes=p.device_bytes,
                         cost_usd=p.cost_usd, seconds=p.train_seconds, kwh=p.kwh, co2_kg=p.co2_kg, budget=budget,
                         device_name=device_name)


def margins(p: Plan, budget: Budget) -> list[str]:
    out = [f"fits: {_gb(p.per_device_bytes)} of {_gb(p.device_bytes)} per device"]
    if budget.usd is not None:
        out.append(f"costs {_usd(p.cost_usd)} of the {_usd(budget.usd)} budget")
    else:
        out.append(f"costs {_usd(p.cost_usd)}")
    out.append(f"takes {duration(p.train_seconds)}" + (f" of the {duration(budget.deadline_s)} deadline"
                                                        if budget.deadline_s is not None else ""))
    return out


def decide(asked: Plan, asked_device_name: str, budget: Budget, found: PlanSearch,
           trainable: dict[str, tuple[int, int]]) -> Verdict:
    """Compare the job as asked with the budget; if it fails, the cheapest feasible plan; if none, what it
    would take (the smallest budget, the shortest deadline) and with which plan."""
    mark(asked, budget)  # the verdict may name the job as asked: it is judged like every searched plan
    fails = as_asked_reasons(asked, budget, asked_device_name)
    if not fails:
        return Verdict(status=Status.AFFORDABLE, reasons=margins(asked, budget), plan=asked,
                       options=found.by_adapter)
    reasons = [f"as asked: {r}" for r in fails]

    def changes(p: Plan) -> list[str]:
        t, n = trainable.get(p.strategy.adapter, (0, 0))
        return describe(p.strategy, asked.strategy, t, n)

    for p in found.plans:
        p.changes = changes(p)
    if found.cheapest is not None:
        best = found.cheapest
        reasons.append("with changes: " + "; ".join(best.changes or ["none"]) +
                       f" -> {_usd(best.cost_usd)}, {duration(best.train_seconds)}, "
                       f"{_gb(best.per_device_bytes)} per device")
        for name, p in found.by_adapter.items():
            if name != best.strategy.adapter:
                reasons.append(f"also: {name} on {p.strategy.count} x {p.strategy.device} needs "
                               f"{_gb(p.per_device_bytes)} per device, {_usd(p.cost_usd)}, {duration(p.train_seconds)}"
                               + ("" if p.feasible else f" (misses: {', '.join(p.violations)})"))
        return Verdict(status=Status.WITH_CHANGES, reasons=reasons, plan=best, options=found.by_adapter)
    verdict = Verdict(status=Status.NOT_AFFORDABLE, reasons=reasons, plan=None, options=found.by_adapter)
    fitting = [p for p in found.plans if p.fits]
    if not fitting:
        reasons.append("no strategy on the hardware searched fits in memory")
        return verdict
    budget_ok = [p for p in fitting if set(p.violations) <= {"budget"}]
    if budget_ok:
        p = min(budget_ok, key=lambda p: (p.cost_usd or 0.0, p.train_seconds))
        verdict.minimal_budget_usd, verdict.minimal_budget_plan = p.cost_usd, p
        reasons.append(f"smallest budget that would do: {_usd(p.cost_usd)} ({'; '.join(p.changes)}; "
                       f"{duration(p.train_seconds)})")
    deadline_ok = [p for p in fitting if set(p.violations) <= {"deadline"}]
    if deadline_ok:
        p = min(deadline_ok, key=lambda p: (p.train_seconds, p.cost_usd or 0.0))
        verdict.minimal_deadline_s, verdict.minimal_deadline_plan = p.train_seconds, p
        reasons.append(f"shortest deadline that would do: {duration(p.train_seconds)} ({'; '.join(p.changes)}; "
                       f"{_usd(p.cost_usd)})")
    if not budget_ok and not deadline_ok:
        cheapest = min(fitting, key=lambda p: (p.cost_usd or 0.0))
        reasons.append(f"the cheapest fitting plan costs {_usd(cheapest.cost_usd)} and takes "
                       f"{duration(cheapest.train_seconds)} ({', '.join(cheapest.violations)} missed)")
    return verdict
