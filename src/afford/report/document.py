"""A report as plain data (sections of paragraphs, tables and plots), built once from an Assessment, a PlanResult
or a Comparison and rendered by html.py, markdown.py and notebook.py alike.

Every number comes from the object's `to_dict()` (the JSON contract) or, for the plots that need more, from the
same trace and estimate machinery that produced it; table cells keep the raw value and its JSON path beside
the formatted text, so a rendering can be checked against `to_dict()`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from afford import units
from afford.errors import AffordError, InputError
from afford.report import plots
from afford.report.terminal import strategy_words

if TYPE_CHECKING:
    from afford.assess import Assessment
    from afford.decide.compare import Comparison
    from afford.decide.run import PlanResult
    from afford.hardware.catalog import Device

# Devices an Assessment is re-priced on for the "per hardware option" table and plot, besides its own: one or two
# per class (inference cards, 24 GB consumer/workstation, the A100/H100/H200/B200 line, AMD), all with an
# on-demand price in hardware/devices.toml.
COMPARED_DEVICES = ("t4", "l4", "rtx4090", "l40s", "a100-80gb", "h100-sxm", "h200", "b200", "mi300x")
TOP_MODULES = 12
STATUS_TEXT = {"affordable": "affordable", "affordable_with_changes": "affordable with changes",
               "not_affordable": "not affordable", "none": "no budget given", "error": "error"}


# ---- the document model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    """A formatted number with its raw value and, where it is one, its path in `to_dict()` ('time.train_seconds')."""

    text: str
    value: float | None = None
    key: str = ""


Cell = str | Num


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass
class Figure:
    """A plot: `key` names it (file stem in Markdown, data-plot in HTML); `svg` is the inline SVG element."""

    key: str
    title: str
    svg: str
    caption: str = ""


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Cards:
    """Headline figures: a status (a key of STATUS_TEXT) and (label, value, detail) cards."""

    status: str
    items: list[tuple[str, Cell, str]]


Block = Table | Figure | Para | Bullets | Cards


@dataclass
class Section:
    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]

    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]


# ---- formatting -------------------------------------------------------------------------------------------


def _get(data: dict[str, Any], key: str) -> Any:
    cur: Any = data
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def num(data: dict[str, Any], key: str, fmt: Any) -> Num:
    """The figure at `key` of a to_dict() formatted by `fmt`, or '-' when absent."""
    value = _get(data, key)
    if value is None:
        return Num("-", None, key)
    return Num(fmt(value), float(value), key)


def _span(fmt: Any, pair: Any) -> str:
    if not pair or pair[0] is None:
        return ""
    return f"{fmt(pair[0])} .. {fmt(pair[1])}"


def _positional(value: float, digits: int) -> str:
    """`digits` significant digits without an exponent: 4.8e-06 -> '0.0000048'."""
    import numpy as np

    return str(np.format_float_positional(value, precision=digits, unique=False, fractional=False, trim="-"))


def _n3(value: float) -> str:
    """Three significant digits, thousands separated, no exponent: 0.0000228, 12.3, 1,720,320."""
    if value == 0:
        return "0"
    return f"{value:,.0f}" if abs(value) >= 1000 else _positional(value, 3)


def _usd(value: float | None) -> str:
    """Dollars as the terminal shows them ($1,234, $12.34), small sums without an exponent ($0.0000048)."""
    if value is None:
        return "-"
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 0.01 or value == 0:
        return f"${value:.2f}"
    return "$" + _positional(value, 2)


_duration = units.duration


def _bytes(nbytes: float) -> str:
    """Memory in GiB/MiB as the terminal shows it, KiB under one MiB."""
    return f"{nbytes / 2**10:,.1f} KiB" if 0 < nbytes < 2**20 else units.gib(nbytes)


def _pct(value: float) -> str:
    return f"{value:.0%}"


def _short(module: str) -> str:
    """'LlamaForCausalLM.model.layers.0.mlp' -> 'model.layers.0.mlp' (the root class name dropped)."""
    return module.split(".", 1)[1] if "." in module else f"{module} (root)"


# ---- shared pieces ------------------------------------------------------------------------------------------


def _verdict_section(verdict: dict[str, Any] | None, lead: list[Cards | Para]) -> Section:
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


def _plan_cells(p: dict[str, Any], key: str) -> list[Cell]:
    """One plan as table cells; `key` is the plan's path in to_dict() ('plans.3', 'asked')."""
    s = p["strategy"]
    savers, layout = strategy_words(s)
    return [f"{s['count']} x {s['device']}" + (" (owned)" if s.get("owned") else ""),
            s["adapter"] + (f" r{s['lora_rank']}" if s.get("lora_rank") and s["adapter"] != "full" else ""),
            s["precision"], savers, layout, _keyed(p, key, "per_device_bytes", _bytes),
            _keyed(p, key, "train_seconds", _duration), _keyed(p, key, "cost_usd", _usd),
            _keyed(p, key, "energy_kwh", _n3), "yes" if p["feasible"] else (", ".join(p["violations"]) or "no")]


