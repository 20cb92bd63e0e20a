"""Rich tables for an Assessment: the headline figures, memory, the module tree and coverage."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from afford import units


def render_assessment(data: dict[str, Any], console: Console, verbose: bool = False, python: bool = False) -> None:
    """Print an assessment's dict (the JSON contract): one screen by default, every table with `verbose`;
    `python`: its hints name the result's methods, not the CLI's flags (the `__repr__` of an Assessment)."""
    if not verbose:
        render_summary(data, console, python=python)
        return
    _render_full(data, console)
    render_generation(data, console)
    if "verdict" in data:
        shown = data["plans"] if data["verdict"]["status"] != "affordable" else []
        render_verdict(data["verdict"], shown, console)


SHORT_PLANS = 3  # plans shown without --verbose
# the one screen's hints, after "N notes; " and "N more plans: ": to the CLI's flags, or to a result's methods
HINTS = {False: ("compute, memory parts, modules and coverage: --verbose; formulas and sources: --explain; "
                 "everything: --json or --report PATH.html", "--verbose or `afford plan`"),
         True: ("everything: .to_json(); a report: afford.report.write_report(result, 'x.html')",
                ".decision (its PlanResult) or afford.plan(...)")}


def render_generation(data: dict[str, Any], console: Console) -> None:
    """--task generate: the request as traced (prefill + cached decode steps), its KV cache, time and cost."""
    g = data.get("generate") or {}
    if g.get("flops_per_request") is None:
        return
    t = Table(title=f"Generation: {units.count(g['requests'])} requests x ({g['prompt_tokens']} prompt + "
                    f"{g['generate_tokens']} generated tokens), batch {g['batch_size']}", title_justify="left",
              show_header=False, box=None, padding=(0, 2))
    t.add_column("figure", style="bold")
    t.add_column("value", justify="right")
    t.add_column("detail", style="dim")
    vs = f", {g['vs_approx_2n']:+.1%} vs 2N x tokens" if g.get("vs_approx_2n") is not None else ""
    t.add_row("per request", units.flops(g["flops_per_request"]),
              f"prefill {units.flops(g['prefill_flops'])} + {g['decode_steps']} decode steps "
              f"{units.flops(g['decode_flops'])}{vs}")
    t.add_row("KV cache", units.gib(g["kv_cache_bytes_per_request"]),
              f"per request at {g['kv_cache_tokens']} tokens; {units.gib(g['kv_cache_bytes'])} for the batch")
    if "seconds_per_request" in g:
        t.add_row("time", _duration(g["total_seconds"]),
                  f"prefill {_num(g['prefill_seconds'] * 1e3)} ms + decode {_num(g['decode_seconds'] * 1e3)} ms per "
                  f"request; {g['tokens_per_second']:,.0f} tokens/s")
        if g.get("total_usd") is not None:
            t.add_row("cost", _usd(g["total_usd"]), f"{_usd(g['usd_per_million_tokens'])} per M generated tokens")
    _serve_rows(t, data.get("serve"))
    console.print(t)


def _curve_rows(t: Table, curve: dict[str, Any]) -> None:
    """The batch that gives the most samples per second, and the best one within --max-latency (serve.batches)."""
    for label, row in (("best batch", curve.get("max_throughput")),
                       ("within latency", curve.get("best_batch_for_latency"))):
        if row:
            where = (f" (target {_num(curve['max_latency_seconds'] * 1e3)} ms)" if label != "best batch"
                     else " (of 1 to 1,024 that fit)")
            t.add_row(label, f"batch {row['batch_size']:,}",
                      f"{row['samples_per_second']:,.0f} samples/s, {_num(row['latency_seconds'] * 1e3)} ms a "
                      f"batch{where}")


def _serve_rows(t: Table, s: dict[str, Any] | None) -> None:
    """The serving figures (estimate/serving.py) as rows of the generation table: KV capacity, the maximum load,
    the asked concurrency and the replicas for a rate."""
    if not s:
        return
    t.add_row("serving KV", f"{s['max_concurrency_kv']:,} requests",
              f"{units.gib(s['kv_cache_bytes'])} in {s['kv_blocks']:,} blocks of {s['block_size']} at "
              f"{s['gpu_memory_utilization']:.0%} of {s['device']}; longest context {s['longest_context_tokens']:,}")
    if "reason" in s:
        t.add_row("serving", "does not fit", s["reason"])
        return
    for label, f in (("max load", s["max_load"]), ("at concurrency", s.get("at_concurrency"))):
        if f:
            t.add_row(label, f"{f['output_tokens_per_second']:,.0f} out tok/s",
                      f"{f['concurrency']:,} requests at once, {f['requests_per_second']:,.2f} req/s, TTFT "
                      f"{_num(f['ttft_seconds'] * 1e3)} ms, TPOT {_num(f['tpot_seconds'] * 1e3)} ms")
    if s.get("usd_per_million_output_tokens") is not None:
        t.add_row("serving cost", f"{_usd(s['usd_per_million_output_tokens'])} per M out",
                  f"{_usd(s['usd_per_million_input_tokens'])} per M input tokens, at the maximum load")
    if s.get("replicas_for_rate"):
        n = s["replicas_for_rate"]
        t.add_row("for the rate", f"{n:,} replica{'' if n == 1 else 's'}",
                  f"{s['rate_requests_per_second']:,.3g} requests/s sustained")


def render_summary(data: dict[str, Any], console: Console, python: bool = False) -> None:
    """The verdict and the five figures that matter (compute, memory per device, time, cost, energy and CO2);
    `python`: the hints name the result's methods instead of the CLI's flags."""
    more, everything = HINTS[python][1], HINTS[python][0]
    m, w, comp, mem = data["model"], data["workload"], data["compute"], data["memory"]
    shape = f"seq {w['seq_len']}" if w.get("seq_len") else f"{w.get('image_size')} px" if w.get("image_size") else ""
    job = ", ".join(x for x in (f"batch {w['batch_size']}", shape, w["precision"], w["optimizer"]) if x)
    console.print(f"[bold]{m['name']}[/bold]  {units.count(m['params'])} params "
                  f"({units.count(m['trainable_params'])} trainable); {job}")
    verdict = data.get("verdict")
    if verdict is not None:
        render_verdict(verdict, [], console)
    training = bool(comp["train_samples"])
    generating = (data.get("generate") or {}).get("flops_per_request") is not None  # --task generate
    t = Table(show_header=False, box=None, padding=(0, 2))
    t.add_column("figure", style="bold")
    t.add_column("value", justify="right")
    t.add_column("detail", style="dim")
    if training:
        t.add_row("compute", units.flops(comp["train_flops"]),
                  f"C_train = {units.count(comp['train_samples'])} samples x (fwd + bwd)")
    if comp["infer_samples"]:
        each = "requests x (prefill + decode steps)" if generating else "samples x forward"
        t.add_row("compute" if not training else "", units.flops(comp["infer_flops"]),
                  f"C_infer = {units.count(comp['infer_samples'])} {each}")
    if not training and not comp["infer_samples"]:
        t.add_row("compute", units.flops(data["per_sample"]["forward_flops"]), "forward per sample")
    if "hardware" in data:
        hw, tm, c, e, co2 = data["hardware"], data["time"], data["cost"], data["energy"], data["co2"]
        on = f"{hw['count']} x {hw['name']}"
        per_dev = mem["per_device_bytes"] if training else mem.get("infer_per_device_bytes", mem["per_device_bytes"])
        fits = mem["fits"] if training else mem.get("infer_fits", mem["fits"])
        fit_text = f"fits in {units.gib(mem['usable_bytes'])} usable" if fits else \
            f"[red]DOES NOT FIT[/red] in {units.gib(mem['usable_bytes'])} usable"
        t.add_row("memory / device", units.gib(per_dev), f"{fit_text} on {on}")
        quant = mem.get("inference")
        if quant:  # --weights / --kv-cache-dtype: the inference peak in that format
            peak = max(quant["infer_peak_bytes"], quant["generate_peak_bytes"])
            quant_fit = "fits" if quant["fits"] else "[red]DOES NOT FIT[/red]"  # not `verdict`: that is the job's
            t.add_row(f"  as {quant['format']}", units.gib(peak),
                      f"{quant_fit} in {units.gib(quant['device_usable_bytes'])}: weights "
                      f"{units.gib(quant['weights_bytes'])}, KV {quant['kv_cache_dtype']} "
                      f"{units.gib(quant['kv_cache_bytes'])}")
        if training and tm.get("train_steps"):
            lo, hi = tm["train_seconds_range"]
            t.add_row("time", _duration(tm["train_seconds"]), f"{_duration(lo)} .. {_duration(hi)}, "
                      f"MFU {tm['train_mfu']:.0%}")
            if c.get("train_usd") is not None:
                u_lo, u_hi = c["train_usd_range"]
                t.add_row("cost", _usd(c["train_usd"]), f"{_usd(u_lo)} .. {_usd(u_hi)} at "
                          f"{_usd(c['price_per_device_hour'])}/device-hour")
            t.add_row("energy, CO2", f"{_num(e['train_kwh'])} kWh", f"{_num(co2['train_kg'])} kg CO2e ({co2['grid']})")
            if tm.get("infer_seconds"):
                t.add_row("inference", _duration(tm["infer_seconds"]),
                          f"{tm['infer_samples_per_second']:,.1f} samples/s, {_usd(c.get('infer_usd'))}, "
                          f"{_num(e['infer_kwh'])} kWh")
        elif tm.get("infer_seconds"):
            per = "requests" if generating else "samples"
            t.add_row("time", _duration(tm["infer_seconds"]), f"{tm['infer_samples_per_second']:,.1f} {per}/s")
            if c.get("infer_usd") is not None:
                t.add_row("cost", _usd(c["infer_usd"]), f"at {_usd(c['price_per_device_hour'])}/device-hour")
            t.add_row("energy, CO2", f"{_num(e['infer_kwh'])} kWh", f"{_num(co2.get('infer_kg', 0))} kg CO2e")
            _curve_rows(t, data.get("serve") or {})
    else:
        t.add_row("memory (training peak)", units.gib(mem["train_peak_bytes"]), "one device")
    console.print(t)
    if verdict is not None and verdict["status"] != "affordable" and data.get("plans"):
        plans = data["plans"]
        render_verdict({**verdict, "reasons": []}, plans[:SHORT_PLANS], console, header=False)
        if len(plans) > SHORT_PLANS:
            hint = more.replace(" or `afford plan`", "") if "weights" in plans[0] else more  # inference plans
            console.print(f"[dim]{len(plans) - SHORT_PLANS} more plans: {hint}[/dim]")
    render_generation(data, console)
    hidden = len(data.get("notes", []))
    console.print(f"[dim]{hidden} note{'s' if hidden != 1 else ''}; {everything}[/dim]")


def _render_full(data: dict[str, Any], console: Console) -> None:
    """Every table of an assessment: compute, memory parts, hardware, modules, coverage, notes."""
    m, w, ps, comp, mem = data["model"], data["workload"], data["per_sample"], data["compute"], data["memory"]
    title = f"{m['name']}  ({units.count(m['params'])} params, {units.count(m['trainable_params'])} trainable)"
    shape = f"seq {w['seq_len']}" if w.get("seq_len") else f"{w.get('image_size')} px"
    console.print(f"[bold]{title}[/bold]")
    console.print(f"job: batch {w['batch_size']}, {shape}, {w['precision']}, {w['optimizer']}")

    t = Table(title="Compute", show_header=True, header_style="bold")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("how")
    t.add_row("forward / sample", units.flops(ps["forward_flops"]), f"{units.macs(ps['forward_macs'])}, traced")
    t.add_row("backward / sample", units.flops(ps["backward_flops"]), "traced through autograd")
    if "per_token" in data:
        t.add_row("train / token", units.flops(data["per_token"]["train_flops"]),
                  f"useful (masked) {units.flops(data['per_token']['train_flops_useful'])}")
    if "decode" in data:
        d = data["decode"]
        t.add_row("decode / token", units.flops(d["flops_per_token"]), f"with KV cache at {d['context_tokens']} tokens")
    if comp["train_samples"]:
        t.add_row("C_train", units.flops(comp["train_flops"]),
                  f"{units.count(comp['train_samples'])} samples x (fwd + bwd)")
    if comp["infer_samples"]:
        t.add_row("C_infer", units.flops(comp["infer_flops"]), f"{units.count(comp['infer_samples'])} samples x fwd")
    console.print(t)

    mt = Table(title=f"Memory per device (batch {mem['batch_size']})", header_style="bold")
    mt.add_column("part")
    mt.add_column("size", justify="right")
    for key, label in (("weights_bytes", "weights"), ("gradients_bytes", "gradients"),
                       ("master_weights_bytes", "fp32 master weights"), ("optimizer_bytes", "optimizer state"),
                       ("activations_bytes", "activations saved for backward"), ("kv_cache_bytes", "KV cache"),
                       ("train_peak_bytes", "training peak"), ("infer_peak_bytes", "inference peak"),
                       ("generate_peak_bytes", "generation peak")):
        if mem.get(key):
            mt.add_row(label, units.gib(mem[key]))
    console.print(mt)

    if "hardware" in data:
        _render_hardware(data, console)

    rows = data.get("modules", [])
    if rows:
        tt = Table(title="Modules", header_style="bold")
        tt.add_column("module")
        tt.add_column("params", justify="right")
        tt.add_column("fwd FLOPs", justify="right")
        tt.add_column("bwd FLOPs", justify="right")
        for r in rows:
            tt.add_row("  " * r["depth"] + r["module"].split(".")[-1] if r["depth"] else r["module"],
                       units.count(r["params"]), units.flops(r["forward_flops"]), units.flops(r["backward_flops"]))
        console.print(tt)

    unc = data["coverage"]["uncounted_ops"]
    if unc:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(unc.items(), key=lambda kv: -kv[1])[:8])
        console.print(f"[dim]not counted as FLOPs ({len(unc)} ops): {ops}{' ...' if len(unc) > 8 else ''}[/dim]")
    for note in data.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {note}")


_duration = units.duration


def _num(value: float) -> str:
    """Three significant digits, thousands separated: 0.00391, 12.3, 1,720,320."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.0f}" if value >= 100 else f"${value:.2f}" if value >= 0.01 else f"${value:.2g}"


