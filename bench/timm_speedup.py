"""The fusion check of timm's torch.compile table: for each model both timm tables measured at the same image size,
the measured compiled/eager speed-up (dynamo samples/s over eager samples/s: each at its own batch, so normalised
as samples/s) against afford's predicted one (its compiled over its eager rate for that row). A ratio of two of
afford's own predictions, it does not depend on afford's absolute error, only on what fusion and the compiled
runtime change. Used by bench/validate_timm_infer.py `--table dynamo`."""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import median
from typing import Any

from validate_timm_infer import arch_class, key

BAND = 0.15  # predicted speed-up within 15 % of the measured one
STALE = 0.02  # an eager results record further than this from the same-run eager price is from another afford


def pairs(dyn_rows: list[dict[str, str]], dyn_results: dict[str, dict[str, Any]], eager_rows: list[dict[str, str]],
          eager_results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per model and size priced in the dynamo results and measured in both tables."""
    eager = {key(r["model"], r["img_size"]): r for r in eager_rows}
    out = []
    for row in dyn_rows:
        k = key(row["model"], row["img_size"])
        rec, e_row, e_rec = dyn_results.get(k), eager.get(k), eager_results.get(k, {})
        if rec is None or not rec.get("ok") or e_row is None:
            continue
        same_run = rec.get("eager_predicted")
        e_pred = same_run if same_run else (e_rec.get("predicted") if e_rec.get("ok") else None)
        if not e_pred:
            continue
        measured = float(row["infer_samples_per_sec"]) / float(e_row["infer_samples_per_sec"])
        predicted = float(rec["predicted"]) / float(e_pred)
        same_batch = int(row["infer_batch_size"]) == int(e_row["infer_batch_size"])  # else the rates differ anyway
        stale = bool(same_run and same_batch and e_rec.get("ok")
                     and abs(float(e_rec["predicted"]) / float(same_run) - 1) > STALE)
        out.append({"model": row["model"], "img_size": int(row["img_size"]), "measured": measured,
                    "predicted": predicted, "ratio": predicted / measured, "stale_eager": stale,
                    "eager_in_file": bool(e_rec.get("ok")), "batch": int(row["infer_batch_size"]),
                    "eager_batch": int(e_row["infer_batch_size"])})
    return out


def speedup_lines(dyn_rows: list[dict[str, str]], dyn_results: dict[str, dict[str, Any]],
                  eager_rows: list[dict[str, str]], eager_results: dict[str, dict[str, Any]]) -> list[str]:
    """The speed-up check's lines for the dynamo section of docs/validation.md."""
    ps = pairs(dyn_rows, dyn_results, eager_rows, eager_results)
    head = ["", "### Fusion check: compiled / eager speed-up, measured vs predicted", "",
            "For each model and size in both timm tables: measured speed-up = torch.compile samples/s / eager "
            "samples/s (timm's two csvs, each at its own batch); predicted = afford's compiled rate / its eager "
            "rate for the same row (both from one worker call: `eager_predicted` in the dynamo results, priced "
            "at the dynamo row's batch with the same trace). The ratio predicted / measured speed-up checks what "
            "fusion and the compiled runtime change, whatever afford's absolute error on either table.", ""]
    if not ps:
        return [*head, "- no row priced yet"]
    ratios = sorted(p["ratio"] for p in ps)
    within = sum(1 for p in ps if abs(p["ratio"] - 1) <= BAND)
    up_m, up_p = sum(1 for p in ps if p["measured"] > 1), sum(1 for p in ps if p["predicted"] > 1)
    agree = sum(1 for p in ps if (p["measured"] > 1) == (p["predicted"] > 1))
    in_file = [p for p in ps if p["eager_in_file"]]
    stale = sum(1 for p in in_file if p["stale_eager"])
    lines = [
        *head,
        f"- rows in both tables and priced: {len(ps)}; measured speed-up: median "
        f"{median(p['measured'] for p in ps):.2f}x (range {min(p['measured'] for p in ps):.2f}x to "
        f"{max(p['measured'] for p in ps):.2f}x); predicted: median {median(p['predicted'] for p in ps):.2f}x "
        f"(range {min(p['predicted'] for p in ps):.2f}x to {max(p['predicted'] for p in ps):.2f}x)",
        f"- **predicted speed-up within {100 * BAND:.0f} % of the measured: {within} of {len(ps)} "
        f"({100 * within / len(ps):.1f} %)**; predicted / measured speed-up: median {median(ratios):.2f}, "
        f"10th-90th percentile {ratios[int(0.1 * (len(ratios) - 1))]:.2f} to "
        f"{ratios[int(0.9 * (len(ratios) - 1))]:.2f}",
        f"- compiled faster than eager: measured for {up_m} rows, predicted for {up_p}; same direction for {agree} "
        f"of {len(ps)}",
        f"- eager results file (bench/results/timm_infer_pro6000.jsonl) vs the same-run eager price at the same "
        f"batch: {len(in_file)} rows there, {stale} differ by more than {100 * STALE:.0f} % (if any, priced by an "
        "older afford: rerun the eager table)" if in_file
        else "- eager results file: none of these rows priced there yet",
        "", "By architecture class (medians):", "",
        "| class | rows | measured speed-up | predicted speed-up | predicted / measured | within 15 % |",
        "|---|---:|---:|---:|---:|---:|"]
    by_class: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in ps:
        by_class[arch_class(p["model"])].append(p)
    for title, members in sorted(by_class.items(), key=lambda kv: -len(kv[1])):
        n_in = sum(1 for p in members if abs(p["ratio"] - 1) <= BAND)
        lines.append(f"| {title} | {len(members)} | {median(p['measured'] for p in members):.2f}x | "
                     f"{median(p['predicted'] for p in members):.2f}x | {median(p['ratio'] for p in members):.2f} | "
                     f"{n_in} |")
    lines += ["", "Worst 10 rows (by |log(predicted / measured speed-up)|):", "",
              "| model | img | batch (compiled / eager) | measured speed-up | predicted speed-up "
              "| predicted / measured |",
              "|---|---:|---:|---:|---:|---:|"]
    for p in sorted(ps, key=lambda p: -abs(math.log(p["ratio"])))[:10]:
        lines.append(f"| {p['model']} | {p['img_size']} | {p['batch']} / {p['eager_batch']} | {p['measured']:.2f}x | "
                     f"{p['predicted']:.2f}x | {p['ratio']:.2f} |")
    return lines
