#!/usr/bin/env bash
# Measured step times and latencies on a lent CUDA GPU (bench/gpu_check.py, standalone: torch, torchvision,
# timm and transformers only), one process per group under its own time limit, each finished case appended to
# ${OUT:-./gpu_check_out}/gpu_check.jsonl at once. Worst case about 8.5 minutes with the default groups.
# Then, here: `.venv/bin/python bench/gpu_compare.py PATH/gpu_check.jsonl` prices the same jobs with afford and
# writes docs/validation.md's "Measured on a lent GPU" table.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-./gpu_check_out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error
py="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total,power.limit,clocks.max.sm,driver_version --format=csv \
  | tee "$out/nvidia-smi.csv" || true
"$py" -c "import torch, torchvision, timm, transformers; print('torch', torch.__version__, 'torchvision', \
torchvision.__version__, 'timm', timm.__version__, 'transformers', transformers.__version__)" | tee "$out/versions.txt"
# GPU_GROUPS: "name limit_s" pairs. The default runs the kernel probes first (the open questions), then the groups
# first measured on 2026-12-04 (compiled-vit, measured then, and the other compiled groups need GPU_GROUPS set; each
# command may run at most 600 s).
groups=${GPU_GROUPS:-"probe 200;infer 100;train 110;decode 90"}
IFS=';' read -ra runs <<< "$groups"
for group in "${runs[@]}"; do
  set -- $group
  echo "== $1 (limit $2 s)"
  timeout "$2" "$py" bench/gpu_check.py "$1" "$out/gpu_check.jsonl" 2>>"$out/stderr.txt" \
    || echo "gpu_check: group $1 ended with status $? (see stderr.txt)"
  tail -3 "$out/stderr.txt"
done
echo "gpu_check: done; results in $out/gpu_check.jsonl"