def _render_hardware(data: dict[str, Any], console: Console) -> None:
    hw, t, c, e, co2, mem = data["hardware"], data["time"], data["cost"], data["energy"], data["co2"], data["memory"]
    layout = f"{hw['count']} x {hw['name']}"
    if hw["count"] > 1 or hw["tp"] > 1 or hw["pp"] > 1:
        layout += f" ({hw['parallel']}, tp {hw['tp']}, pp {hw['pp']}, dp {hw['dp']})"
    table = Table(title=f"On {layout}", header_style="bold")
    table.add_column("figure")
    table.add_column("estimate", justify="right")
    table.add_column("range")
    fits = "fits" if mem["fits"] else "DOES NOT FIT"
    table.add_row("memory per device", units.gib(mem["per_device_bytes"]),
                  f"{fits} in {units.gib(mem['usable_bytes'])} usable")
    if "train_seconds" in t and t.get("train_steps"):
        lo, hi = t["train_seconds_range"]
        table.add_row("training time", _duration(t["train_seconds"]), f"{_duration(lo)} .. {_duration(hi)}")
        g_lo, g_hi = t["train_gpu_hours_range"]
        table.add_row("GPU-hours", _num(t["train_gpu_hours"]), f"{_num(g_lo)} .. {_num(g_hi)}")
        table.add_row("MFU", f"{t['train_mfu']:.0%}", f"{t['train_mfu_range'][0]:.0%} .. {t['train_mfu_range'][1]:.0%}")
        if c.get("train_usd") is not None:
            u_lo, u_hi = c["train_usd_range"]
            table.add_row("training cost", _usd(c["train_usd"]), f"{_usd(u_lo)} .. {_usd(u_hi)}")
        table.add_row("energy / CO2", f"{_num(e['train_kwh'])} kWh", f"{_num(co2['train_kg'])} kg CO2e ({co2['grid']})")
    if t.get("infer_seconds"):
        table.add_row("inference time", _duration(t["infer_seconds"]),
                      f"{t['infer_samples_per_second']:,.0f} samples/s")
        table.add_row("inference cost", _usd(c.get("infer_usd")), f"{_num(e['infer_kwh'])} kWh")

    if "generate" in data:
        g = data["generate"]
        table.add_row("decode", f"{g['decode_tokens_per_second']:,.0f} tokens/s",
                      f"batch {g['batch_size']}, context {g['prompt_tokens']}; "
                      f"{_usd(g['usd_per_million_tokens'])} per M tokens")
    console.print(table)


