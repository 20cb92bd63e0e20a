"""llm-foundry's MPT training-throughput table priced from MPT configs, with `--attention eager` and the default.

Every BF16 row of shared/reference/llmfoundry_throughput.csv is priced from a config of transformers' own MPT class
(`model_type: mpt`, tests/golden/configs/llmfoundry-mpt-*.json: llm-foundry's pretraining shapes), traced once per
(size, sequence length, micro-batch); the same trace is timed twice: as traced (`eager`: transformers' MPT
materialises the S x S ALiBi scores) and with eager attention priced as the fused kernel (`auto`: flash on
A100/H100), as llm-foundry runs it. Layout, interconnect and checkpointing as bench/calibrate_system.py prices
them. Prints a markdown section for docs/validation.md.

Run: .venv/bin/python bench/mpt_attention.py [--gpus 8] > /tmp/mpt.md  (minutes: one trace per distinct shape)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

import afford
from afford.estimate.attention import Attention
from afford.estimate.job import estimate
from afford.estimate.request import request
from afford.fusion import fuse_assessment
from afford.hardware.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT.parent / "shared" / "reference" / "llmfoundry_throughput.csv"
CONFIGS = ROOT / "tests" / "golden" / "configs"
GPU = {"h100_80gb": "h100-sxm", "a100_80gb": "a100-80gb", "a100_40gb": "a100-40gb"}
WITHIN = 0.30  # issue 13's bar for the llm-foundry table


def predicted(a: Any, row: dict[str, str], catalog: Catalog, attention: str) -> float:
    """Tokens/s/GPU afford predicts for one table row from an assessment, under `attention`."""
    device = GPU[row["gpu"]]
    hw = catalog
    if row["gpu"].startswith("a100"):  # the A100 section states 1600 Gb/s node-to-node (RoCE): 25 GB/s per GPU
        dev = dataclasses.replace(catalog.get(device), inter_node_gb_s=25.0)
        hw = Catalog([*[d for d in catalog.devices.values() if d.id != device], dev])
    req = request(hardware=device, count=int(row["n_gpus"]),
                  parallel="fsdp" if row["sharding"] == "FULL_SHARD" else "zero2", grad_accum=int(row["grad_accum"]),
                  recompute=row["activation_checkpointing"] == "True", catalog=hw, attention=attention)
    fused = fuse_assessment(a, req.attention)
    step = estimate(fused, req).data["time"]["train_step_seconds"]
    return int(row["micro_batch"]) * int(row["grad_accum"]) * int(row["seq_len"]) / step


def main() -> int:
    """Price the table's rows and print the markdown section."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpus", type=int, default=None, help="only rows with this many GPUs")
    args = parser.parse_args()
    rows = [r for r in csv.DictReader(TABLE.open()) if "bf16" in r["precision"]
            and (CONFIGS / f"llmfoundry-mpt-{r['model']}.json").exists()
            and (args.gpus is None or int(r["n_gpus"]) == args.gpus)]
    catalog = Catalog.load()
    traces: dict[tuple[str, int, int], Any] = {}
    lines, before, after = [], [], []
    for r in rows:
        seq, micro = int(r["seq_len"]), int(r["micro_batch"])
        key = (r["model"], seq, micro)
        if key not in traces:
            traces[key] = afford.assess(str(CONFIGS / f"llmfoundry-mpt-{r['model']}.json"), seq_len=seq,
                                        batch_size=micro, precision="bf16-mixed", train_tokens=10**9,
                                        allow_longer=True, attention="eager", cache=False)
        a = traces[key]
        reported = float(r["throughput_tokens_per_s_per_gpu"])
        eager, fused = (predicted(a, r, catalog, att) for att in ("eager", Attention.AUTO.value))
        e_err, f_err = eager / reported - 1, fused / reported - 1
        before.append(abs(e_err) <= WITHIN)
        after.append(abs(f_err) <= WITHIN)
        lines.append(f"| {r['model']} | {seq} | {r['gpu']} | {r['n_gpus']} | {micro} | {r['grad_accum']} | "
                     f"{r['activation_checkpointing']} | {reported:,.0f} | {eager:,.0f} | {e_err:+.0%} | "
                     f"{fused:,.0f} | {f_err:+.0%} | {'within' if after[-1] else 'outside'} |")
        print(lines[-1], file=sys.stderr, flush=True)
    errors = sorted(abs(float(x.split("|")[12].strip().rstrip("%")) / 100) for x in lines)
    summary = (f"{len(lines)} rows; within {WITHIN:.0%}: eager {sum(before)}/{len(lines)}, fused "
               f"{sum(after)}/{len(lines)}; median |error| fused {statistics.median(errors):.0%}")
    sys.stdout.write(
        summary + "\n\n| model | seq | gpu | gpus | micro-batch | accum | checkpointing | reported tok/s/GPU | eager "
        "| error | fused (auto) | error | within 30% |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
