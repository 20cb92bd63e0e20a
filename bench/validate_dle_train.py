"""Validate afford's training throughput against NVIDIA's published ResNeXt101-32x4d, SE-ResNeXt101-32x4d and
ResNet-50 v1.5 tables.

Every row of tests/golden/dle_vision_training.toml (DeepLearningExamples, pytorch-21.03: DGX A100 TF32 and AMP,
DGX-1 16GB FP32 and AMP, 1 and 8 GPUs) is priced with `afford.assess(model, batch_size=B, train_samples=...,
precision=..., hardware=..., count=GPUs, optimizer="sgd-momentum", amp=<mixed>)` under the default eager runtime
and host, and compared on `time.train_samples_per_second` (all GPUs). Nothing here sets a constant.

    .venv/bin/python bench/validate_dle_train.py            # price, print, write the docs section
    .venv/bin/python bench/validate_dle_train.py --no-docs  # price and print only
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from docsection import replace_marked  # bench/ is the script folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "dle_vision_training.toml"
START, END = "<!-- dle-train -->", "<!-- /dle-train -->"
HEADING = "DLE vision training (issue 13: training throughput)"


def job(row: dict[str, Any]) -> dict[str, Any]:
    """The afford options of one row: its batch per GPU, GPUs, precision (torch.amp for mixed), SGD momentum."""
    mixed = row["precision"].endswith("mixed")
    return {"batch_size": int(row["batch_size"]), "train_samples": int(row["batch_size"]) * int(row["gpus"]) * 100,
            "precision": row["precision"], "hardware": row["hardware"], "count": int(row["gpus"]),
            "optimizer": "sgd-momentum", "amp": mixed}


def price(row: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """afford's samples/s over all GPUs and its step breakdown, for one row."""
    import afford

    t = afford.assess(row["model"], **job(row)).to_dict()["time"]
    return float(t["train_samples_per_second"]), t["train_step_breakdown"]


def main(argv: list[str]) -> int:
    data = tomllib.loads(GOLDEN.read_text())
    tolerance, rows = float(data["tolerance"]), list(data["row"])
    lines, within = [], 0
    for row in rows:
        rate, br = price(row)
        err = rate / float(row["samples_per_s"]) - 1.0
        ok = abs(err) <= tolerance
        within += ok
        comm = br["dp_comm_exposed_seconds"] / max(br["compute_seconds"], 1e-12)
        lines.append(f"| {row['model'].removeprefix('timm:')} | {row['hardware']} | {row['precision']} | "
                     f"{row['gpus']} | {row['batch_size']} | {float(row['samples_per_s']):,.0f} /s | {rate:,.0f} | "
                     f"{err:+.0%} | {comm:.1%} | {'within' if ok else 'outside'} {tolerance:.0%} |")
        print(lines[-1], flush=True)
    summary = (f"{within} of {len(rows)} rows within {tolerance:.0%} ({within / len(rows):.0%}; issue 13's bar for "
               "added training tables is 75%).")
    print(summary)
    if "--no-docs" in argv:
        return 0
    block = "\n".join([
        START, "",
        "NVIDIA's DeepLearningExamples training tables for ResNeXt101-32x4d, SE-ResNeXt101-32x4d and ResNet-50 v1.5 "
        "(pytorch-21.03 "
        "NGC; DGX A100 80GB in TF32 and AMP, DGX-1 16GB in FP32 and AMP; 1 and 8 GPUs, data parallel; "
        "`tests/golden/dle_vision_training.toml` cites them, with the batch per GPU of configs.yml), every row "
        "priced by `bench/validate_dle_train.py` as timm's `resnext101_32x4d` and `seresnext101_32x4d` and "
        "torchvision's `resnet50` under "
        "afford's defaults (eager runtime, `dgx1-2021` host), SGD with momentum, mixed precision as torch.amp runs "
        "it (`amp=True`: fp32 weights, autocast, GradScaler's unscale pass). Error = predicted / published "
        "images/s - 1; 'exposed comm' is the gradient all-reduce afford does not hide behind backward, as a share "
        "of the compute. No constant was fitted to these rows. Not priced: the data loader (PyTorch's, 8 workers "
        "per GPU on DGX-1, 16 on DGX A100), NHWC (the AMP rows ran channels-last).", "",
        summary, "",
        "Misses, and what they point at (nothing fitted to them): the A100 TF32 rows, +31% to +48% (afford too "
        "fast) on all three models, ResNet-50 included, so not the grouping: TF32 convolutions (cuDNN in the 21.03 "
        "container) reach less of the A100's TF32 peak than afford's matmul fraction gives them, while the same "
        "GPU's AMP rows are -3% to +18% on one GPU and the V100's FP32 rows (CUDA cores) -27% to -1%; no published "
        "TF32 convolution rate was found, and gpu_check's probe group measures one when a GPU is lent. The lent "
        "H200 points the same way: ResNet-50 TF32 inference at batch 256 was +16% (docs/validation.md, H200 "
        "rows) with convolutions 33% of afford's time there, which would make TF32 convolutions about 1.5x slower "
        "than priced; so applied, these A100 TF32 rows would come to about +12% to +26%. Not adopted: one measured "
        "row is too thin to set a rate every fp32 convolution on an Ampere-or-later GPU is priced by. The 8-GPU "
        "AMP rows on the A100 come out faster than their 1-GPU rows by the scaling: published 6.54x (ResNeXt), "
        "6.75x (SE-ResNeXt) and 6.72x (ResNet-50) from 1 to 8 GPUs against afford's 7.99x, 7.99x and 7.99x (its "
        "all-reduce hides behind backward: 0.2% exposed). Read as step times, the published 8-GPU step is 15% to "
        "22% longer than the 1-GPU step in AMP on both machines (20 to 49 ms) and only 3% to 6% longer in FP32 and "
        "TF32 (9 to 25 ms): a cost that grows with the GPU count and shows where the step is short. It is not the "
        "node's data-loading capacity: the same DGX A100 feeds ResNet-50 at 16,621 images/s, twice ResNeXt's "
        "7,925, through the same loader (16 workers a GPU). One candidate is the host: 8 x 16 loader workers and "
        "8 training processes share the node's cores, which slows each process's Python dispatch, and a short AMP "
        "step has less GPU time to hide it behind; afford prices the dispatch of one process on an idle host. Not "
        "modelled (no published measurement separates it).", "",
        "| model | device | precision | GPUs | batch per GPU | published | afford | error | exposed comm | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *lines, "", END])
    replace_marked(START, END, block, HEADING)
    print(json.dumps({"rows": len(rows), "within": within}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