def _keyed(p: dict[str, Any], prefix: str, key: str, fmt: Any) -> Num:
    return replace(num(p, key, fmt), key=f"{prefix}.{key}")


PLAN_COLUMNS = ["hardware", "adapter", "precision", "memory savers", "layout", "per device", "time", "cost", "kWh",
                "meets limits"]


def _plans_section(decided: dict[str, Any], budget: Any, pareto_count: int) -> Section:
    """The plans of a PlanResult (or an assessment's decision): table and cost/time plot."""
    s = Section("plans", "Plans")
    plans = decided["plans"]
    chosen = (decided["verdict"].get("plan") or {}).get("strategy")
    s.blocks.append(Para(f"{decided.get('searched', len(plans))} plans searched; listed: the Pareto set of cost "
                         "and time, then the best plan of each adapter (full, LoRA, QLoRA)."))
    rows = [_plan_cells(p, f"plans.{i}") for i, p in enumerate(plans)]
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


def _notes_section(notes: Iterable[str], uncounted: dict[str, int] | None = None) -> Section:
    s = Section("notes", "Notes")
    items = fold_notes(notes)
    if uncounted:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(uncounted.items(), key=lambda kv: -kv[1])[:12])
        items.append(f"not counted as FLOPs ({len(uncounted)} ops): {ops}{' ...' if len(uncounted) > 12 else ''}")
    s.blocks.append(Bullets(items) if items else Para("No notes."))
    return s


def _device_rows(devices: Iterable[Device]) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for d in devices:
        rows.append([f"{d.id} specifications", f"{d.name}: {_bytes(d.memory_bytes)}, "
                     f"{d.memory_bandwidth_gb_s:,.0f} GB/s, dense peak "
                     + ", ".join(f"{k} {v:,.1f}" for k, v in d.peak_tflops.items()) + " TFLOP/s",
                     d.source + (f" (read {d.source_date})" if d.source_date else "")])
        if d.price_usd_per_hour:
            rows.append([f"{d.id} price", f"${d.price_usd_per_hour:.2f} per device-hour",
                         (d.price_source or "") + (f" ({d.price_date})" if d.price_date else "")])
    return rows


def _efficiency_rows(device_ids: Iterable[str]) -> list[list[Cell]]:
    from afford.estimate.timing import factors

    f = factors()
    rows: list[list[Cell]] = []
    for dev in device_ids:
        for section, what in (("matmul", "achievable matmul fraction"), ("bandwidth", "achievable bandwidth fraction")):
            table = f.get(section, {})
            entry = table.get(dev) or table.get("default", {})
            rows.append([f"{dev} {what}", f"{entry.get('fraction')}", str(entry.get("source", ""))])
    system = f["system"]["default"]
    rows.append(["system efficiency", f"{system['fraction']} (range {system['low']} .. {system['high']})",
                 str(system["source"])])
    return rows


def _footprint_rows(pue: float | None, grid: Any | None) -> list[list[Cell]]:
    from afford.estimate.footprint import grid_table

    g = grid_table()
    rows: list[list[Cell]] = []
    if pue is not None:
        src = g["pue"]["default_source"] if math.isclose(pue, float(g["pue"]["default"])) else "--pue"
        rows.append(["PUE", f"{pue}", src])
    if grid is not None:
        rows.append(["grid carbon intensity", f"{grid.id}: {grid.gco2_per_kwh:,.0f} gCO2e/kWh", grid.source])
    return rows


PROVENANCE_COLUMNS = ["what", "value", "source"]


# ---- Assessment ---------------------------------------------------------------------------------------------


def _job_line(d: dict[str, Any]) -> str:
    w = d["workload"]
    shape = f"seq {w['seq_len']}" if w.get("seq_len") else (f"{w['image_size']} px" if w.get("image_size") else "")
    parts = [f"batch {w['batch_size']}", shape, w["precision"], w["optimizer"]]
    if d["compute"]["train_samples"]:
        parts.append(f"{units.count(d['compute']['train_samples'])} training samples")
    if d["compute"]["infer_samples"]:
        parts.append(f"{units.count(d['compute']['infer_samples'])} inference samples")
    return ", ".join(p for p in parts if p)


