"""`--explain`: every headline figure with the formula and inputs that produced it and the source of each constant.

Built from an assessment's dict (the JSON contract) plus the catalog and data-file entries it names, so the
explanation can never drift from the figures printed: each formula is re-evaluated from its inputs and the
result is checked against the printed value (`consistent`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from afford import units
from afford.estimate.parallel import RESERVED_BYTES
from afford.estimate.timing import factors

MEMORY_SOURCE = ("mixed precision keeps 16-bit weights/gradients plus fp32 master weights and optimizer state: "
                 "Micikevicius et al. 2018 (arXiv:1710.03740); Adam's two fp32 moments, 2+2+12 bytes per "
                 "parameter: ZeRO, Rajbhandari et al. 2020 (arXiv:1910.02054) sec. 3.1")
ACTIVATION_SOURCE = ("measured, not modelled: tensors autograd saves for backward (torch.autograd.graph."
                     "saved_tensors_hooks) and the live-tensor peak of the traced step (storage finalizers)")
FLOPS_SOURCE = ("traced on the meta device with torch.utils.flop_counter.FlopCounterMode; 2 FLOPs per "
                "multiply-accumulate (PyTorch's formula registry plus afford's counting/formulas.py)")


@dataclass
class Explanation:
    """One headline figure: its value, the formula, the inputs substituted into it and the constants' sources."""

    figure: str
    value: float
    unit: str
    formula: str
    inputs: dict[str, str]
    sources: list[str] = field(default_factory=list)
    recomputed: float | None = None

    @property
    def consistent(self) -> bool:
        """The formula, re-evaluated from its inputs, gives the printed value (to 0.1%)."""
        if self.recomputed is None:
            return True
        return math.isclose(self.recomputed, self.value, rel_tol=1e-3, abs_tol=1e-12)

    def to_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "value": self.value, "unit": self.unit, "formula": self.formula,
                "inputs": self.inputs, "sources": self.sources, "consistent": self.consistent}


def _efficiency_source(section: str, device: str) -> str:
    table = factors().get(section, {})
    entry = table.get(device) if isinstance(table.get(device), dict) else table.get("default", {})
    where = device if isinstance(table.get(device), dict) else "default"
    text = str(entry.get("source", "")) if isinstance(entry, dict) else ""
    return f"efficiency.toml [{section}.{where}]: {text}" if text else f"efficiency.toml [{section}.{where}]"


def _device_source(name: str) -> str:
    from afford.hardware.catalog import Catalog

    try:
        dev = Catalog.load().get(name)
    except Exception:  # noqa: BLE001 - a user-file device: its own file is the source
        return f"{name}: user hardware file"
    return f"devices.toml [{dev.id}]: {dev.source} (read {dev.source_date})"


