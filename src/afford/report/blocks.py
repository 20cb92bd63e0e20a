"""Report blocks shared by the documents of an Assessment, a PlanResult and a Comparison: the verdict, the plans
(table and cost/time plot), the notes, the provenance rows (devices, efficiency factors, PUE and grid) and the
budget line. Formatting only: every figure comes from a `to_dict()` or from estimate/."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from afford.report import plots
from afford.report.fmt import duration, keyed, n3, size, usd
from afford.report.model import Bullets, Cards, Cell, Figure, Para, Section, Table
from afford.report.terminal import strategy_words

if TYPE_CHECKING:
    from afford.hardware.catalog import Device

PLAN_COLUMNS = ["hardware", "adapter", "precision", "memory savers", "layout", "per device", "time", "cost", "kWh",
                "meets limits"]
PROVENANCE_COLUMNS = ["what", "value", "source"]


def verdict_section(verdict: dict[str, Any] | None, lead: list[Cards | Para]) -> Section:
    """The verdict (status and reasons, or a note that no budget was given) followed by the `lead` blocks."""
    s = Section("verdict", "Verdict")
    if verdict is None:
        s.blocks.append(Cards("none", []))
        s.blocks.append(Para("No budget given: the figures below are for the job as asked. Give --budget-usd, "
                             "--deadline, --max-kwh, --max-co2-kg or --available for a verdict and the plans "
                             "that make the job affordable."))
        s.blocks.extend(lead)
        return s
    s.blocks.append(Cards(verdict["status"], []))
    s.blocks.append(Bullets(list(verdict["reasons"])))
    s.blocks.extend(lead)
    return s


def plan_cells(p: dict[str, Any], key: str) -> list[Cell]:
    """One plan as table cells; `key` is the plan's path in to_dict() ('plans.3', 'asked')."""
    s = p["strategy"]
    savers, layout = strategy_words(s)
    return [f"{s['count']} x {s['device']}" + (" (owned)" if s.get("owned") else ""),
            s["adapter"] + (f" r{s['lora_rank']}" if s.get("lora_rank") and s["adapter"] != "full" else ""),
            s["precision"], savers, layout, keyed(p, key, "per_device_bytes", size),
            keyed(p, key, "train_seconds", duration), keyed(p, key, "cost_usd", usd),
            keyed(p, key, "energy_kwh", n3), "yes" if p["feasible"] else (", ".join(p["violations"]) or "no")]


INFERENCE_PLAN_COLUMNS = ["hardware", "weights", "per device", "latency (s)", "time", "cost", "kWh", "meets limits"]


def inference_plans_section(decided: dict[str, Any]) -> Section:
    """The plans of an inference job's decision (decide/inference.py): devices, replicas and weight formats, and
    what each format change costs in quality."""
    s = Section("plans", "Plans")
    plans = decided["plans"]
    s.blocks.append(Para(f"{decided.get('searched', len(plans))} plans searched (devices, tensor parallelism, "
                         "replicas and weight formats); listed: the cheapest and the lowest-latency plans, then "
                         "the best of each format."))
    rows: list[list[Cell]] = []
    for i, p in enumerate(plans):
        key = f"plans.{i}"
        rows.append([f"{p['count']} x {p['device']}" + (f" (tp {p['tp']})" if p.get("tp", 1) > 1 else "") +
                     (" (owned)" if p["owned"] else ""), p["weights"],
                     keyed(p, key, "per_device_bytes", size), keyed(p, key, "latency_seconds", n3),
                     keyed(p, key, "infer_seconds", duration), keyed(p, key, "cost_usd", usd),
                     keyed(p, key, "energy_kwh", n3),
                     "yes" if p["feasible"] else (", ".join(p["violations"]) or "no")])
    s.blocks.append(Table(INFERENCE_PLAN_COLUMNS, rows))
    changes = list(dict.fromkeys(c for p in plans for c in p["changes"] if c.startswith("weights in")))
    if changes:
        s.blocks.append(Bullets(changes))
    if any(p["cost_usd"] for p in plans):
        from afford.report.serving import plans_figure

        s.blocks.append(plans_figure(plans))
    return s