def _headline(d: dict[str, Any]) -> Cards:
    mem, t, c = d["memory"], d.get("time", {}), d.get("cost", {})
    items: list[tuple[str, Cell, str]] = []
    if "per_device_bytes" in mem:
        items.append(("memory per device", num(d, "memory.per_device_bytes", _bytes),
                      ("fits in " if mem["fits"] else "does not fit in ") + _bytes(mem["usable_bytes"])
                      + " usable"))
    if t.get("train_steps"):
        items.append(("training time", num(d, "time.train_seconds", _duration),
                      _span(_duration, t.get("train_seconds_range"))))
        items.append(("training cost", num(d, "cost.train_usd", _usd), _span(_usd, c.get("train_usd_range"))))
    if t.get("infer_seconds"):
        items.append(("inference time", num(d, "time.infer_seconds", _duration),
                      f"{t['infer_samples_per_second']:,.0f} samples/s"))
        items.append(("inference cost", num(d, "cost.infer_usd", _usd), ""))
    if "generate" in d:
        per_m = d["generate"]["usd_per_million_tokens"]
        items.append(("decode", num(d, "generate.decode_tokens_per_second", lambda v: f"{v:,.0f} tokens/s"),
                      f"{_usd(per_m)} per M tokens" if per_m is not None
                      else f"batch {d['generate']['batch_size']}"))
    hw = d.get("hardware")
    if hw:
        items.append(("hardware", f"{hw['count']} x {hw['name']}", hw["device"]))
    return Cards("job", items)


def module_groups(a: Assessment) -> list[tuple[str, int, float]]:
    """Forward FLOPs per sample by module, every module split into its children and its own ops (attention's
    score matmuls, say) so the groups add up to the whole model, repeated blocks folded
    ('layers.*.mlp.down_proj' x32): (label, instances, forward FLOPs), largest first.

    A container that is never called (an nn.ModuleList) records no FLOPs of its own; it counts as the sum of
    its children. The plot shows forward only; per-module backward is in the JSON `modules` rows."""
    rows = a.module_rows(depth=10**6)
    recorded = {r["module"]: float(r["forward_flops"]) for r in rows}
    children: dict[str, list[str]] = {}
    for name in recorded:
        parent = name
        while "." in parent:
            parent = parent.rsplit(".", 1)[0]
            if parent in recorded:
                children.setdefault(parent, []).append(name)
                break
    effective: dict[str, float] = {}
    for name in sorted(recorded, key=lambda n: -n.count(".")):  # children before parents
        below = sum(effective[k] for k in children.get(name, []))
        effective[name] = recorded[name] if recorded[name] > 0 else below
    groups: dict[str, list[float]] = {}
    for name, value in recorded.items():
        kids = children.get(name, [])
        own = value - sum(effective[k] for k in kids) if value > 0 else 0.0
        if own <= 1e-9 * max(value, 1.0):
            continue
        label = re.sub(r"\.\d+(?=\.|$)", ".*", _short(name)) + (" (own ops)" if kids else "")
        g = groups.setdefault(label, [0, 0.0])
        g[0] += 1
        g[1] += own
    return sorted(((label, int(g[0]), g[1]) for label, g in groups.items()), key=lambda x: -x[2])


def _compute_section(a: Assessment, d: dict[str, Any]) -> Section:
    s = Section("compute", "Compute")
    rows: list[list[Cell]] = [
        ["forward / sample", num(d, "per_sample.forward_flops", units.flops),
         f"{units.macs(d['per_sample']['forward_macs'])}, traced (eval mode)"],
        ["backward / sample", num(d, "per_sample.backward_flops", units.flops), "traced through autograd"],
    ]
    if d["per_sample"].get("attention_flops"):
        rows.append(["attention / sample", num(d, "per_sample.attention_flops", units.flops),
                     f"useful (masked) forward {units.flops(d['per_sample']['forward_flops_useful'])}"])
    if "per_token" in d:
        rows.append(["forward / token", num(d, "per_token.forward_flops", units.flops), ""])
        rows.append(["train / token", num(d, "per_token.train_flops", units.flops),
                     f"useful (masked) {units.flops(d['per_token']['train_flops_useful'])}"])
    if "decode" in d:
        rows.append(["decode / token", num(d, "decode.flops_per_token", units.flops),
                     f"with KV cache at {d['decode']['context_tokens']} tokens"])
    comp = d["compute"]
    if comp["train_samples"]:
        rows.append(["C_train", num(d, "compute.train_flops", units.flops),
                     f"{units.count(comp['train_samples'])} samples x (fwd + bwd)"])
    if comp["infer_samples"]:
        rows.append(["C_infer", num(d, "compute.infer_flops", units.flops),
                     f"{units.count(comp['infer_samples'])} samples x fwd"])
    s.blocks.append(Table(["figure", "value", "how"], rows))

    groups = module_groups(a)
    total = sum(g[2] for g in groups) or 1.0
    top, rest = groups[:TOP_MODULES], groups[TOP_MODULES:]
    mrows: list[list[Cell]] = [[label, f"{n}", Num(units.flops(f), f), Num(f"{f / total:.1%}", f / total)]
                               for label, n, f in top]
    if rest:
        f_r = sum(g[2] for g in rest)
        mrows.append([f"{len(rest)} other groups", f"{sum(g[1] for g in rest)}", Num(units.flops(f_r), f_r),
                      Num(f"{f_r / total:.1%}", f_r / total)])
    s.blocks.append(Table(["module (repeats folded as *)", "instances", "forward / sample", "share"], mrows,
                          caption="Top modules by forward FLOPs; each module's own ops (e.g. attention's score "
                                  "matmuls) are split from its children's, so the rows add up to the forward "
                                  "total. Per-module backward FLOPs (each backward op credited to the module "
                                  "whose forward op it differentiates) are in --verbose and the JSON modules."))
    s.blocks.append(Figure("modules", "FLOPs by module",
                           plots.module_flops([(f"{g[0]} x{g[1]}" if g[1] > 1 else g[0], g[2]) for g in top],
                                              f"Top {len(top)} modules by forward FLOPs per sample"),
                           "Forward FLOPs per sample of the largest module groups (all instances together)."))
    return s