def render_hardware_list(devices: list[Any], console: Console) -> None:
    """One row per device."""
    t = Table(title="Hardware catalog", header_style="bold")
    for col in ("id", "name", "memory", "GB/s", "bf16 TFLOPS", "TDP W", "$/h"):
        t.add_column(col, justify="right" if col not in ("id", "name") else "left")
    for d in devices:
        bf16 = d.peak_tflops.get("bf16") or d.peak_tflops.get("fp16")
        t.add_row(d.id, d.name, units.gib(d.memory_bytes), f"{d.memory_bandwidth_gb_s:,.0f}",
                  f"{bf16:,.1f}" if bf16 else "-", f"{d.tdp_w:,.0f}" if d.tdp_w else "-",
                  f"{d.price_usd_per_hour:.2f}" if d.price_usd_per_hour else "-")
    console.print(t)


def render_device(device: Any, console: Console) -> None:
    """Every field of one device."""
    t = Table(title=device.name, header_style="bold", show_header=False)
    t.add_column("field")
    t.add_column("value", overflow="fold")
    for key, value in device.to_dict().items():
        if value in (None, "", [], {}):
            continue
        t.add_row(key, str(value))
    console.print(t)


def render_verdict(verdict: dict[str, Any], plans: list[dict[str, Any]], console: Console,
                   header: bool = True) -> None:
    """The verdict first, its reasons, then the plans (Pareto set and best per adapter)."""
    colour = {"affordable": "green", "affordable_with_changes": "yellow", "not_affordable": "red"}[verdict["status"]]
    if header:
        console.print(f"[bold {colour}]verdict: {verdict['status'].replace('_', ' ')}[/bold {colour}]")
    for reason in verdict["reasons"]:
        console.print(f"  - {reason}", soft_wrap=True)
    if not plans:
        return
    if "weights" in plans[0]:  # an inference job's plans (decide/inference.py)
        render_inference_plans(plans, console)
        return
    t = Table(title="Plans (Pareto set of cost and time, then the best of each adapter)", header_style="bold")
    for col in ("hardware", "adapter", "precision", "memory savers", "layout", "per device", "time", "cost", "ok"):
        t.add_column(col)
    for p in plans:
        s = p["strategy"]
        savers, layout = strategy_words(s)
        t.add_row(f"{s['count']} x {s['device']}", s["adapter"], s["precision"], savers, layout,
                  units.gib(p["per_device_bytes"]), _duration(p["train_seconds"]), _usd(p["cost_usd"]),
                  "yes" if p["feasible"] else ", ".join(p["violations"]) or "no")
    console.print(t)


