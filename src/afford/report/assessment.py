"""The report document of an Assessment: verdict and headline figures, compute (FLOPs by figure and by module),
memory per device by part, time and money on the asked hardware and re-priced on other devices with the
roofline, the plans when a budget was given, notes and provenance. Formatting only: the figures come from
`to_dict()` and from estimate/ (shares, reprice, roofline)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from afford import units
from afford.estimate.reprice import COMPARED_DEVICES, reprice
from afford.estimate.roofline import roofline_data
from afford.estimate.shares import memory_shares, module_groups
from afford.report import plots
from afford.report.blocks import (
    PROVENANCE_COLUMNS,
    device_rows,
    efficiency_rows,
    footprint_rows,
    inference_plans_section,
    notes_section,
    plans_section,
    verdict_section,
)
from afford.report.fmt import duration, n3, num, pct, size, span, usd
from afford.report.model import Cards, Cell, Document, Figure, Num, Section, Table
from afford.report.serving import serving_section

if TYPE_CHECKING:
    from afford.assess import Assessment
    from afford.hardware.catalog import Device

TOP_MODULES = 12


def memory_bars(a: Assessment, d: dict[str, Any] | None = None) -> list[plots.Bar]:
    """The memory shares of `a` (estimate/shares.py) as stacked bars under the device's usable memory; `d`, its
    to_dict(), is accepted for the callers that pass it."""
    return [plots.Bar(s.label, list(s.parts), s.limit) for s in memory_shares(a)]


def _job_line(d: dict[str, Any]) -> str:
    """The job in one line: batch, sequence or image size, precision, optimizer, sample counts."""
    w = d["workload"]
    shape = f"seq {w['seq_len']}" if w.get("seq_len") else (f"{w['image_size']} px" if w.get("image_size") else "")
    parts = [f"batch {w['batch_size']}", shape, w["precision"], w["optimizer"]]
    if d["compute"]["train_samples"]:
        parts.append(f"{units.count(d['compute']['train_samples'])} training samples")
    if d["compute"]["infer_samples"]:
        parts.append(f"{units.count(d['compute']['infer_samples'])} inference samples")
    return ", ".join(p for p in parts if p)


def _headline(d: dict[str, Any]) -> Cards:
    """Headline cards: memory per device, training and inference time and cost, decode speed, hardware."""
    mem, t, c = d["memory"], d.get("time", {}), d.get("cost", {})
    items: list[tuple[str, Cell, str]] = []
    if "per_device_bytes" in mem:
        items.append(("memory per device", num(d, "memory.per_device_bytes", size),
                      ("fits in " if mem["fits"] else "does not fit in ") + size(mem["usable_bytes"])
                      + " usable"))
    if t.get("train_steps"):
        items.append(("training time", num(d, "time.train_seconds", duration),
                      span(duration, t.get("train_seconds_range"))))
        items.append(("training cost", num(d, "cost.train_usd", usd), span(usd, c.get("train_usd_range"))))
    if t.get("infer_seconds"):
        items.append(("inference time", num(d, "time.infer_seconds", duration),
                      f"{t['infer_samples_per_second']:,.0f} samples/s"))
        items.append(("inference cost", num(d, "cost.infer_usd", usd), ""))
    if "generate" in d:
        per_m = d["generate"]["usd_per_million_tokens"]
        items.append(("decode", num(d, "generate.decode_tokens_per_second", lambda v: f"{v:,.0f} tokens/s"),
                      f"{usd(per_m)} per M tokens" if per_m is not None
                      else f"batch {d['generate']['batch_size']}"))
    hw = d.get("hardware")
    if hw:
        items.append(("hardware", f"{hw['count']} x {hw['name']}", hw["device"]))
    return Cards("job", items)


def _compute_section(a: Assessment, d: dict[str, Any]) -> Section:
    """FLOPs per sample, token and job, then the top module groups by forward FLOPs (table and plot)."""
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




def _memory_section(a: Assessment, d: dict[str, Any]) -> Section:
    """Memory by part (table) and per device at each peak (stacked bars under the usable memory)."""
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
            rows.append([label, num(d, f"memory.{key}", size)])
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
        third = (cell("time", "train_mfu", pct, t) if training else
                 cell("time", "infer_samples_per_second", lambda v: f"{v:,.0f}", t))
        rows.append([label, cell("memory", mem_key, size, m),
                     "yes" if m["fits" if training else "infer_fits"] else "no",
                     cell("time", f"{phase}_seconds", duration, t), span(duration, t[f"{phase}_seconds_range"]),
                     cell("cost", f"{phase}_usd", usd, c), span(usd, c.get(f"{phase}_usd_range")), third,
                     cell("energy", f"{phase}_kwh", n3, en), cell("co2", f"{phase}_kg", n3, co2)])
    return Table(["hardware", "per device", "fits", "time", "time range", "cost", "cost range",
                  "MFU" if training else "samples/s", "kWh", "kg CO2e"], rows,
                 caption="The first row is the hardware asked for; the others re-price the same traced job on "
                         "catalog devices at the same count and layout (on-demand prices from the catalog).")



def _hardware_section(a: Assessment, d: dict[str, Any]) -> Section:
    """Time, cost, energy and CO2 on the asked hardware, re-priced on other devices, and the roofline."""
    s = Section("hardware", "Time and money per hardware option")
    hw, t = d["hardware"], d["time"]
    layout = f"{hw['count']} x {hw['name']}"
    if hw["count"] > 1 or hw["tp"] > 1 or hw["pp"] > 1:
        layout += f" ({hw['parallel']}, tp {hw['tp']}, pp {hw['pp']}, dp {hw['dp']})"
    rows: list[list[Cell]] = []
    if t.get("train_steps"):
        rows += [["training time", num(d, "time.train_seconds", duration), span(duration, t["train_seconds_range"])],
                 ["GPU-hours", num(d, "time.train_gpu_hours", n3), span(n3, t["train_gpu_hours_range"])],
                 ["MFU", num(d, "time.train_mfu", pct), span(pct, t["train_mfu_range"])],
                 ["training cost", num(d, "cost.train_usd", usd), span(usd, d["cost"].get("train_usd_range"))],
                 ["energy", num(d, "energy.train_kwh", lambda v: f"{n3(v)} kWh"),
                  span(n3, d["energy"].get("train_kwh_range"))],
                 ["CO2", num(d, "co2.train_kg", lambda v: f"{n3(v)} kg CO2e"), f"grid {d['co2']['grid']}"]]
    if t.get("infer_seconds"):
        rows += [["inference time", num(d, "time.infer_seconds", duration),
                  span(duration, t["infer_seconds_range"])],
                 ["inference cost", num(d, "cost.infer_usd", usd), span(usd, d["cost"].get("infer_usd_range"))]]
    if "generate" in d:
        rows += [["decode", num(d, "generate.decode_tokens_per_second", lambda v: f"{v:,.0f} tokens/s"),
                  f"batch {d['generate']['batch_size']}, context {d['generate']['prompt_tokens']}"],
                 ["per million tokens", num(d, "generate.usd_per_million_tokens", usd), ""]]
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


def build(a: Assessment) -> Document:
    """The report document of an Assessment."""
    d = a.to_dict()
    m = d["model"]
    subtitle = (f"{units.count(m['params'])} parameters ({units.count(m['trainable_params'])} trainable); "
                + _job_line(d))
    decided = a.decision.to_dict() if a.decision is not None else None
    sections = [verdict_section(d.get("verdict"), [_headline(d)]), _compute_section(a, d), _memory_section(a, d)]
    if a.estimate is not None:  # an assessment timed on hardware (assess() always is; a bare trace is not)
        sections.append(_hardware_section(a, d))
    serving = serving_section(d)
    if serving is not None:
        sections.append(serving)
    if decided is not None and hasattr(a.decision, "found"):  # a training job's PlanResult
        sections.append(plans_section(decided, a.decision.budget, len(a.decision.found.pareto)))
    elif decided is not None:  # an inference job's decision (decide/inference.py)
        sections.append(inference_plans_section(decided))
    sections.append(notes_section([*d["notes"], *(decided["notes"] if decided else [])],
                                   d["coverage"]["uncounted_ops"]))
    sections.append(_assessment_provenance(a, d))
    return Document(f"afford report: {m['name']}", subtitle, sections)


def _assessment_provenance(a: Assessment, d: dict[str, Any]) -> Section:
    """Where the model definition, the FLOP convention, the devices and the factors come from."""
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
        ids = dict.fromkeys(a.decision.device_ids())
        devices += [catalog.devices[i] for i in ids if i in catalog.devices and i not in {d.id for d in devices}]
    rows += device_rows(devices)
    rows += efficiency_rows([d.id for d in devices])
    if a.estimate is not None:
        rows += footprint_rows(a.estimate.req.pue, a.estimate.req.grid)
    rows.append(["other devices compared", ", ".join(COMPARED_DEVICES),
                 "hardware/devices.toml: each entry's source, price_source and dates (afford hardware show NAME)"])
    s.blocks.append(Table(PROVENANCE_COLUMNS, rows))
    return s