def memory_bars(a: Assessment, d: dict[str, Any]) -> list[plots.Bar]:
    """Training, inference and generation memory per device split into parts that add up to the figures of
    to_dict(): the training bar re-derives the layout's shares with estimate.parallel (the estimate's own rule)."""
    from afford.estimate.job import live_peaks
    from afford.estimate.parallel import train_memory_per_device

    mem, t = a.memory, a.trace
    usable = d["memory"].get("usable_bytes")  # None before an estimate: bars without a limit
    bars: list[plots.Bar] = []
    # the training bar whenever the per-device figure is the training one (estimate/job.py: a training job, or
    # no job at all)
    w = a.workload
    if t.backward is not None and a.estimate is not None and (w.wants_training or not w.infer_samples):
        lay = a.estimate.req.layout
        states = mem.optimizer_bytes + mem.master_weights_bytes
        dm = train_memory_per_device(lay, weights=mem.weights_bytes + mem.buffers_bytes,
                                     gradients=mem.gradients_bytes, optimizer=states,
                                     live=live_peaks(a, a.estimate.req.recompute, []))
        share = mem.master_weights_bytes / states if states else 0.0
        act_scale = (min(lay.pp, lay.grad_accum) if lay.pp > 1 else 1) / lay.tp / lay.pp
        saved = min(t.saved_activations_bytes * act_scale, dm.activations_bytes)
        label = f"training ({lay.count} x {a.estimate.req.device.id}" + (
            f", {lay.parallel.value}" if lay.count > 1 else "") + ")"
        bars.append(plots.Bar(label, [("weights", dm.weights_bytes), ("gradients", dm.gradients_bytes),
                                      ("master weights", dm.optimizer_bytes * share),
                                      ("optimizer state", dm.optimizer_bytes * (1 - share)),
                                      ("activations", saved), ("other live tensors", dm.activations_bytes - saved)],
                              usable))
    static = mem.weights_bytes + mem.buffers_bytes
    bars.append(plots.Bar("inference", [("weights", static), ("other live tensors", mem.infer_peak_bytes - static)],
                          usable))
    if mem.generate_peak_bytes:
        bars.append(plots.Bar("generation", [("weights", static), ("KV cache", mem.kv_cache_bytes),
                                             ("other live tensors",
                                              max(mem.generate_peak_bytes - static - mem.kv_cache_bytes, 0))],
                              usable))
    return bars


def _memory_section(a: Assessment, d: dict[str, Any]) -> Section:
    s = Section("memory", "Memory per device")
    rows: list[list[Cell]] = []
    for key, label in (("weights_bytes", "weights"), ("buffers_bytes", "buffers"), ("gradients_bytes", "gradients"),
                       ("master_weights_bytes", "fp32 master weights"), ("optimizer_bytes", "optimizer state"),
                       ("activations_bytes", "activations saved for backward"), ("kv_cache_bytes", "KV cache"),
                       ("train_peak_bytes", "training peak (one device)"), ("infer_peak_bytes", "inference peak"),
                       ("generate_peak_bytes", "generation peak"),
                       ("model_states_per_device_bytes", "model states per device (layout)"),
                       ("per_device_bytes", "per device (layout)"), ("usable_bytes", "usable on the device")):
        if d["memory"].get(key):
            rows.append([label, num(d, f"memory.{key}", _bytes)])
    s.blocks.append(Table(["part", "size"], rows,
                          caption=f"At batch {d['memory']['batch_size']} per device; parts are for the whole model "
                                  "on one device, the layout rows after sharding."))
    bars = memory_bars(a, d)
    device = d.get("hardware", {}).get("device", "the device")
    s.blocks.append(Figure("memory", "Memory per device by part",
                           plots.memory_bars(bars, f"Memory per device on {device}"),
                           "Each bar is what is live at its peak and adds up to the per-device figure above "
                           "(saved activations are freed as backward runs, so they can be gone when the peak "
                           "comes at the optimizer step); the dashed line is the device's usable memory (its "
                           "capacity less 1 GiB for the CUDA context and allocator)."))
    return s