def render_inference_plans(plans: list[dict[str, Any]], console: Console) -> None:
    """An inference job's plans: device and replicas, weight format, memory, latency, time, cost, and the changes
    (with what a format costs in quality)."""
    t = Table(title="Inference plans (cheapest, lowest latency, best per weight format)", header_style="bold")
    for col in ("hardware", "weights", "per device", "latency", "time", "cost", "ok"):
        t.add_column(col)
    for p in plans:
        t.add_row(f"{p['count']} x {p['device']}" + (f" (tp {p['tp']})" if p.get("tp", 1) > 1 else "") +
                  (" (owned)" if p["owned"] else ""), p["weights"],
                  units.gib(p["per_device_bytes"]), f"{p['latency_seconds'] * 1e3:,.1f} ms",
                  _duration(p["infer_seconds"]), _usd(p["cost_usd"]),
                  "yes" if p["feasible"] else ", ".join(p["violations"]) or "no")
    console.print(t)
    for change in dict.fromkeys(c for p in plans for c in p["changes"] if c.startswith("weights in")):
        console.print(f"  - {change}", soft_wrap=True)


def strategy_words(s: dict[str, Any]) -> tuple[str, str]:
    """A plan's strategy (its to_dict()) in words: the memory savers it uses, and its layout."""
    savers = ", ".join(x for x, on in (("8-bit Adam", s["optimizer"] == "adam-8bit"),
                                       ("checkpointing", s["recompute"]), ("CPU offload", s["offload"]),
                                       ("FP8", s["fp8"])) if on) or "-"
    layout = f"{s['parallel']}" + (f", tp {s['tp']}" if s["tp"] > 1 else "") + (
        f", micro {s['micro_batch']} x {s['grad_accum']}" if s["grad_accum"] > 1 else "")
    return savers, layout


