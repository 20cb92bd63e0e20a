"""Speed and memory of a full trace (one training step forward+backward, inference pass, prefill + decode step)
of the largest catalog models, each in a fresh process so peak RSS is its own.

Targets (issue "counting engine"): Llama 2 70B at seq 4096 under 30 s and 2 GB peak RSS; Llama 3.1 405B at
seq 8192 under 120 s and 4 GB. Writes docs/benchmarks.md and exits non-zero if a target is missed.
Run with `make bench`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

from docsection import replace_section  # bench/ is the script folder, first on sys.path

CASES = [
    ("hf:meta-llama/Llama-2-70b-hf", 4096, 30.0, 2.0),
    ("hf:meta-llama/Llama-3.1-405B", 8192, 120.0, 4.0),
]

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import afford
t1 = time.perf_counter()
a = afford.assess(sys.argv[1], seq_len=int(sys.argv[2]), precision="bf16-mixed", train_tokens=10**12)
t2 = time.perf_counter()
d = a.to_dict()
print(json.dumps({"import_s": t1 - t0, "assess_s": t2 - t1,
                  "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
                  "params": d["model"]["params"], "train_flops_per_token": d["per_token"]["train_flops"],
                  "activations_gb": d["memory"]["activations_bytes"] / 1e9}))
"""


def main() -> int:
    rows = []
    ok = True
    for model, seq, max_s, max_gb in CASES:
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, model, str(seq)], capture_output=True, text=True,
                             check=True)
        wall = time.perf_counter() - start
        r = json.loads(out.stdout.strip().splitlines()[-1])
        passed = r["assess_s"] < max_s and r["rss_gb"] < max_gb
        ok &= passed
        rows.append(f"| {model} | {seq} | {r['assess_s']:.1f} s (target < {max_s:.0f} s) | {r['rss_gb']:.2f} GB "
                    f"(target < {max_gb:.0f} GB) | {wall:.1f} s | {r['params'] / 1e9:.1f} B | "
                    f"{r['train_flops_per_token'] / 1e12:.3f} TFLOPs | {'pass' if passed else 'FAIL'} |")
        print(rows[-1], flush=True)
    replace_section(
        "", "# Benchmarks\n\nWritten by `make bench` (bench/trace_bench.py). A full assessment: one training step "
        "(forward + backward) traced on the meta device, an inference pass, a prefill and a cached decode step; "
        "bf16-mixed, batch 1. `assess` is the time inside `afford.assess` (model build + traces), `process` "
        "includes importing torch and transformers. Peak RSS is the child process's maximum resident set.\n\n"
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}.\n\n"
        "| model | seq | assess | peak RSS | process | params | train FLOPs/token | result |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("AFFORD_NO_CACHE", "1")  # time (and check) real traces, not the trace cache
    raise SystemExit(main())
