"""Price every case bench/gpu_check.py measured on a lent GPU with afford, and write the "Measured on a lent GPU"
table of docs/validation.md (between its <!-- gpu --> markers).

Usage: .venv/bin/python bench/gpu_compare.py [RESULTS.jsonl ...] [--hardware h200] [--host-profile h200-2026]
(default: bench/results/gpu_check_h200.jsonl and gpu_check_h200_run2.jsonl, the two runs of 2026-12-04)

Nothing here was fitted to these rows: afford's constants (estimate/runtime.toml, the device catalog, the
system efficiency) were set before the run, from other sources. Each row is priced twice: with the host profile
of the machine that measured it (`h200-2026`, derived from that machine's op microbenchmarks, not from these
rows) and with afford's default host (`dgx1-2021`), to show what the host profile changes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from docsection import replace_marked  # bench/ is the script folder, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- gpu -->", "<!-- /gpu -->"
TOLERANCE = 0.35  # the inference issue's target for vision latency and throughput; shown, not asserted


def _precision(row: dict[str, Any]) -> str:
    """The precision a case ran in, as afford names it: the first run's fp32 cases set TF32 for matmuls too (no
    `tf32_matmul` key), which is afford's `tf32`; the second run's kept PyTorch's default, afford's `fp32`."""
    if row.get("precision") == "fp32" and row.get("tf32_matmul") is None:
        return "tf32"
    return str(row.get("precision", "bf16-mixed"))


def price(row: dict[str, Any], hardware: str, host: str | None = None) -> dict[str, float]:
    """afford's figures for one measured case: the same job on the catalog device, driven by the `host` profile."""
    from functools import partial

    from afford.api import assess as assess_any

    assess = partial(assess_any, host_profile=host)
    rt = row.get("runtime", "eager")
    b = int(row["batch"])
    if row["kind"] == "train":
        extra = {"seq_len": int(row["seq"])} if "seq" in row else {}
        # gpu_check trains under torch.autocast with fp32 weights: afford's --amp step
        d = assess(row["model"], train_samples=10 * b, batch_size=b, precision="bf16-mixed", optimizer="adamw",
                   hardware=hardware, runtime=rt, amp=True, **extra).to_dict()
        per_s = float(d["time"]["train_samples_per_second"]) * int(row.get("seq", 1))
        return {"rate": per_s, "peak_gib": d["memory"]["train_peak_bytes"] / 2**30,
                "host": float(bool(d["time"]["train_step_breakdown"]["host"]["bound"]))}
    if row["kind"] == "decode":
        d = assess(row["model"], task="generate", prompt_tokens=int(row["prompt"]),
                   generate_tokens=int(row["tokens"]), batch_size=b, infer_samples=b, precision=row["precision"],
                   hardware=hardware, runtime=rt).to_dict()["generate"]
        return {"rate": b / float(d["decode_seconds_per_token"]), "ttft_s": float(d["prefill_seconds"]),
                "tpot_s": float(d["decode_seconds_per_token"])}
    d = assess(row["model"], infer_samples=10 * b, batch_size=b, precision=_precision(row), hardware=hardware,
               runtime=rt).to_dict()
    t = d["time"]
    return {"rate": float(t["infer_samples_per_second"]), "latency_s": float(t["infer_batch_seconds"]),
            "host": float(bool(t["infer_batch_breakdown"]["host_bound"]))}


def measured_rate(row: dict[str, Any]) -> float:
    """The measured throughput of a case: samples/s, tokens/s for LLM training and decode."""
    if row["kind"] == "decode":
        return float(row["decode_tokens_per_s"])
    return float(row["tokens_per_s"] if "tokens_per_s" in row else row["samples_per_s"])


