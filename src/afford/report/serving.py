"""The report's serving section (issue 11 item 5): a generation job's serving figures with throughput, TPOT and KV
memory against concurrency, or another inference job's latency and throughput against batch size, and the plot of
the inference plans' cost against latency. Formatting only: every figure comes from JSON `serve` and `plans`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from afford.report import plots
from afford.report.fmt import duration, keyed, n3, usd
from afford.report.model import Cell, Figure, Para, Section, Table


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.3g} ms"


def _curve(x: Sequence[float], left: tuple[str, Sequence[float]], right: tuple[str, Sequence[float]],
           x_label: str, title: str, marks: Sequence[tuple[float, str]], key: str) -> str:
    """Two series against x (log-2 x axis; left axis solid, right axis dashed), with labelled vertical lines."""
    fig = plots._figure(8.0, 4.4)
    ax = fig.add_subplot()
    ax.plot(x, left[1], marker="o", color="#1f77b4", label=left[0])
    ax.set_xscale("log", base=2)
    ax.set_xlabel(x_label)
    ax.set_ylabel(left[0])
    twin = ax.twinx()
    twin.plot(x, right[1], marker="s", linestyle="--", color="#d62728", label=right[0])
    twin.set_ylabel(right[0])
    for value, label in marks:
        ax.axvline(value, color="black", linestyle=":", linewidth=1)
        ax.annotate(label, (value, 0.95), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                    ha="right", va="top")
    (h1, l1), (h2, l2) = ax.get_legend_handles_labels(), twin.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8, framealpha=0.9)
    ax.set_title(title, fontsize=11, loc="left")
    plots._style(ax)
    return plots.to_svg(fig, key)


def _generation(s: dict[str, Any]) -> list[Any]:
    """A generation job's serving figures and curve."""
    tp = f" x {s['tp']} (tensor parallel)" if s.get("tp", 1) > 1 else ""
    rows: list[list[Cell]] = [
            ["KV cache capacity", keyed(s, "serve", "kv_cache_capacity_tokens", lambda v: f"{v:,.0f} tokens"),
             f"{s['kv_blocks']:,} blocks of {s['block_size']} at {s['gpu_memory_utilization']:.0%} of "
             f"{s['device']}{tp}"],
            ["max concurrency", keyed(s, "serve", "max_concurrency", lambda v: f"{v:,.0f} requests"),
             f"limited by {s.get('limited_by', 'memory')}; {s['prompt_tokens']:,} + {s['generate_tokens']:,} tokens "
             "each"],
            ["longest context", keyed(s, "serve", "max_context_tokens", lambda v: f"{v:,.0f} tokens"), "one request"],
            ["output throughput", keyed(s, "serve", "throughput_output_tokens_per_s", lambda v: f"{v:,.0f} tokens/s"),
             "at the maximum load, one replica"],
            ["TTFT", keyed(s, "serve", "ttft_seconds", _ms), f"at concurrency {_load(s)}"],
            ["TPOT", keyed(s, "serve", "tpot_seconds", _ms), f"at concurrency {_load(s)}"],
            ["replicas", keyed(s, "serve", "replicas", lambda v: f"{v:,.0f}"),
             f"for {s['rate_requests_per_second']:,.3g} requests/s" if "rate_requests_per_second" in s else
             "one (give --rate for the replicas a load needs)"]]
    for key, what in (("usd_per_million_output_tokens", "$ per 1M output tokens"),
                      ("usd_per_million_input_tokens", "$ per 1M input tokens")):
        if s.get(key) is not None:
            rows.append([what, keyed(s, "serve", key, usd), "at the maximum load"])
    blocks: list[Any] = [Table(["serving", "estimate", "how"], rows)]
    curve = s.get("curve") or []
    if len(curve) > 1:
        x = [r["concurrency"] for r in curve]
        svg = _curve(x, ("output tokens/s", [r["output_tokens_per_second"] for r in curve]),
                     ("TPOT, ms", [r["tpot_seconds"] * 1e3 for r in curve]), "requests in flight (log scale)",
                     "Throughput and time per output token against concurrency",
                     [(s["max_concurrency_kv"], "KV cache full"), (s["max_num_seqs"], "max_num_seqs")]
                     if s["max_concurrency_kv"] <= 2 * x[-1] else [(s["max_num_seqs"], "max_num_seqs")],
                     "serving_curve")
        blocks.append(Figure("serving_curve", "Serving against concurrency", svg,
                             "Continuous batching: each iteration decodes one token of every request in flight, "
                             "prompt tokens riding along as chunked prefill (docs/inference.md, \"Serving\")."))
        kv = Table(["requests in flight", "KV cache", "of capacity", "TTFT", "TPOT"],
                   [[f"{r['concurrency']:,}", f"{r['kv_cache_bytes'] / 2**30:,.2f} GiB",
                     f"{r['kv_cache_bytes'] / s['kv_cache_bytes']:.0%}" if s["kv_cache_bytes"] else "-",
                     _ms(r["ttft_seconds"]), _ms(r["tpot_seconds"])] for r in curve])
        blocks.append(kv)
    return blocks