def reprice(a: Assessment, device_ids: Iterable[str] = COMPARED_DEVICES) -> list[tuple[str, dict[str, Any]]]:
    """The traced job on other devices (same count and layout, grid and PUE) through estimate(): no re-trace.
    Returns (label, estimate data) with the assessment's own hardware first."""
    from afford.estimate.job import estimate, request
    from afford.hardware.catalog import Catalog

    assert a.estimate is not None
    own = a.estimate.req
    out: list[tuple[str, dict[str, Any]]] = [
        (f"{own.layout.count} x {own.device.id}" + (" (owned)" if own.energy_usd_per_kwh else ""), a.estimate.data)]
    catalog = Catalog.load()
    lay = own.layout
    for dev_id in device_ids:
        if dev_id == own.device.id or dev_id not in catalog.devices:
            continue
        try:
            req = request(hardware=dev_id, count=lay.count, parallel=lay.parallel.value, tp=lay.tp, pp=lay.pp,
                          grad_accum=lay.grad_accum, catalog=catalog)
            req = replace(req, grid=own.grid, pue=own.pue, mfu=own.mfu, recompute=own.recompute)
            out.append((f"{lay.count} x {dev_id}", estimate(a, req).data))
        except AffordError:
            continue  # a device without the needed peak format: left out of the comparison
    return out


def _options_table(priced: list[tuple[str, dict[str, Any]]], training: bool) -> Table:
    """One row per device; the first (the hardware asked for) carries its to_dict() paths."""
    rows: list[list[Cell]] = []
    phase = "train" if training else "infer"
    for i, (label, e) in enumerate(priced):
        t, c, en, co2, m = e["time"], e["cost"], e["energy"], e["co2"], e["memory"]

        def cell(section: str, key: str, fmt: Any, src: dict[str, Any], i: int = i) -> Cell:
            value = src.get(key)
            if value is None:
                return "-"
            return Num(fmt(value), float(value), f"{section}.{key}" if i == 0 else "")

        mem_key = "per_device_bytes" if training else "infer_per_device_bytes"
        third = (cell("time", "train_mfu", _pct, t) if training else
                 cell("time", "infer_samples_per_second", lambda v: f"{v:,.0f}", t))
        rows.append([label, cell("memory", mem_key, _bytes, m),
                     "yes" if m["fits" if training else "infer_fits"] else "no",
                     cell("time", f"{phase}_seconds", _duration, t), _span(_duration, t[f"{phase}_seconds_range"]),
                     cell("cost", f"{phase}_usd", _usd, c), _span(_usd, c.get(f"{phase}_usd_range")), third,
                     cell("energy", f"{phase}_kwh", _n3, en), cell("co2", f"{phase}_kg", _n3, co2)])
    return Table(["hardware", "per device", "fits", "time", "time range", "cost", "cost range",
                  "MFU" if training else "samples/s", "kWh", "kg CO2e"], rows,
                 caption="The first row is the hardware asked for; the others re-price the same traced job on "
                         "catalog devices at the same count and layout (on-demand prices from the catalog).")


def roofline_data(a: Assessment) -> plots.Roofline:
    """The device's ceilings and the workload's ops placed by arithmetic intensity (traced FLOPs / traced bytes
    per op) at the FLOP/s the time model gives them (estimate/timing.py phase_seconds, op by op)."""
    from afford.estimate.timing import Efficiency, compute_format

    assert a.estimate is not None
    dev = a.estimate.req.device
    eff = Efficiency.for_device(dev)
    precision = a.workload.precision.value
    bw = dev.memory_bandwidth_gb_s * 1e9
    overhead = float(dev.extra.get("op_overhead_s", 0.0))
    t = a.trace
    training = t.backward is not None and a.workload.wants_training
    phases = [("training step", [t.forward, t.backward])] if training else [("inference batch", [t.infer])]
    if t.decode is not None:
        phases.append(("decode step", [t.decode]))
    peaks: dict[str, float] = {}
    points: list[plots.RooflinePoint] = []
    shares: dict[str, float] = {}
    for series, profiles in phases:
        shapes: dict[tuple[str, int, int], list[float]] = {}  # (op, flops, bytes) -> [calls, seconds per call]
        total_time = zero_flop_time = 0.0
        for prof in profiles:
            if prof is None:
                continue
            for (op, flops, nbytes), calls in prof.events.items():
                t_mem = nbytes / (bw * eff.bandwidth)
                if flops:
                    fmt = compute_format(precision, op)
                    peaks[fmt] = dev.peak_flops(fmt)
                    op_t = max(flops / (peaks[fmt] * eff.matmul), t_mem) + overhead
                else:
                    op_t = t_mem + overhead
                    zero_flop_time += calls * op_t
                total_time += calls * op_t
                shapes.setdefault((op, flops, nbytes), [0.0, op_t])[0] += calls
        for (op, flops, nbytes), (n_calls, per_call) in shapes.items():
            if flops > 0 and nbytes > 0 and per_call > 0:
                points.append(plots.RooflinePoint(op, flops / nbytes, flops / per_call,
                                                  n_calls * per_call / total_time if total_time else 0.0, series))
        shares[series] = zero_flop_time / total_time if total_time else 0.0
    if not peaks:
        fmt = compute_format(precision, "mm")
        peaks[fmt] = dev.peak_flops(fmt)
    return plots.Roofline(device=dev.name, bandwidth=bw, peaks=peaks, matmul_fraction=eff.matmul,
                          bandwidth_fraction=eff.bandwidth, points=points, zero_flop_share=shares)