def plans_section(decided: dict[str, Any], budget: Any, pareto_count: int) -> Section:
    """The plans of a PlanResult (or an assessment's decision): table and cost/time plot."""
    s = Section("plans", "Plans")
    plans = decided["plans"]
    chosen = (decided["verdict"].get("plan") or {}).get("strategy")
    s.blocks.append(Para(f"{decided.get('searched', len(plans))} plans searched; listed: the Pareto set of cost "
                         "and time, then the best plan of each adapter (full, LoRA, QLoRA)."))
    rows = [plan_cells(p, f"plans.{i}") for i, p in enumerate(plans)]
    s.blocks.append(Table(PLAN_COLUMNS, rows))
    options = [plots.Option(label=f"{p['strategy']['adapter']} {p['strategy']['count']}x{p['strategy']['device']}",
                            seconds=p["train_seconds"], usd=p["cost_usd"], fits=p["fits"], feasible=p["feasible"],
                            highlight="chosen" if p["strategy"] == chosen else "", pareto=i < pareto_count)
               for i, p in enumerate(plans)]
    asked = decided.get("asked")
    if asked is not None and all(p["strategy"] != asked["strategy"] for p in plans):
        options.append(plots.Option(label="as asked", seconds=asked["train_seconds"], usd=asked["cost_usd"],
                                    fits=asked["fits"], feasible=decided["verdict"]["status"] == "affordable",
                                    highlight="chosen" if asked["strategy"] == chosen else "asked"))
    s.blocks.append(Figure("plans", "Cost and time of the plans",
                           plots.cost_time(options, "Cost and time of the plans", budget_usd=budget.usd,
                                           deadline_s=budget.deadline_s, key="plans"),
                           "Each plan's training cost against its time; the chosen plan is the star, the line "
                           "joins the Pareto set (no other plan is both cheaper and faster)."))
    return s


def fold_notes(notes: Iterable[str]) -> list[str]:
    """Notes without repeats; notes that differ only in their first word (a device id) become one line."""
    unique = list(dict.fromkeys(notes))
    by_rest: dict[str, list[str]] = {}
    for n in unique:
        head, _, rest = n.partition(" ")
        by_rest.setdefault(rest, []).append(head)
    out: list[str] = []
    for n in unique:
        head, _, rest = n.partition(" ")
        heads = by_rest[rest]
        if len(heads) < 3:
            out.append(n)
        elif head == heads[0]:
            out.append(f"{', '.join(heads)}: {rest}")
    return out


def notes_section(notes: Iterable[str], uncounted: dict[str, int] | None = None) -> Section:
    """The notes, folded, and the ops counted without FLOPs (most called first, twelve at most)."""
    s = Section("notes", "Notes")
    items = fold_notes(notes)
    if uncounted:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(uncounted.items(), key=lambda kv: -kv[1])[:12])
        items.append(f"not counted as FLOPs ({len(uncounted)} ops): {ops}{' ...' if len(uncounted) > 12 else ''}")
    s.blocks.append(Bullets(items) if items else Para("No notes."))
    return s


def device_rows(devices: Iterable[Device]) -> list[list[Cell]]:
    """Provenance rows of catalog devices: their figures with the source and date, and their price."""
    rows: list[list[Cell]] = []
    for d in devices:
        rows.append([f"{d.id} specifications", f"{d.name}: {size(d.memory_bytes)}, "
                     f"{d.memory_bandwidth_gb_s:,.0f} GB/s, dense peak "
                     + ", ".join(f"{k} {v:,.1f}" for k, v in d.peak_tflops.items()) + " TFLOP/s",
                     d.source + (f" (read {d.source_date})" if d.source_date else "")])
        if d.price_usd_per_hour:
            rows.append([f"{d.id} price", f"${d.price_usd_per_hour:.2f} per device-hour",
                         (d.price_source or "") + (f" ({d.price_date})" if d.price_date else "")])
    return rows


def efficiency_rows(device_ids: Iterable[str]) -> list[list[Cell]]:
    """Provenance rows of the efficiency factors each device is timed with, and the system factor's range."""
    from afford.estimate.provenance import efficiency_entry, system_efficiency

    rows: list[list[Cell]] = []
    for dev in device_ids:
        for section, what in (("matmul", "achievable matmul fraction"), ("bandwidth", "achievable bandwidth fraction")):
            entry = efficiency_entry(section, dev)
            rows.append([f"{dev} {what}", f"{entry.get('fraction')}", str(entry.get("source", ""))])
    system = system_efficiency()
    rows.append(["system efficiency", f"{system['fraction']} (range {system['low']} .. {system['high']})",
                 str(system["source"])])
    return rows


def footprint_rows(pue: float | None, grid: Any | None) -> list[list[Cell]]:
    """Provenance rows of the PUE and the grid carbon intensity an estimate used."""
    from afford.estimate.provenance import pue_source

    rows: list[list[Cell]] = []
    if pue is not None:
        rows.append(["PUE", f"{pue}", pue_source(pue)])
    if grid is not None:
        rows.append(["grid carbon intensity", f"{grid.id}: {grid.gco2_per_kwh:,.0f} gCO2e/kWh", grid.source])
    return rows


def budget_line(b: Any) -> str:
    """A Budget in words: 'budget $5.00; deadline 1.5 h; owned: 2 x a100-80gb', or 'no budget given'."""
    parts = []
    if b.usd is not None:
        parts.append(f"budget {usd(b.usd)}")
    if b.deadline_s is not None:
        parts.append(f"deadline {duration(b.deadline_s)}")
    if b.max_kwh is not None:
        parts.append(f"at most {b.max_kwh:,.1f} kWh")
    if b.max_co2_kg is not None:
        parts.append(f"at most {b.max_co2_kg:,.1f} kg CO2e")
    if b.available:
        parts.append("owned: " + ", ".join(f"{o.count} x {o.device}" for o in b.available))
    return "; ".join(parts) or "no budget given"