def _load(s: dict[str, Any]) -> str:
    """The concurrency the headline TTFT and TPOT are at."""
    load = s.get("at_rate") or s.get("at_concurrency") or s.get("max_load") or {}
    return f"{load.get('concurrency', 0):,}"


def _batches(s: dict[str, Any]) -> list[Any]:
    """Another inference job's latency and throughput against batch size."""
    rows = s["batches"]
    fitting = [r for r in rows if r["fits"]]
    marks = []
    if fitting and fitting[-1] is not rows[-1]:
        marks.append((fitting[-1]["batch_size"], "largest batch that fits"))
    best = s.get("best_batch_for_latency")
    if best:
        marks.append((best["batch_size"], "best within the latency target"))
    svg = _curve([r["batch_size"] for r in rows], ("samples/s", [r["samples_per_second"] for r in rows]),
                 ("latency, ms", [r["latency_seconds"] * 1e3 for r in rows]), "batch size (log scale)",
                 f"Latency and throughput against batch size on {s['device']} ({s['runtime']})", marks,
                 "batch_curve")
    top = s.get("max_throughput")
    lead = Para(f"Most samples per second that fit: {top['samples_per_second']:,.0f} at batch {top['batch_size']} "
                f"({_ms(top['latency_seconds'])} a batch)." if top else "No batch fits the device.")
    return [lead, Figure("batch_curve", "Batch curve", svg, "The traced batch re-priced at each size, weights read "
                         "once a batch (docs/inference.md, \"Batch curve\").")]


def serving_section(d: dict[str, Any]) -> Section | None:
    """The serving section of an assessment's JSON, or None when it has no `serve`."""
    s = d.get("serve")
    if not s:
        return None
    sec = Section("serving", "Serving")
    if "batches" in s:
        sec.blocks.extend(_batches(s))
    elif s.get("fits"):
        sec.blocks.extend(_generation(s))
    else:
        sec.blocks.append(Para(f"Does not serve on {s['device']}: {s.get('reason', 'no KV room')}."))
    return sec


def plans_figure(plans: list[dict[str, Any]]) -> Figure:
    """The inference plans' cost against their latency per request (or batch), each labelled."""
    opts = [plots.Option(label=f"{p['count']} x {p['device']} {p['weights']}" + (f" tp{p['tp']}" if p.get("tp", 1) > 1
                                                                                  else ""),
                         seconds=p["latency_seconds"], usd=p["cost_usd"], fits=p["fits"], feasible=p["feasible"])
            for p in plans if p["latency_seconds"] > 0]
    svg = plots.cost_time(opts, "Inference plans: cost of the job against latency", key="inference_plans",
                          x_what="latency")
    return Figure("inference_plans", "Plans: cost against latency", svg,
                  f"{len(opts)} plans; latency per request (generation) or per batch; cost of the whole job "
                  f"({duration(max((p['infer_seconds'] for p in plans), default=0.0))} the longest). "
                  f"Energy of the cheapest: {n3(min((p['energy_kwh'] for p in plans), default=0.0))} kWh.")