def _hardware_section(a: Assessment, d: dict[str, Any]) -> Section:
    s = Section("hardware", "Time and money per hardware option")
    hw, t = d["hardware"], d["time"]
    layout = f"{hw['count']} x {hw['name']}"
    if hw["count"] > 1 or hw["tp"] > 1 or hw["pp"] > 1:
        layout += f" ({hw['parallel']}, tp {hw['tp']}, pp {hw['pp']}, dp {hw['dp']})"
    rows: list[list[Cell]] = []
    if t.get("train_steps"):
        rows += [["training time", num(d, "time.train_seconds", _duration), _span(_duration, t["train_seconds_range"])],
                 ["GPU-hours", num(d, "time.train_gpu_hours", _n3), _span(_n3, t["train_gpu_hours_range"])],
                 ["MFU", num(d, "time.train_mfu", _pct), _span(_pct, t["train_mfu_range"])],
                 ["training cost", num(d, "cost.train_usd", _usd), _span(_usd, d["cost"].get("train_usd_range"))],
                 ["energy", num(d, "energy.train_kwh", lambda v: f"{_n3(v)} kWh"),
                  _span(_n3, d["energy"].get("train_kwh_range"))],
                 ["CO2", num(d, "co2.train_kg", lambda v: f"{_n3(v)} kg CO2e"), f"grid {d['co2']['grid']}"]]
    if t.get("infer_seconds"):
        rows += [["inference time", num(d, "time.infer_seconds", _duration),
                  _span(_duration, t["infer_seconds_range"])],
                 ["inference cost", num(d, "cost.infer_usd", _usd), _span(_usd, d["cost"].get("infer_usd_range"))]]
    if "generate" in d:
        rows += [["decode", num(d, "generate.decode_tokens_per_second", lambda v: f"{v:,.0f} tokens/s"),
                  f"batch {d['generate']['batch_size']}, context {d['generate']['prompt_tokens']}"],
                 ["per million tokens", num(d, "generate.usd_per_million_tokens", _usd), ""]]
    if rows:
        s.blocks.append(Table(["on " + layout, "estimate", "range"], rows))
    training = bool(t.get("train_steps"))
    if training or t.get("infer_seconds"):
        priced = reprice(a)
        s.blocks.append(_options_table(priced, training))
        opts = []
        for i, (label, e) in enumerate(priced):
            tt, c, m = e["time"], e["cost"], e["memory"]
            secs_key, usd_key = ("train_seconds", "train_usd") if training else ("infer_seconds", "infer_usd")
            s_lo, s_hi = tt[f"{secs_key}_range"]
            u = c.get(f"{usd_key}_range")
            opts.append(plots.Option(label=label, seconds=tt[secs_key], usd=c.get(usd_key),
                                     seconds_range=(s_lo, s_hi), usd_range=(u[0], u[1]) if u else None,
                                     fits=m["fits"] if training else m["infer_fits"],
                                     highlight="asked" if i == 0 else ""))
        what = "training" if training else "inference"
        s.blocks.append(Figure("cost_time", "Cost and time per hardware option",
                               plots.cost_time(opts, f"The {what} job on each device: cost against time"),
                               "Error bars span the documented efficiency range; hollow markers do not fit in the "
                               "device's memory as laid out."))
    r = roofline_data(a)
    zero = "; ".join(f"{share:.0%} of the {series}" for series, share in r.zero_flop_share.items())
    s.blocks.append(Figure("roofline", f"Roofline on the {r.device}",
                           plots.roofline(r, f"Roofline: {r.device}, {a.workload.precision.value}"),
                           "One dot per traced op shape, at its arithmetic intensity (traced FLOPs over traced "
                           "bytes read and written) and the FLOP/s the time model gives it; left of the ridge an "
                           "op is memory-bound. Ops without FLOPs (element-wise, norms, softmax) cannot be drawn on "
                           f"a log axis; they are memory-bound and take {zero} in the time model."))
    return s


