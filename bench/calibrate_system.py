"""Derive the system-efficiency factor from MosaicML llm-foundry's published training throughput table.

For every BF16 row of shared/reference/llmfoundry_throughput.csv (MPT models 1B-70B, A100 40/80 GB and H100,
8 to 512 GPUs, FSDP, with and without activation checkpointing) afford traces a model of MPT's shapes (as a
GPT-2-architecture config with SDPA attention, see _config), times one step with
the roofline, communication and optimizer model at eta_system = 1, and divides the reported tokens/s/GPU by the
predicted one. The median ratio is afford's default eta_system; the 10th and 90th percentiles are its range.
Throughput, not MFU, is compared, so no FLOP convention enters. FP8 rows are skipped (FP8 training is not
modelled). The A100 rows' section states 1600 Gb/s node-to-node (RoCE): 25 GB/s per GPU, used for those rows.

Run: .venv/bin/python bench/calibrate_system.py  (about 10 minutes; writes docs/calibration.md)
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import afford
from afford.estimate.job import estimate
from afford.estimate.request import request
from afford.hardware.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT.parent / "shared" / "reference" / "llmfoundry_throughput.csv"
SHAPES = {"1b": (2048, 24, 16), "3b": (2560, 32, 20), "7b": (4096, 32, 32), "13b": (5120, 40, 40),
          "30b": (7168, 48, 64), "70b": (8192, 80, 64)}
GPU = {"h100_80gb": "h100-sxm", "a100_80gb": "a100-80gb", "a100_40gb": "a100-40gb"}


def _config(model: str, seq: int) -> Path:
    import json

    d, layers, heads = SHAPES[model]
    path = Path(f"/tmp/afford-mpt-{model}-{seq}.json")
    # MPT's shapes as a GPT-2-architecture config: same d_model, layers, heads, 4 x d_model GELU MLP and vocab,
    # with SDPA attention. transformers' own MPT class materialises the ALiBi score matrix in eager ops, which
    # llm-foundry's fused (flash/triton) attention does not; the GPT-2 class runs attention through SDPA.
    path.write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": d,
                                "n_layer": layers, "n_head": heads, "n_positions": seq, "vocab_size": 50368,
                                "activation_function": "gelu", "tie_word_embeddings": True}))
    return path


def main() -> int:
    # BF16 rows of the sizes whose shapes shared/reference/README.md gives (1b-70b)
    rows = [r for r in csv.DictReader(TABLE.open()) if "bf16" in r["precision"] and r["model"] in SHAPES]
    catalog = Catalog.load()
    cache: dict[tuple[str, int, int], Any] = {}
    ratios: list[float] = []
    lines: list[str] = []
    start = time.perf_counter()
    for r in rows:
        seq, micro = int(r["seq_len"]), int(r["micro_batch"])
        key = (r["model"], seq, micro)
        if key not in cache:
            cache[key] = afford.assess(str(_config(r["model"], seq)), seq_len=seq, batch_size=micro,
                                       precision="bf16-mixed", train_tokens=10**9, allow_longer=True)
        a = cache[key]
        device = GPU[r["gpu"]]
        hw = catalog
        if r["gpu"].startswith("a100"):
            import dataclasses

            dev = dataclasses.replace(catalog.get(device), inter_node_gb_s=25.0)
            hw = Catalog([*[d for d in catalog.devices.values() if d.id != device], dev])
        req = request(hardware=device, count=int(r["n_gpus"]),
                      parallel="fsdp" if r["sharding"] == "FULL_SHARD" else "zero2",
                      grad_accum=int(r["grad_accum"]), recompute=r["activation_checkpointing"] == "True",
                      catalog=hw)
        est = estimate(a, req).data
        system = est["time"]["train_step_breakdown"]["efficiency"]["system"]
        step_kernel = est["time"]["train_step_seconds"] * system
        predicted = micro * int(r["grad_accum"]) * seq / step_kernel  # tokens/s/GPU at eta_system = 1
        ratio = float(r["throughput_tokens_per_s_per_gpu"]) / predicted
        ratios.append(ratio)
        lines.append(f"| {r['model']} | {seq} | {r['gpu']} | {r['n_gpus']} | {micro} | "
                     f"{r['activation_checkpointing']} | {float(r['throughput_tokens_per_s_per_gpu']):,.0f} | "
                     f"{predicted:,.0f} | {ratio:.3f} |")
        print(lines[-1], flush=True)
    q = statistics.quantiles(ratios, n=10)
    med = statistics.median(ratios)
    summary = (f"rows: {len(ratios)}; median {med:.3f}; 10th percentile {q[0]:.3f}; 90th percentile {q[-1]:.3f}; "
               f"min {min(ratios):.3f}; max {max(ratios):.3f}; {time.perf_counter() - start:.0f} s")
    print(summary)
    (ROOT / "docs" / "calibration.md").write_text(
        "# Calibration of eta_system against llm-foundry\n\nWritten by `bench/calibrate_system.py`. Each row: "
        "reported tokens/s/GPU (MosaicML llm-foundry `scripts/train/benchmarking/README.md`, via "
        "shared/reference/llmfoundry_throughput.csv) against afford's prediction at eta_system = 1 (roofline with "
        "eta_matmul and eta_bandwidth, FSDP/ZeRO communication, optimizer step, recomputation where the row "
        "checkpoints activations). The ratio is the share of the kernel-level prediction the real system "
        "achieved.\n\n" + summary + "\n\n| model | seq | gpu | gpus | micro-batch | checkpointing | reported "
        "tok/s/GPU | predicted at eta_system=1 | ratio |\n|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