def explain(data: dict[str, Any]) -> list[Explanation]:
    """The explanations for an assessment dict (`Assessment.to_dict()`)."""
    out: list[Explanation] = []
    m, w, ps, comp, mem = data["model"], data["workload"], data["per_sample"], data["compute"], data["memory"]
    out.append(Explanation(
        "parameters", float(m["params"]), "",
        "P = sum of numel over the module's parameters (built on the meta device: shapes only, no weights)",
        {"source": f"{m['source']} {m['name']}", "trainable": units.count(m["trainable_params"]),
         "published": units.count(m["published_params"]) if m.get("published_params") else "-"},
        [f"architecture from the {m['source']} source (config / constructor of {m['name']})"]))
    out.append(Explanation(
        "forward FLOPs per sample", ps["forward_flops"], "FLOP",
        "C_forward = (sum over traced ops of FLOPs(op, shapes)) / batch",
        {"batch traced": str(mem["batch_size"]), "forward MACs": units.macs(ps["forward_macs"]),
         "attention share": units.flops(ps["attention_flops"])},
        [FLOPS_SOURCE, data["coverage"]["convention"]]))
    if comp["train_samples"]:
        n = comp["train_samples"]
        if w.get("train_tokens"):
            n_how = f"ceil(train_tokens {units.count(w['train_tokens'])} / seq_len {w['seq_len']})"
        else:
            n_how = f"train_samples {units.count(w['train_samples'] or 0)} x epochs {w['epochs']:g}"
        out.append(Explanation(
            "C_train", comp["train_flops"], "FLOP", "C_train = N x (C_forward,train + C_backward)",
            {"N": f"{units.count(n)} = {n_how}", "C_forward,train": units.flops(ps["train_forward_flops"]),
             "C_backward": units.flops(ps["backward_flops"])},
            [FLOPS_SOURCE, "backward traced through autograd (frozen parameters get no weight gradient)"],
            recomputed=n * (ps["train_forward_flops"] + ps["backward_flops"])))
    if comp["infer_samples"]:
        gen = data.get("generate") if isinstance(data.get("generate"), dict) else None
        if gen and gen.get("flops_per_request") is not None:
            out.append(Explanation(
                "C_infer", comp["infer_flops"], "FLOP",
                "C_infer = M x (C_prefill(P) + sum over decode steps of C_decode(context))",
                {"M": units.count(comp["infer_samples"]), "P": str(gen.get("prompt_tokens")),
                 "G": str(gen.get("generate_tokens")), "per request": units.flops(gen["flops_per_request"])},
                [FLOPS_SOURCE, "prefill and cached decode steps traced (docs/generation.md)"],
                recomputed=comp["infer_samples"] * gen["flops_per_request"]))
        else:
            out.append(Explanation(
                "C_infer", comp["infer_flops"], "FLOP", "C_infer = M x C_forward",
                {"M": units.count(comp["infer_samples"]), "C_forward": units.flops(ps["forward_flops"])},
                [FLOPS_SOURCE], recomputed=comp["infer_samples"] * ps["forward_flops"]))
    dev_src = _device_source(data["hardware"]["name"]) if "hardware" in data else ""
    states = ("weights_bytes", "gradients_bytes", "master_weights_bytes", "optimizer_bytes")
    parts = {k.removesuffix("_bytes"): units.gib(mem[k]) for k in (*states, "activations_bytes") if mem.get(k)}
    if "per_device_bytes" in mem:
        hw = data["hardware"]
        states_dev = mem.get("model_states_per_device_bytes", sum(mem.get(k, 0) for k in states))
        out.append(Explanation(
            "memory per device", float(mem["per_device_bytes"]), "B",
            "M_device = model states / sharding (weights + gradients + fp32 master + optimizer) + peak live "
            "activations of the traced step; fits if M_device <= device memory - 1 GiB reserved",
            {**parts, "model states on this device": units.gib(states_dev),
             "layout": f"{hw['parallel']}, dp {hw['dp']}, tp {hw['tp']}, pp {hw['pp']}",
             "usable": f"{units.gib(mem['usable_bytes'])} = {units.gib(mem['device_bytes'])} - "
                       f"{units.gib(RESERVED_BYTES)}"},
            [MEMORY_SOURCE, ACTIVATION_SOURCE, dev_src,
             "1 GiB reserved for the CUDA context and allocator (estimate/parallel.py RESERVED_BYTES)"]))
    else:
        out.append(Explanation("training peak memory", float(mem["train_peak_bytes"]), "B",
                               "weights + gradients + master + optimizer + peak live activations", parts,
                               [MEMORY_SOURCE, ACTIVATION_SOURCE]))
    if "time" in data:
        out.extend(_timing(data, dev_src))
    return out