def _assessment(a: Assessment) -> Document:
    d = a.to_dict()
    m = d["model"]
    subtitle = (f"{units.count(m['params'])} parameters ({units.count(m['trainable_params'])} trainable); "
                + _job_line(d))
    decided = a.decision.to_dict() if a.decision is not None else None
    sections = [_verdict_section(d.get("verdict"), [_headline(d)]), _compute_section(a, d), _memory_section(a, d)]
    if a.estimate is not None:  # an assessment timed on hardware (assess() always is; a bare trace is not)
        sections.append(_hardware_section(a, d))
    if decided is not None:
        sections.append(_plans_section(decided, a.decision.budget, len(a.decision.found.pareto)))
    sections.append(_notes_section([*d["notes"], *(decided["notes"] if decided else [])],
                                   d["coverage"]["uncounted_ops"]))
    sections.append(_assessment_provenance(a, d))
    return Document(f"afford report: {m['name']}", subtitle, sections)


def _assessment_provenance(a: Assessment, d: dict[str, Any]) -> Section:
    s = Section("provenance", "Provenance")
    rows: list[list[Cell]] = []
    meta = a.spec.metadata
    if meta.get("source"):
        rows.append(["model definition", a.spec.name, str(meta["source"])])
    if meta.get("published_params"):
        rows.append(["published parameter count", f"{int(meta['published_params']):,}",
                     str(meta.get("params_source") or meta.get("source") or a.spec.source)])
    rows.append(["FLOP convention", "2 FLOPs per multiply-accumulate", d["coverage"]["convention"]])
    devices: list[Device] = []
    if a.estimate is not None:
        devices.append(a.estimate.req.device)
    if a.decision is not None:
        from afford.hardware.catalog import Catalog

        catalog = Catalog.load()
        ids = dict.fromkeys(p.strategy.device for p in a.decision.listed())
        devices += [catalog.devices[i] for i in ids if i in catalog.devices and i not in {d.id for d in devices}]
    rows += _device_rows(devices)
    rows += _efficiency_rows([d.id for d in devices])
    if a.estimate is not None:
        rows += _footprint_rows(a.estimate.req.pue, a.estimate.req.grid)
    rows.append(["other devices compared", ", ".join(COMPARED_DEVICES),
                 "hardware/devices.toml: each entry's source, price_source and dates (afford hardware show NAME)"])
    s.blocks.append(Table(PROVENANCE_COLUMNS, rows))
    return s


# ---- PlanResult ---------------------------------------------------------------------------------------------


def _plan_result(r: PlanResult) -> Document:
    from afford.hardware.catalog import Catalog

    d = r.to_dict()
    m = d["model"]
    chosen = d["verdict"].get("plan")
    cards: list[tuple[str, Cell, str]] = []
    if chosen:
        s = chosen["strategy"]
        cards = [("plan", f"{s['adapter']} on {s['count']} x {s['device']}", s["precision"]),
                 ("cost", num(d, "verdict.plan.cost_usd", _usd), ""),
                 ("time", num(d, "verdict.plan.train_seconds", _duration), ""),
                 ("memory per device", num(d, "verdict.plan.per_device_bytes", _bytes),
                  f"of {_bytes(chosen['device_bytes'])}")]
    verdict = _verdict_section(d["verdict"], [Cards("job", cards)] if cards else [])
    compute = Section("compute", "Model and variants traced")
    compute.blocks.append(Para(f"{units.count(m['params'])} parameters; "
                               f"{units.count(m['train_samples'])} training samples"
                               + (f" of {m['seq_len']} tokens" if m.get("seq_len") else "") + "."))
    compute.blocks.append(Table(["variant", "trainable parameters", "weights"],
                                [[name, num(d, f"model.variants.{name}.trainable_params", units.count),
                                  num(d, f"model.variants.{name}.weights_bytes", _bytes)]
                                 for name in m["variants"]]))
    plans = d["plans"]
    memory = Section("memory", "Memory per device")
    bars = [plots.Bar(f"{p['strategy']['adapter']} {p['strategy']['count']}x{p['strategy']['device']}",
                      [("per device", p["per_device_bytes"])], p["device_bytes"] - (1 << 30)) for p in plans]
    memory.blocks.append(Figure("memory", "Memory per device of each plan",
                                plots.memory_bars(bars, "Memory per device of each plan"),
                                "Each plan's memory per device; the black mark is its device's usable memory."))
    asked = Section("hardware", "Time and money per hardware option")
    # the job as asked is judged by the verdict (the planner flags only the plans it searched)
    asked_cells = _plan_cells(d["asked"], "asked")
    asked_cells[-1] = "yes" if d["verdict"]["status"] == "affordable" else "no (see the verdict)"
    asked.blocks.append(Table(["job as asked", *PLAN_COLUMNS[1:]], [asked_cells]))
    plans_section = _plans_section(d, r.budget, len(r.found.pareto))
    catalog = Catalog.load()
    ids = list(dict.fromkeys([d["asked"]["strategy"]["device"], *(p["strategy"]["device"] for p in plans)]))
    prov = Section("provenance", "Provenance")
    devs = [catalog.devices[i] for i in ids if i in catalog.devices]
    prov.blocks.append(Table(PROVENANCE_COLUMNS, _device_rows(devs) + _efficiency_rows(ids)
                             + _footprint_rows(None, None)))
    sections = [verdict, compute, memory, asked, plans_section, _notes_section(d["notes"]), prov]
    return Document(f"afford plan: {m['name']}", _budget_line(r.budget), sections)