def line(row: dict[str, Any], p: dict[str, float], p0: dict[str, float]) -> str:
    """One markdown row: the case, measured against predicted (and with the default host, `p0`), the error."""
    what = row["model"].split(":", 1)[1]
    if "seq" in row:
        what += f", seq {row['seq']}"
    if row["kind"] == "decode":
        what += f", prompt {row['prompt']}"
    unit = "tok/s" if row["kind"] == "decode" or "seq" in row else "/s"
    m = measured_rate(row)
    err = p["rate"] / m - 1.0
    precision = _precision(row) if row["kind"] == "infer" else row.get("precision", "bf16-mixed")
    detail = ""
    if row["kind"] == "decode":
        detail = (f"TTFT {row['ttft_s'] * 1e3:,.1f} ms vs {p['ttft_s'] * 1e3:,.1f} "
                  f"({p['ttft_s'] / row['ttft_s'] - 1:+.0%}); TPOT {row['tpot_s'] * 1e3:,.1f} ms vs "
                  f"{p['tpot_s'] * 1e3:,.1f}")
    elif row["kind"] == "infer":
        detail = (f"latency {row['latency_s'] * 1e3:,.2f} ms vs {p['latency_s'] * 1e3:,.2f} "
                  f"({p['latency_s'] / row['latency_s'] - 1:+.0%})")
    elif "peak_gib" in p:
        detail = f"peak {row['peak_gib']:,.1f} GiB vs {p['peak_gib']:,.1f} ({p['peak_gib'] / row['peak_gib'] - 1:+.0%})"
    bound = "" if "host" not in p else ("host" if p["host"] else "GPU")
    ok = "within" if abs(err) <= TOLERANCE else "outside"
    return (f"| {row['kind']} | {what} | {precision} | {row['batch']} | {row.get('runtime', 'eager')} "
            f"| {m:,.0f} {unit} | {p['rate']:,.0f} | {err:+.0%} | {p0['rate'] / m - 1.0:+.0%} | {bound} | {detail} "
            f"| {ok} {TOLERANCE:.0%} |")


def measured_only(rows: list[dict[str, Any]]) -> list[str]:
    """The host microbenchmark and the training-phase split, shown beside afford's constants (not priced)."""
    from afford.estimate import runtime

    c = runtime.constants()
    out: list[str] = []
    for r in rows:
        if r["kind"] == "host" and "error" not in r:
            out += ["Host time per op on the lent machine (2,000 tiny ops issued back to back, best of 3): "
                    f"in-place add {r['add_us']:.1f} us, nn.Linear module call {r['linear_module_us']:.1f} us, "
                    f"nn.Conv2d module call {r['conv_module_us']:.1f} us; afford's eager constant for a "
                    f"kernel-launching op is {(c.dispatch_s + c.launch_s) * 1e6:.1f} us (dispatch + launch, "
                    "derived from DLE ResNet-50 21.03 on 2021 DGX-1-class hosts; estimate/runtime.toml).", ""]
    phases = [r for r in rows if r["kind"] == "phases" and "error" not in r]
    if phases:
        out += ["| model | batch | param tensors | forward | forward + backward | AdamW foreach | AdamW fused "
                "| foreach per tensor |", "|---|---|---|---|---|---|---|---|"]
        for r in phases:
            out.append(f"| {r['model'].split(':', 1)[1]} | {r['batch']} | {r['tensors']} "
                       f"| {r['forward_s'] * 1e3:,.1f} ms | {r['forward_backward_s'] * 1e3:,.1f} ms "
                       f"| {r['adamw_foreach_s'] * 1e3:,.2f} ms | {r['adamw_fused_s'] * 1e3:,.2f} ms "
                       f"| {r['adamw_foreach_s'] / r['tensors'] * 1e6:,.1f} us |")
        out.append("")
    return out


def depthwise_seconds(row: dict[str, Any], hardware: str) -> float:
    """afford's GPU time of the probe's depthwise convolution (the traced conv on the catalog device's roofline,
    no host time)."""
    import torch

    import afford

    c, k, side, b = int(row["channels"]), int(row["kernel"]), int(row["side"]), int(row["batch_run"])
    conv = torch.nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False)
    x = torch.zeros(b, c, side, side, device="meta")
    if row["channels_last"]:
        conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    d = afford.assess(conv, example_inputs=(x,), batch_size=b, infer_samples=b, forward_only=True,
                      precision="fp16" if row["dtype"] == "float16" else "fp32", hardware=hardware).to_dict()
    return float(d["time"]["infer_batch_breakdown"]["gpu_seconds"])


def layer_norm_seconds(row: dict[str, Any], hardware: str) -> float:
    """afford's GPU time of the probe's layer norm (the traced op on the catalog device: its bytes, or the floor of
    its block-per-row kernel, efficiency.toml [row_blocks]; no host time)."""
    import torch

    import afford

    n, width = int(row["rows_run"]), int(row["width"])
    d = afford.assess(torch.nn.LayerNorm(width), example_inputs=(torch.zeros(n, width, device="meta"),), batch_size=n,
                      infer_samples=n, forward_only=True, precision="fp16", hardware=hardware).to_dict()
    return float(d["time"]["infer_batch_breakdown"]["gpu_seconds"])


