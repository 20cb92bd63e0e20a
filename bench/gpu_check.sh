#!/usr/bin/env bash
# Predicted against measured on a CUDA GPU: calibrate the device, then time ResNet-18 (batch 8, 224 px),
# BERT-base (batch 4, seq 128) and GPT-2 small (batch 2, seq 256) for real and compare with afford's
# prediction. Meant for a lent GPU machine, under 8 minutes; writes results to ${OUT:-./gpu_check_out}.
#
# It needs torch, torchvision, transformers, timm, typer, rich, platformdirs, psutil, peft and pyyaml already
# importable (the machine has no network); afford itself runs from src/ without installing.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-./gpu_check_out}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" AFFORD_HOME="$out/home" PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
"$py" - <<'PY'
import importlib, sys
missing = [m for m in ("torch", "torchvision", "transformers", "timm", "typer", "rich", "platformdirs", "psutil",
                       "peft", "yaml") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing packages: {', '.join(missing)}")
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible")
print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__)
PY
nvidia-smi --query-gpu=name,memory.total,power.limit --format=csv | tee "$out/nvidia-smi.csv" || true
timeout 120 "$py" -m afford calibrate --device cuda --json | tee "$out/calibrate.json"
for job in "torchvision:resnet18 --batch-size 8" \
           "hf:google-bert/bert-base-uncased --batch-size 4 --seq-len 128" \
           "hf:openai-community/gpt2 --batch-size 2 --seq-len 256"; do
  name=$(echo "$job" | cut -d' ' -f1 | tr ':/' '__')
  # shellcheck disable=SC2086
  timeout 150 "$py" -m afford measure $job --device cuda --steps 10 --precision bf16-mixed --json \
    | tee "$out/measure_${name}.json"
done
echo "gpu_check: done; results in $out"