def _budget_line(b: Any) -> str:
    parts = []
    if b.usd is not None:
        parts.append(f"budget {_usd(b.usd)}")
    if b.deadline_s is not None:
        parts.append(f"deadline {_duration(b.deadline_s)}")
    if b.max_kwh is not None:
        parts.append(f"at most {b.max_kwh:,.1f} kWh")
    if b.max_co2_kg is not None:
        parts.append(f"at most {b.max_co2_kg:,.1f} kg CO2e")
    if b.available:
        parts.append("owned: " + ", ".join(f"{o.count} x {o.device}" for o in b.available))
    return "; ".join(parts) or "no budget given"


# ---- Comparison ---------------------------------------------------------------------------------------------


def _comparison(c: Comparison) -> Document:
    from afford.hardware.catalog import Catalog

    d = c.to_dict()
    rows = d["models"]
    ok = [r for r in rows if r["verdict"] == "affordable"]
    has_budget = any(v is not None for v in (c.budget.usd, c.budget.deadline_s, c.budget.max_kwh,
                                              c.budget.max_co2_kg))
    verdict = Section("verdict", "Verdict")
    status = ("affordable" if ok else "not_affordable") if has_budget else "none"
    verdict.blocks.append(Cards(status, [("models", f"{len(rows)}", f"{len(ok)} affordable as asked"),
                                         ("hardware", f"{c.count} x {c.hardware}", _budget_line(c.budget))]))
    if rows:
        best = rows[0]
        best_acc = f", {best['accuracy']['metric']} {best['accuracy']['value']:.2f}" if best["accuracy"] else ""
        verdict.blocks.append(Para(f"Best ranked: {best['model']} ({best['verdict'].replace('_', ' ')}{best_acc}, "
                                   f"{_usd(best['cost_usd'])}, {_duration(best['train_seconds'])})."
                                   if best["verdict"] != "error" else f"Best ranked: {best['model']} (error)."))
    if not has_budget:
        verdict.blocks.append(Para("No budget given: every model that fits in memory counts as affordable."))
    models = Section("models", "Models")
    trows: list[list[Cell]] = []
    for i, r in enumerate(rows):
        acc = r["accuracy"]["value"] if r["accuracy"] else None
        trows.append([f"{i + 1}", r["model"], Num(units.count(r["params"]), r["params"], f"models.{i}.params"),
                      Num(f"{acc:.2f}", acc, f"models.{i}.accuracy.value") if acc is not None else "-",
                      num(r, "cost_usd", _usd) if r["cost_usd"] is None else
                      Num(_usd(r["cost_usd"]), r["cost_usd"], f"models.{i}.cost_usd"),
                      Num(_duration(r["train_seconds"]), r["train_seconds"], f"models.{i}.train_seconds"),
                      Num(_bytes(r["per_device_bytes"]), r["per_device_bytes"], f"models.{i}.per_device_bytes"),
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
    limit = (device.memory_bytes - (1 << 30)) if device else None
    memory = Section("memory", "Memory per device")
    memory.blocks.append(Figure("memory", "Memory per device of each model",
                                plots.memory_bars([plots.Bar(r["model"].split(":")[-1],
                                                             [("per device", r["per_device_bytes"])], limit)
                                                   for r in rows if r["verdict"] != "error"],
                                                  f"Memory per device on {c.hardware}"),
                                "Training memory per device of each model against the device's usable memory."))
    prov = Section("provenance", "Provenance")
    prows = _device_rows([device] if device else []) + _efficiency_rows([c.hardware])
    if any(r["accuracy"] for r in rows):
        prows.append(["accuracy", "top-1 as published with the weights",
                      "torchvision weights entries' meta['_metrics'] (each model's recipe is in its weights meta)"])
    prov.blocks.append(Table(PROVENANCE_COLUMNS, prows))
    sections = [verdict, models, memory, _notes_section(d["notes"]), prov]
    return Document(f"afford compare: {len(rows)} models", f"on {c.count} x {c.hardware}", sections)


# ---- entry point --------------------------------------------------------------------------------------------


def build(obj: Any) -> Document:
    """The report document of an Assessment, a PlanResult or a Comparison."""
    from afford.assess import Assessment
    from afford.decide.compare import Comparison
    from afford.decide.run import PlanResult

    if isinstance(obj, Assessment):
        return _assessment(obj)
    if isinstance(obj, PlanResult):
        return _plan_result(obj)
    if isinstance(obj, Comparison):
        return _comparison(obj)
    raise InputError(f"a report needs an Assessment, a PlanResult or a Comparison, got {type(obj).__name__}")