def render_comparison(data: dict[str, Any], console: Console) -> None:
    """Ranked models: verdict, accuracy, cost, time, memory, accuracy per dollar, Pareto membership."""
    hw = data["hardware"]
    t = Table(title=f"Models for the same job on {hw['count']} x {hw['name']}", header_style="bold")
    for col in ("#", "model", "params", "acc@1", "cost", "time", "per device", "acc/$", "Pareto", "verdict"):
        t.add_column(col, justify="left" if col in ("model", "verdict") else "right")
    for i, r in enumerate(data["models"], 1):
        acc = r["accuracy"]["value"] if r["accuracy"] else None
        t.add_row(str(i), r["model"], units.count(r["params"]), f"{acc:.2f}" if acc is not None else "-",
                  _usd(r["cost_usd"]), _duration(r["train_seconds"]), units.gib(r["per_device_bytes"]),
                  f"{r['accuracy_per_dollar']:.2f}" if r["accuracy_per_dollar"] else "-",
                  "*" if r["pareto"] else "", r["verdict"] if not r["reasons"] else
                  f"{r['verdict']}: {'; '.join(r['reasons'])}")
    console.print(t)
    for note in data.get("notes", []):
        console.print(f"[dim]{note}[/dim]")
    if data.get("plot"):
        console.print(f"plot: {data['plot']}")
