"""Rich tables for an Assessment: the headline figures, memory, the module tree and coverage."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from afford import units


def render_assessment(data: dict[str, Any], console: Console, verbose: bool = False) -> None:
    """Print an assessment's dict (the JSON contract) as tables."""
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

    rows = data.get("modules", [])
    if rows:
        tt = Table(title="Modules", header_style="bold")
        tt.add_column("module")
        tt.add_column("params", justify="right")
        tt.add_column("fwd FLOPs", justify="right")
        tt.add_column("bwd FLOPs", justify="right")
        limit = None if verbose else 25
        for r in rows[:limit]:
            tt.add_row("  " * r["depth"] + r["module"].split(".")[-1] if r["depth"] else r["module"],
                       units.count(r["params"]), units.flops(r["forward_flops"]), units.flops(r["backward_flops"]))
        if limit is not None and len(rows) > limit:
            tt.add_row(f"... {len(rows) - limit} more (--verbose or --depth)", "", "", "")
        console.print(tt)

    unc = data["coverage"]["uncounted_ops"]
    if unc:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(unc.items(), key=lambda kv: -kv[1])[:8])
        console.print(f"[dim]not counted as FLOPs ({len(unc)} ops): {ops}{' ...' if len(unc) > 8 else ''}[/dim]")
    for note in data.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {note}")


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
