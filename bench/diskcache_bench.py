"""Disk-warm re-assessment: a NEW process re-assessing the same job reads the trace kept on disk (issue 12, item 5).

Each case runs twice in a fresh subprocess sharing one empty AFFORD_HOME: the first traces and keeps the trace
(tracedisk.py), the second finds it on disk and only prices. Target: the warm `afford.assess` takes under 10% of
the cold one. `process` is the whole child, imports included (torch alone takes seconds on a busy 2-core box).
Appends its table to docs/benchmarks.md ("Trace cache on disk"). Run with `make bench`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import afford
from afford import tracedisk
t1 = time.perf_counter()
a = afford.assess(sys.argv[1], hardware="a100-80gb", **json.loads(sys.argv[2]))
t2 = time.perf_counter()
out = a.to_dict()
print(json.dumps({"import_s": t1 - t0, "assess_s": t2 - t1, "rows": len(tracedisk.rows()),
                  "modules": "torchvision" in sys.modules or "transformers.models.llama.modeling_llama" in sys.modules,
                  "digest": json.dumps(out, sort_keys=True, default=str)}))
"""

CASES = [
    ("torchvision:resnet50", {"train_samples": 100_000, "batch_size": 64, "precision": "bf16-mixed"}),
    ("hf:meta-llama/Llama-2-7b-hf", {"train_tokens": 10**9, "seq_len": 4096, "precision": "bf16-mixed"}),
]
TARGET = 0.10


def _child(model: str, kwargs: dict[str, object], home: str) -> dict[str, object]:
    """One fresh process assessing the job; its timings, the process wall time and the result's digest."""
    env = {**os.environ, "AFFORD_HOME": home}
    env.pop("AFFORD_NO_CACHE", None)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, model, json.dumps(kwargs)], capture_output=True, text=True,
                         check=True, env=env)
    r: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    r["process_s"] = time.perf_counter() - t0
    return r


def main() -> int:
    """Run every case cold then disk-warm and write the table; exit 1 when a case misses the target."""
    lines, ok = [], True
    for model, kwargs in CASES:
        with tempfile.TemporaryDirectory(prefix="afford-bench-home-") as home:
            cold = _child(model, kwargs, home)
            warm = _child(model, kwargs, home)
        share = float(warm["assess_s"]) / float(cold["assess_s"])  # type: ignore[arg-type]
        same = warm["digest"] == cold["digest"]
        passed = share < TARGET and same and warm["rows"] == 1
        ok = ok and passed
        lines.append(f"| {model} | {cold['assess_s']:.2f} s | {float(warm['assess_s']) * 1000:.0f} ms "  # type: ignore[arg-type]
                     f"({share:.1%}; target < {TARGET:.0%}) | {cold['process_s']:.1f} s | {warm['process_s']:.1f} s | "
                     f"{'yes' if same else 'NO'} | {'pass' if passed else 'FAIL'} |")
        print(lines[-1])
    doc = Path(__file__).parent.parent / "docs" / "benchmarks.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    marker = "\n## Trace cache on disk\n"
    head, _, rest = text.partition(marker)
    tail = rest.split("\n## ", 1)[1] if "\n## " in rest else ""
    table = (f"\nbench/diskcache_bench.py: the same job assessed in two fresh processes sharing one empty "
             f"AFFORD_HOME; the first traces and keeps the trace on disk (trace-cache.sqlite3), the second reads it "
             f"and only prices (its spec's code is resolved only if used, so the model's library is not imported). "
             f"`assess` is the time inside `afford.assess`, `process` the whole child with imports. Machine: "
             f"{platform.machine()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.\n\n"
             "| model | cold assess (traces) | disk-warm assess | cold process | warm process | same to_dict | "
             "result |\n|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")
    doc.write_text(head + marker + table + (f"\n## {tail}" if tail else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