def probes(rows: list[dict[str, Any]], hardware: str = "h200") -> list[str]:
    """The kernel probes (bench/gpu_check.py `probe`): the serial upsampling rule against its measured per-plane
    time, depthwise convolutions against afford's GPU time for them, and the other probes' measured figures, shown
    for the open questions they answer (not priced)."""
    from afford.estimate.timing import factors

    per_plane = float(factors()["serial"]["iteration_ns"])
    out: list[str] = []
    for r in rows:
        if r.get("kind") != "probe" or "error" in r:
            continue
        if r["probe"] == "upsample_bilinear2d":
            rule = "bytes-bound (NHWC kernel)" if r["channels_last"] else f"{per_plane:.0f} ns a plane"
            err = "" if r["channels_last"] else f" ({per_plane / r['ns_per_plane'] - 1:+.0%})"
            out.append(f"| bilinear 2x upsample, {r['planes']:,} planes of {r['side']}x{r['side']}, {r['dtype']}"
                       f"{', channels_last' if r['channels_last'] else ''} | {r['seconds'] * 1e3:,.2f} ms = "
                       f"{r['ns_per_plane']:,.0f} ns a plane | afford: {rule}{err} |")
        elif r["probe"] == "depthwise":
            t = depthwise_seconds(r, hardware)
            shape = f"({r['batch_run']}, {r['channels']}, {r['side']}, {r['side']})"
            out.append(f"| depthwise {r['kernel']}x{r['kernel']} conv, {shape}, {r['dtype']}"
                       f"{', channels_last' if r['channels_last'] else ''} | "
                       f"{r['seconds'] * 1e3:,.3f} ms | afford: {t * 1e3:,.3f} ms ({t / r['seconds'] - 1:+.0%}) |")
        elif r["probe"] in ("amp_fp16", "fp16_weights"):
            how = ", ".join(k for k in ("channels_last", "fast_norm") if r.get(k)) or "NCHW"
            what = "autocast fp16" if r["probe"] == "amp_fp16" else "fp16 weights"
            out.append(f"| {r['model'].split(':', 1)[1]} batch {r['batch']}, {what}, {how} "
                       f"| {r['samples_per_s']:,.0f} /s | measured only |")
        elif r["probe"] == "grouped_conv":
            how = ", ".join([r["dtype"]] + (["TF32"] if r["tf32"] else []) + (["channels_last"] if r["channels_last"]
                                                                               else []))
            out.append(f"| 3x3 conv, {r['channels']} channels in {r['groups']} groups, ({r['batch_run']}, "
                       f"{r['channels']}, {r['side']}, {r['side']}), {how} | forward {r['forward_tflops']:,.1f} "
                       f"TFLOP/s, forward + backward {r['train_tflops']:,.1f} TFLOP/s | measured only (the grouped "
                       "rate afford lacks) |")
        elif r["probe"] == "layer_norm":
            t = layer_norm_seconds(r, hardware)
            out.append(f"| layer norm, {r['rows_run']:,} rows of {r['width']}, {r['dtype']} | "
                       f"{r['seconds'] * 1e3:,.3f} ms = {r['ns_per_row']:.2f} ns a row | afford: {t * 1e3:,.3f} ms "
                       f"({t / r['seconds'] - 1:+.0%}) |")
        elif r["probe"] == "conv3d_lambda":
            out.append(f"| lambda Conv3d(1, 16, (9, 9, 1)), ({r['batch_run']}, 1, {r['side']}, {r['side']}, "
                       f"{r['width']}), {r['dtype']}{', channels_last_3d' if r['channels_last'] else ''} | "
                       f"{r['seconds'] * 1e3:,.3f} ms = {r['tflops']:,.2f} TFLOP/s | measured only (timm's RTX PRO "
                       "6000 table implies 0.70-0.72 TFLOP/s) |")
        elif r["probe"] == "kernels":
            p10, p50, p90 = r["kernel_us_p10_p50_p90"] or [0, 0, 0]
            out.append(f"| {r['model'].split(':', 1)[1]} batch {r['batch']} fp16 kernels | {r['kernels']} kernels, "
                       f"{r['kernel_us_total']:,.0f} us; p10/p50/p90 {p10:.1f}/{p50:.1f}/{p90:.1f} us "
                       "| measured only |")
    if not out:
        return []
    return ["Kernel probes (bench/gpu_check.py `probe`): the open questions of the time model, measured directly.",
            "", "| probe | measured | afford |", "|---|---|---|", *out, ""]


