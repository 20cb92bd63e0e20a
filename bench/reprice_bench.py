"""Warm re-assessment: the same job re-assessed on other hardware re-prices the cached trace (issue 12).

Target: a warm re-assessment of the same job on another device takes under 10% of the first (which traces).
Cases: ResNet-50 (a CNN) and Llama 2 7B at 4096 tokens, first on an A100, then on an H100 and a T4 with a
budget verdict. Appends its table to docs/benchmarks.md ("Re-pricing"). Run with `make bench`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
import afford
model, kwargs = sys.argv[1], json.loads(sys.argv[2])
t0 = time.perf_counter()
afford.assess(model, hardware="a100-80gb", **kwargs)
t1 = time.perf_counter()
afford.assess(model, hardware="h100-sxm", **kwargs)
t2 = time.perf_counter()
afford.assess(model, hardware="t4", budget_usd=1000, **kwargs)
t3 = time.perf_counter()
print(json.dumps({"first_s": t1 - t0, "warm_s": t2 - t1, "warm_budget_s": t3 - t2}))
"""

CASES = [
    ("torchvision:resnet50", {"train_samples": 100_000, "batch_size": 64, "precision": "bf16-mixed"}),
    ("hf:meta-llama/Llama-2-7b-hf", {"train_tokens": 10**9, "seq_len": 4096, "precision": "bf16-mixed"}),
]


def main() -> int:
    lines, ok = [], True
    for model, kwargs in CASES:
        home = tempfile.mkdtemp(prefix="afford-bench-home-")  # an empty trace cache on disk: the first traces
        out = subprocess.run([sys.executable, "-c", CHILD, model, json.dumps(kwargs)], capture_output=True,
                             text=True, check=True, env={**os.environ, "AFFORD_HOME": home})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        share = r["warm_s"] / r["first_s"]
        passed = share < 0.10
        ok = ok and passed
        lines.append(f"| {model} | {r['first_s']:.2f} s | {r['warm_s'] * 1000:.0f} ms ({share:.1%}; target < 10%) | "
                     f"{r['warm_budget_s']:.2f} s | {'pass' if passed else 'FAIL'} |")
        print(lines[-1])
    doc = Path(__file__).parent.parent / "docs" / "benchmarks.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    marker = "\n## Re-pricing\n"
    head, _, rest = text.partition(marker)
    tail = rest.split("\n## ", 1)[1] if "\n## " in rest else ""
    table = ("\nbench/reprice_bench.py: the same job assessed first on an A100 (traced), then on an H100 (the cached "
             "trace re-priced) and on a T4 with a budget verdict (the planner re-prices the same trace over every "
             "device; LoRA variants of an LLM are other graphs and are traced).\n\n"
             "| model | first (traces) | warm, other device | warm + budget verdict | result |\n|---|---|---|---|---|\n"
             + "\n".join(lines) + "\n")
    doc.write_text(head + marker + table + (f"\n## {tail}" if tail else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
