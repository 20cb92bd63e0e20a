"""Issue 5's CPU comparison: `afford calibrate`, then `afford measure` of ResNet-18, BERT-base and GPT-2 small;
writes the table into docs/validation.md (section "Measured on this machine"). Run by `make cpu-check`.

Targets: predicted training step within 30% of measured, peak memory within 15%. Run it on a quiet machine:
other processes on the cores slow the measured steps but not the calibrated figures taken minutes apart.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import psutil
from docsection import VALIDATION, replace_section  # bench/ is the script folder, first on sys.path

JOBS = [("ResNet-18, batch 8, 224 px", ["torchvision:resnet18", "--batch-size", "8"]),
        ("BERT-base, batch 4, seq 128", ["bert-base-uncased", "--batch-size", "4", "--seq-len", "128"]),
        ("GPT-2 small, batch 2, seq 256", ["gpt2", "--batch-size", "2", "--seq-len", "256"])]
MARKER = "## Measured on this machine (issue: measure and calibrate)"
# glibc told to keep the memory PyTorch frees (mallopt(3): no mmap below 4 GiB, no trimming of the heap's top), so a
# step reuses its large tensors' pages instead of faulting fresh ones in: a reference row, not a target
KEEP_FREED = {"MALLOC_MMAP_THRESHOLD_": str(4 << 30), "MALLOC_TRIM_THRESHOLD_": str(64 << 30),
              "MALLOC_TOP_PAD_": str(1 << 30)}
REFERENCE = [("BERT-base, batch 4, seq 128, glibc keeping freed memory", JOBS[1][1]),
             ("GPT-2 small, batch 2, seq 256, glibc keeping freed memory", JOBS[2][1])]


def afford(args: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "afford", *args, "--json"], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout)


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "AFFORD_HOME": home}
        profile = afford(["calibrate"], env)["profile"]
        rows, ok = [], True
        for label, args in JOBS + REFERENCE:
            reference = (label, args) in REFERENCE
            d = afford(["measure", *args, "--steps", "5"], {**env, **KEEP_FREED} if reference else env)
            m, p, e = d["measured"], d["predicted"], d["error_pct"]
            good = abs(e["train_step_seconds"]) <= 30 and abs(e["peak_bytes"]) <= 15
            ok = ok and (good or reference)
            rows.append(f"| {label}, fp32, AdamW | {m['train_step_seconds']:.3f} s | {p['train_step_seconds']:.3f} s | "
                        f"{e['train_step_seconds']:+.1f}% | {m['infer_batch_seconds']:.3f} s | "
                        f"{p['infer_batch_seconds']:.3f} s | {e['infer_batch_seconds']:+.1f}% | "
                        f"{m['peak_bytes'] / 2**20:,.0f} MiB | {p['peak_bytes'] / 2**20:,.0f} MiB | "
                        f"{e['peak_bytes']:+.1f}% | {m['rss_peak_bytes'] / 2**20:,.0f} MiB | "
                        f"{'reference' if reference else 'pass' if good else 'FAIL'} |")
            print(rows[-1])
    probes = "; ".join(f"{k}: {v['predicted_kernel_seconds'] * 1e3:.1f} ms kernels / {v['measured_seconds'] * 1e3:.1f} "
                       f"ms measured" for k, v in profile.get("system_probes", {}).items())
    tf = profile["peak_tflops"]
    rates = profile.get("op_gb_s", {})
    header = ("| job | train step measured | predicted | error | inference batch measured | predicted | error | "
              "peak memory measured | predicted | error | resident set | result |")
    section = f"""{MARKER}

Written by `make cpu-check` (bench/cpu_check.py): `afford calibrate`, then `afford measure MODEL --steps 5`, on
this machine ({platform.machine()}, {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB,
{time.strftime('%Y-%m-%d')}). Error = (predicted - measured) / measured. Targets: training step within 30%, peak
memory within 15%.

Calibrated profile: matmul fp32 {tf['fp32']:.3f} TFLOP/s and bf16 {tf['bf16']:.3f}
(median over 7 shapes, each the faster of two rounds a minute apart), convolution fp32 {tf['tf32']:.3f}
TFLOP/s (median of forward and backward over 4 shapes), streaming copy {profile['memory_bandwidth_gb_s']:.1f} GB/s,
{profile['op_overhead_s'] * 1e6:.1f} us per op, {len(rates)} element-wise/normalisation/random ops at their own
measured GB/s (bernoulli_ {rates.get('bernoulli_', 0):.2f}, tanh {rates.get('tanh', 0):.1f},
gelu {rates.get('gelu', 0):.1f}), AdamW step {profile.get('optimizer_gb_s', 0):.1f} GB/s, system
efficiency {profile.get('system_efficiency', 1):.3f} from two probe networks that are not validated here ({probes}).

Peak memory is measured from PyTorch's CPU allocation events over one training step (the tensors alive at its
start plus the highest running sum of allocations and frees); the process's resident set is shown beside it.

Training steps are timed apart from the resident-set sampler (a thread polling every ms had slowed them by 10-24%
on 2 cores). On a CPU, PyTorch runs scaled_dot_product_attention with dropout on as its math path (the CPU
flash kernel refuses dropout: aten/src/ATen/native/transformers/sdp_utils_cpp.cpp, `use_flash_attention_cpp`,
`check_for_dropout`); afford prices it so on CPU devices (docs/methodology.md, "Dropout on a CPU"). Before that,
on 2026-12-05's machine: BERT-base's training step -24%, GPT-2 small's -34%, their peak memory -1% and -7%.
What is left of GPT-2's gap, from one profiled training step against afford's per-op prices on the same
calibration (2026-12-05): the math path itself is priced as it runs (_safe_softmax 31.5 ms priced, 31.8 ms
measured; bernoulli_ 150 and 150), but fresh large outputs cost more in the model than on the probes: the tied
embedding's 154 MB gradient, zero-filled (261 ms in the step, 28 ms timed alone) and summed with the LM head's
(274 ms, 37 ms alone), and GELU's muls on 6 MB outputs (326 ms over 84 calls). The cause is glibc's
allocator (mallopt(3), man7.org: blocks above the mmap threshold, at most 32 MiB by its own adjustment, are mapped
fresh and unmapped on free, and the heap's top is trimmed back to the system), so every step faults its largest
tensors in again, at about 7 us per 4 KB page in the step against 0.7 us alone on this virtual machine; afford
does not price it. It varies from run to run: four runs of this check on 2026-12-05 put GPT-2's step at -26.5%,
-33.7%, -23.3% and -24.5% (2.79-3.30 s measured; 2.10-2.19 s predicted). The last two rows measure the same BERT
and GPT-2 steps with glibc told to keep freed memory (MALLOC_MMAP_THRESHOLD_ 4 GiB, MALLOC_TRIM_THRESHOLD_
64 GiB, MALLOC_TOP_PAD_ 1 GiB; references, not targets). Timed apart on 2026-12-05, GPT-2's median step: 2.97 s
by default, 2.10 s with all three, 2.48 s with the mmap threshold alone, 3.09 s with the other two alone
(BERT-base: 1.95 s by default, 1.68 s with all three, 1.50 s predicted). jemalloc or tcmalloc (LD_PRELOAD) keep
freed memory too.

{header}
|---|---|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n"
    # this section only, up to the next heading: the sections after it belong to other scripts (a fixed end
    # heading once cut off every section placed between them)
    replace_section(MARKER.removeprefix("## "), section.removeprefix(MARKER).strip("\n") + "\n", VALIDATION)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