def _timing(data: dict[str, Any], dev_src: str) -> list[Explanation]:
    """Time, cost, energy, CO2 and MFU of the training job (and inference time), from the estimate's parts."""
    out: list[Explanation] = []
    hw, t, c, e, co2 = data["hardware"], data["time"], data["cost"], data["energy"], data["co2"]
    count, name = hw["count"], hw["name"]
    if t.get("train_steps"):
        br = t["train_step_breakdown"]
        eff = br["efficiency"]
        step_parts = {k.removesuffix("_seconds"): f"{br[k]:.4g} s" for k in (
            "compute_seconds", "optimizer_seconds", "dp_comm_exposed_seconds", "tp_comm_seconds",
            "pipeline_bubble_seconds") if br.get(k)}
        out.append(Explanation(
            "training time", t["train_seconds"], "s",
            "T = steps x t_step; t_step = (sum over ops of max(FLOPs / (peak x eta_matmul), bytes / (bandwidth x "
            "eta_bw)) + optimizer + exposed communication + pipeline bubble) / eta_system",
            {"steps": f"{units.count(t['train_steps'])} (samples per step {units.count(t['samples_per_step'])})",
             "t_step": f"{t['train_step_seconds']:.4g} s", **step_parts,
             "eta_matmul": f"{eff['matmul']:g}", "eta_bw": f"{eff['bandwidth']:g}", "eta_system": f"{eff['system']:g}",
             "peak format": str(t.get("mfu_peak_format"))},
            [dev_src, _efficiency_source("matmul", name), _efficiency_source("bandwidth", name),
             _efficiency_source("system", "default")],
            recomputed=t["train_steps"] * t["train_step_seconds"]))
        if c.get("train_usd") is not None:
            out.append(Explanation(
                "training cost", c["train_usd"], "USD", "cost = devices x T / 3600 x price per device-hour",
                {"devices": str(count), "T": f"{t['train_seconds']:.4g} s",
                 "price": f"${c['price_per_device_hour']:g}/h"},
                [f"price: {hw.get('price_source') or 'given with --price-per-hour'}"],
                recomputed=count * t["train_seconds"] / 3600 * c["price_per_device_hour"]))
        power_w = e["train_kwh"] * 3.6e6 / (count * t["train_seconds"] * e["pue"]) if t["train_seconds"] else 0.0
        power = factors()["power"]
        out.append(Explanation(
            "training energy", e["train_kwh"], "kWh",
            "E = devices x P_avg x T / 3.6e6 x PUE; P_avg = TDP x (idle + (full - idle) x busy share)",
            {"devices": str(count), "P_avg": f"{power_w:,.0f} W", "T": f"{t['train_seconds']:.4g} s",
             "PUE": f"{e['pue']:g}", "idle, full": f"{power['idle_fraction']}, {power['full_load_fraction']} of TDP"},
            [f"power: {power.get('source', '')}", f"PUE: {factors_pue_source()}", dev_src],
            recomputed=count * power_w * t["train_seconds"] / 3.6e6 * e["pue"]))
        out.append(Explanation(
            "training CO2", co2["train_kg"], "kg CO2e", "CO2 = E x grid intensity / 1000",
            {"E": f"{e['train_kwh']:.4g} kWh", "grid": f"{co2['grid']}: {co2['gco2_per_kwh']:g} gCO2e/kWh"},
            [f"grid_intensity.toml [{co2['grid']}]: {grid_source(co2['grid'])}"],
            recomputed=e["train_kwh"] * co2["gco2_per_kwh"] / 1000))
        comp = data["compute"]
        peak = t["train_mfu"] * t["train_seconds"] * count
        out.append(Explanation(
            "MFU", t["train_mfu"], "", "MFU = C_train / (T x devices x peak FLOP/s of the format)",
            {"C_train": units.flops(comp["train_flops"]), "T": f"{t['train_seconds']:.4g} s", "devices": str(count),
             "peak": f"{comp['train_flops'] / peak / 1e12:,.1f} TFLOP/s ({t.get('mfu_peak_format')})" if peak else "-"},
            [dev_src]))
    if t.get("infer_seconds"):
        out.append(Explanation(
            "inference time", t["infer_seconds"], "s",
            "T_infer = batches x t_batch / eta_system (roofline over the traced inference ops)",
            {"M": units.count(data["compute"]["infer_samples"]),
             "throughput": f"{t['infer_samples_per_second']:,.1f} samples/s"},
            [dev_src, _efficiency_source("system", "default")]))
    return out


def factors_pue_source() -> str:
    """The source of the default PUE (grid_intensity.toml [pue])."""
    from afford.estimate.footprint import grid_table

    return str(grid_table().get("pue", {}).get("default_source", ""))


def grid_source(region: str) -> str:
    """The source line of a grid region (or the flag that set it)."""
    from afford.estimate.footprint import grid

    try:
        return grid(region).source
    except Exception:  # noqa: BLE001 - a custom intensity from --grid-gco2-kwh
        return "--grid-gco2-kwh"


def _format(x: Explanation) -> str:
    if x.unit == "FLOP":
        return units.flops(x.value)
    if x.unit == "B":
        return units.gib(x.value)
    if x.unit == "USD":
        return f"${x.value:,.2f}" if x.value >= 1 else f"${x.value:.3g}"
    if x.unit == "s":
        return f"{x.value:,.4g} s"
    if x.figure == "MFU":
        return f"{x.value:.1%}"
    if x.figure == "parameters":
        return units.count(x.value)
    return f"{x.value:.4g} {x.unit}".strip()


def render_explanations(items: list[Explanation], console: Console) -> None:
    """One block per figure: value, formula, inputs, sources."""
    table = Table(title="How each figure was computed (--explain)", header_style="bold", show_lines=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("formula and inputs")
    table.add_column("sources")
    for x in items:
        inputs = "\n".join(f"  {k} = {v}" for k, v in x.inputs.items())
        check = "" if x.consistent else "\n  [red]recomputed value differs[/red]"
        sources = "\n".join(f"- {escape(_short(s))}" for s in x.sources)
        table.add_row(x.figure, _format(x), escape(f"{x.formula}\n{inputs}") + check, sources)
    console.print(table)


def _short(text: str, limit: int = 180) -> str:
    """A source line cut at a word boundary for the terminal (JSON keeps it whole)."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."
