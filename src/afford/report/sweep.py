"""The report document of a Sweep (`afford sweep --report`): what was swept, every point as a table row, and the
cost against time of the points that were priced, per model and device."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from afford import units
from afford.report import plots
from afford.report.fmt import duration, size, usd
from afford.report.model import Cards, Cell, Document, Figure, Num, Para, Section, Table

if TYPE_CHECKING:
    from afford.decide.sweep import Sweep

MAX_PLOTTED = 200  # points on the cost-time plot (the cheapest first); the table holds every point


def _job(row: dict[str, Any]) -> tuple[float | None, float | None]:
    """A point's time and cost: the training job's where it trains, else the inference job's."""
    if row["train_seconds"] is not None:
        return row["train_seconds"], row["train_usd"]
    return row["infer_seconds"], row["infer_usd"]


def build(s: Sweep) -> Document:
    """The report document of a Sweep: headline cards, the points table and the cost-time plot."""
    d = s.to_dict()
    rows = d["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    devices = list(dict.fromkeys(r["hardware"] for r in rows))
    priced = [r for r in rows if r["error"] is None]
    summary = Section("sweep", "Sweep")
    summary.blocks.append(Cards("none", [
        ("points", f"{len(rows):,}", f"{len(models):,} models x {len(devices):,} devices x precisions x batches"),
        ("priced", f"{len(priced):,}", f"{d['errors']:,} could not be priced (their one-line error in the table)"),
        ("workers", f"{s.jobs}", "processes"),
    ]))
    for note in d["notes"]:
        summary.blocks.append(Para(note))
    table = Section("points", "Points")
    cells: list[list[Cell]] = []
    for i, r in enumerate(rows):
        seconds, cost = _job(r)
        cells.append([
            r["model"], r["hardware"], r["precision"], str(r["batch_size"]),
            Num(units.count(r["params"]), r["params"], f"rows.{i}.params") if r["params"] is not None else "-",
            Num(units.flops(r["forward_flops"]), r["forward_flops"], f"rows.{i}.forward_flops")
            if r["forward_flops"] is not None else "-",
            Num(duration(seconds), seconds, f"rows.{i}.train_seconds") if seconds is not None else "-",
            Num(usd(cost), cost, f"rows.{i}.train_usd") if cost is not None else "-",
            Num(size(r["per_device_bytes"]), r["per_device_bytes"], f"rows.{i}.per_device_bytes")
            if r["per_device_bytes"] is not None else "-",
            "" if r["fits"] is None else ("yes" if r["fits"] else "no"),
            r["error"] or "",
        ])
    table.blocks.append(Table(["model", "hardware", "precision", "batch", "params", "forward / sample", "time",
                               "cost", "per device", "fits", "error"], cells,
                              "Time and cost are the training job's where it trains, else the inference job's."))
    sections = [summary, table]
    options = []
    for r in priced:
        seconds, cost = _job(r)
        if seconds and cost:
            label = f"{r['model'].split(':')[-1]} {r['hardware']}"
            options.append(plots.Option(label=label, seconds=seconds, usd=cost, fits=bool(r["fits"])))
    if options:
        options = sorted(options, key=lambda o: o.usd or 0.0)[:MAX_PLOTTED]
        chart = Section("cost_time", "Cost and time")
        chart.blocks.append(Figure("cost_time", "Cost against time of each point",
                                   plots.cost_time(options, "Cost against time"),
                                   f"The {len(options):,} cheapest priced points; hollow grey: does not fit in "
                                   "memory."))
        sections.append(chart)
    return Document(f"afford sweep: {len(models):,} models on {', '.join(devices)}",
                    f"{len(rows):,} points", sections)
