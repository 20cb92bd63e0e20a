"""The report document of a Comparison: the verdict over the models, their ranking (table, accuracy against cost
and cost against time), memory per device of each model, notes and provenance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from afford import units
from afford.estimate.parallel import RESERVED_BYTES
from afford.report import plots
from afford.report.blocks import PROVENANCE_COLUMNS, budget_line, device_rows, efficiency_rows, notes_section
from afford.report.fmt import duration, num, size, usd
from afford.report.model import Cards, Cell, Document, Figure, Num, Para, Section, Table

if TYPE_CHECKING:
    from afford.decide.compare import Comparison


def build(c: Comparison) -> Document:
    """The report document of a Comparison."""
    from afford.hardware.catalog import Catalog

    d = c.to_dict()
    rows = d["models"]
    ok = [r for r in rows if r["verdict"] == "affordable"]
    has_budget = any(v is not None for v in (c.budget.usd, c.budget.deadline_s, c.budget.max_kwh,
                                              c.budget.max_co2_kg))
    verdict = Section("verdict", "Verdict")
    status = ("affordable" if ok else "not_affordable") if has_budget else "none"
    verdict.blocks.append(Cards(status, [("models", f"{len(rows)}", f"{len(ok)} affordable as asked"),
                                         ("hardware", f"{c.count} x {c.hardware}", budget_line(c.budget))]))
    if rows:
        best = rows[0]
        best_acc = f", {best['accuracy']['metric']} {best['accuracy']['value']:.2f}" if best["accuracy"] else ""
        verdict.blocks.append(Para(f"Best ranked: {best['model']} ({best['verdict'].replace('_', ' ')}{best_acc}, "
                                   f"{usd(best['cost_usd'])}, {duration(best['train_seconds'])})."
                                   if best["verdict"] != "error" else f"Best ranked: {best['model']} (error)."))
    if not has_budget:
        verdict.blocks.append(Para("No budget given: every model that fits in memory counts as affordable."))
    models = Section("models", "Models")
    trows: list[list[Cell]] = []
    for i, r in enumerate(rows):
        acc = r["accuracy"]["value"] if r["accuracy"] else None
        trows.append([f"{i + 1}", r["model"], Num(units.count(r["params"]), r["params"], f"models.{i}.params"),
                      Num(f"{acc:.2f}", acc, f"models.{i}.accuracy.value") if acc is not None else "-",
                      num(r, "cost_usd", usd) if r["cost_usd"] is None else
                      Num(usd(r["cost_usd"]), r["cost_usd"], f"models.{i}.cost_usd"),
                      Num(duration(r["train_seconds"]), r["train_seconds"], f"models.{i}.train_seconds"),
                      Num(size(r["per_device_bytes"]), r["per_device_bytes"], f"models.{i}.per_device_bytes"),
                      Num(f"{r['accuracy_per_dollar']:.2f}", r["accuracy_per_dollar"],
                          f"models.{i}.accuracy_per_dollar") if r["accuracy_per_dollar"] else "-",
                      "yes" if r["pareto"] else "",
                      r["verdict"].replace("_", " ") + (f": {'; '.join(r['reasons'])}" if r["reasons"] else "")])
    models.blocks.append(Table(["#", "model", "params", "acc@1", "cost", "time", "per device", "acc/$", "Pareto",
                                "verdict"], trows))
    if any(r["accuracy"] and r["cost_usd"] is not None for r in rows):
        models.blocks.append(Figure("pareto", "Accuracy against cost", plots.pareto(c),
                                    "Published top-1 accuracy against training cost; the red line is the Pareto "
                                    "front (no other affordable model is cheaper and at least as accurate)."))
    opts = [plots.Option(label=r["model"].split(":")[-1], seconds=r["train_seconds"], usd=r["cost_usd"],
                         fits=r["fits"], feasible=r["verdict"] == "affordable")
            for r in rows if r["verdict"] != "error"]
    models.blocks.append(Figure("cost_time", "Cost and time per model",
                                plots.cost_time(opts, f"Cost against time on {c.count} x {c.hardware}",
                                                budget_usd=c.budget.usd, deadline_s=c.budget.deadline_s),
                                "Each model's training cost against its time for the same job."))
    catalog = Catalog.load()
    device = catalog.devices.get(c.hardware)
    limit = (device.memory_bytes - RESERVED_BYTES) if device else None
    memory = Section("memory", "Memory per device")
    memory.blocks.append(Figure("memory", "Memory per device of each model",
                                plots.memory_bars([plots.Bar(r["model"].split(":")[-1],
                                                             [("per device", r["per_device_bytes"])], limit)
                                                   for r in rows if r["verdict"] != "error"],
                                                  f"Memory per device on {c.hardware}"),
                                "Training memory per device of each model against the device's usable memory."))
    prov = Section("provenance", "Provenance")
    prows = device_rows([device] if device else []) + efficiency_rows([c.hardware])
    if any(r["accuracy"] for r in rows):
        prows.append(["accuracy", "top-1 as published with the weights",
                      "torchvision weights entries' meta['_metrics'] (each model's recipe is in its weights meta)"])
    prov.blocks.append(Table(PROVENANCE_COLUMNS, prows))
    sections = [verdict, models, memory, notes_section(d["notes"]), prov]
    return Document(f"afford compare: {len(rows)} models", f"on {c.count} x {c.hardware}", sections)