def speedups(priced: list[tuple[dict[str, Any], dict[str, float]]]) -> list[str]:
    """The fusion check that afford's absolute error does not enter: for each case measured both eager and compiled
    (same model, kind, batch, precision, sequence), the measured compiled / eager speed-up against afford's."""
    def case(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["kind"], r["model"], r["batch"], r.get("precision"), r.get("seq"))

    eager = {case(r): (r, p) for r, p in priced if r.get("runtime", "eager") == "eager"}
    out: list[str] = []
    for r, p in priced:
        if r.get("runtime") != "compiled" or case(r) not in eager:
            continue
        e_row, e_p = eager[case(r)]
        measured = measured_rate(r) / measured_rate(e_row)
        predicted = p["rate"] / e_p["rate"]
        what = r["model"].split(":", 1)[1] + (f", seq {r['seq']}" if "seq" in r else "")
        out.append(f"| {r['kind']} | {what} | {r['batch']} | {measured:.2f}x | {predicted:.2f}x "
                   f"| {predicted / measured - 1:+.0%} |")
    if not out:
        return []
    return ["Element-wise fusion (`--runtime compiled`, counting/fusion.py): torch.compile's speed-up over eager "
            "on the same machine, measured against afford's (compiled / eager samples or tokens per second), "
            "which does not depend on afford's absolute error on either row:", "",
            "| kind | model | batch | measured speed-up | afford's | error |", "|---|---|---|---|---|---|", *out, ""]


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    hardware = sys.argv[sys.argv.index("--hardware") + 1] if "--hardware" in sys.argv else "h200"
    if "--hardware" in sys.argv:
        args.remove(hardware)
    host = sys.argv[sys.argv.index("--host-profile") + 1] if "--host-profile" in sys.argv else "h200-2026"
    if "--host-profile" in sys.argv:
        args.remove(host)
    paths = [Path(a) for a in args] or [ROOT / "bench" / "results" / n
                                        for n in ("gpu_check_h200.jsonl", "gpu_check_h200_run2.jsonl")]
    rows = [json.loads(s) for path in paths for s in path.read_text().splitlines() if s.strip()]
    extra = measured_only(rows) + probes(rows, hardware)
    rows = [r for r in rows if r["kind"] in ("train", "infer", "decode")]
    lines, errors, vision = [], [], []
    priced: list[tuple[dict[str, Any], dict[str, float]]] = []
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['kind']} | {row['model']} | | {row['batch']} | | failed: {row['error']} "
                         "| | | | | | |")
            continue
        p, p0 = price(row, hardware, host), price(row, hardware)
        priced.append((row, p))
        errors.append(p["rate"] / measured_rate(row) - 1.0)
        if row["kind"] == "infer":  # the inference issue's vision target: latency and throughput
            vision.append((int(row["batch"]), errors[-1], p["latency_s"] / row["latency_s"] - 1.0))
        lines.append(line(row, p, p0))
        print(lines[-1], flush=True)
    within = sum(abs(e) <= TOLERANCE for e in errors)
    both = sum(abs(e) <= TOLERANCE and abs(lat) <= TOLERANCE for _, e, lat in vision)
    ones = [(e, lat) for b, e, lat in vision if b == 1]
    ones_ok = sum(abs(e) <= TOLERANCE and abs(lat) <= TOLERANCE for e, lat in ones)
    table = "\n".join([
        START, "",
        f"{within} of {len(errors)} rows within {TOLERANCE:.0%} on throughput (median error "
        f"{sorted(errors)[len(errors) // 2]:+.0%}), priced with the measuring host's profile `--host-profile "
        f"{host}`; the column 'default host' prices the same rows with afford's default (`dgx1-2021`). Vision "
        f"inference (issue 11's target: 75% within 35% on latency and throughput, batch 1 included): {both} of "
        f"{len(vision)} rows within {TOLERANCE:.0%} on both ({both / max(1, len(vision)):.0%}); batch 1: {ones_ok} of "
        f"{len(ones)}. Measured with bench/gpu_check.sh, priced by "
        f"bench/gpu_compare.py on the catalog's `{hardware}`; raw rows in "
        f"{', '.join(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in paths)}.", "",
        "| kind | model | precision | batch | runtime | measured | predicted | error | default host | bound by "
        "(afford) | latency / memory | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *lines, "", *speedups(priced), *extra, END])
    replace_marked(START, END, table, "Measured on a lent GPU")
    print(f"{within}/{len(errors)} within {TOLERANCE:.0%}; wrote docs/validation.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
