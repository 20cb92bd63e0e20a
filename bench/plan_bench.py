"""Speed of the planner: Llama 2 70B (full, LoRA and QLoRA traced) over every catalog device and count.

Target (issue "verdict"): under 20 s on the 2-core build machine. Appends its result to docs/benchmarks.md.
Run with `make bench`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from docsection import replace_section  # bench/ is the script folder, first on sys.path

CHILD = r"""
import json, resource, time
t0 = time.perf_counter()
from afford.decide.run import plan
t1 = time.perf_counter()
r = plan("hf:meta-llama/Llama-2-70b-hf", train_tokens=2 * 10**12, seq_len=4096, precision="bf16-mixed",
         budget_usd=100_000)
t2 = time.perf_counter()
d = r.to_dict()
print(json.dumps({"plan_s": t2 - t1, "import_s": t1 - t0, "plans": d["searched"], "status": d["verdict"]["status"],
                  "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9}))
"""


def main() -> int:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    import json

    r = json.loads(out.stdout.strip().splitlines()[-1])
    ok = r["plan_s"] < 20.0
    line = (f"| planner: Llama 2 70B, full + LoRA + QLoRA traced, every catalog device and count | "
            f"{r['plan_s']:.1f} s (target < 20 s) | {r['rss_gb']:.2f} GB | {r['plans']} plans evaluated | "
            f"{'pass' if ok else 'FAIL'} |")
    print(line)
    replace_section("Planner", "| case | time | peak RSS | search | result |\n|---|---|---|---|---|\n" + line)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("AFFORD_NO_CACHE", "1")  # time (and check) real traces, not the trace cache
    started = time.perf_counter()
    raise SystemExit(main())
