"""The report document of a PlanResult: the verdict and the chosen plan, the model variants traced, memory per
device of each plan, the job as asked, the plans searched (table and cost/time plot), notes and provenance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from afford import units
from afford.estimate.parallel import RESERVED_BYTES
from afford.report import plots
from afford.report.blocks import (
    PLAN_COLUMNS,
    PROVENANCE_COLUMNS,
    budget_line,
    device_rows,
    efficiency_rows,
    footprint_rows,
    notes_section,
    plan_cells,
    plans_section,
    verdict_section,
)
from afford.report.fmt import duration, num, size, usd
from afford.report.model import Cards, Cell, Document, Figure, Para, Section, Table

if TYPE_CHECKING:
    from afford.decide.run import PlanResult


def build(r: PlanResult) -> Document:
    """The report document of a PlanResult."""
    from afford.hardware.catalog import Catalog

    d = r.to_dict()
    m = d["model"]
    chosen = d["verdict"].get("plan")
    cards: list[tuple[str, Cell, str]] = []
    if chosen:
        s = chosen["strategy"]
        cards = [("plan", f"{s['adapter']} on {s['count']} x {s['device']}", s["precision"]),
                 ("cost", num(d, "verdict.plan.cost_usd", usd), ""),
                 ("time", num(d, "verdict.plan.train_seconds", duration), ""),
                 ("memory per device", num(d, "verdict.plan.per_device_bytes", size),
                  f"of {size(chosen['device_bytes'])}")]
    verdict = verdict_section(d["verdict"], [Cards("job", cards)] if cards else [])
    compute = Section("compute", "Model and variants traced")
    compute.blocks.append(Para(f"{units.count(m['params'])} parameters; "
                               f"{units.count(m['train_samples'])} training samples"
                               + (f" of {m['seq_len']} tokens" if m.get("seq_len") else "") + "."))
    compute.blocks.append(Table(["variant", "trainable parameters", "weights"],
                                [[name, num(d, f"model.variants.{name}.trainable_params", units.count),
                                  num(d, f"model.variants.{name}.weights_bytes", size)]
                                 for name in m["variants"]]))
    plans = d["plans"]
    memory = Section("memory", "Memory per device")
    bars = [plots.Bar(f"{p['strategy']['adapter']} {p['strategy']['count']}x{p['strategy']['device']}",
                      [("per device", p["per_device_bytes"])], p["device_bytes"] - RESERVED_BYTES) for p in plans]
    memory.blocks.append(Figure("memory", "Memory per device of each plan",
                                plots.memory_bars(bars, "Memory per device of each plan"),
                                "Each plan's memory per device; the black mark is its device's usable memory."))
    asked = Section("hardware", "Time and money per hardware option")
    # the job as asked is judged by the verdict (the planner flags only the plans it searched)
    asked_cells = plan_cells(d["asked"], "asked")
    asked_cells[-1] = "yes" if d["verdict"]["status"] == "affordable" else "no (see the verdict)"
    asked.blocks.append(Table(["job as asked", *PLAN_COLUMNS[1:]], [asked_cells]))
    searched = plans_section(d, r.budget, len(r.found.pareto))
    catalog = Catalog.load()
    ids = list(dict.fromkeys([d["asked"]["strategy"]["device"], *(p["strategy"]["device"] for p in plans)]))
    prov = Section("provenance", "Provenance")
    devs = [catalog.devices[i] for i in ids if i in catalog.devices]
    prov.blocks.append(Table(PROVENANCE_COLUMNS, device_rows(devs) + efficiency_rows(ids)
                             + footprint_rows(None, None)))
    sections = [verdict, compute, memory, asked, searched, notes_section(d["notes"]), prov]
    return Document(f"afford plan: {m['name']}", budget_line(r.budget), sections)
