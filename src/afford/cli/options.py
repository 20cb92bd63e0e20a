"""The option and argument types the commands share, each declared once: a flag's name, help and type live here."""

from __future__ import annotations

from typing import Annotated

import typer

JobModelArg = Annotated[str | None, typer.Argument(
    help="torchvision:NAME, timm:NAME, hf:ORG/NAME, keras:NAME, recsys:NAME, diffusers:NAME, module:pkg.mod:fn, a "
         "config.json, model directory, .onnx, .keras or .safetensors path, or a bare name (or set it in --job)")]
Job = Annotated[str | None, typer.Option(help="a job file (.toml/.yaml) with model, workload, hardware and budget; "
                                              "flags override it")]
Report = Annotated[str | None, typer.Option(help="also write a report: PATH.html (self-contained) or PATH.md")]

# the workload (assess, plan, compare, measure)
TrainSamples = Annotated[int | None, typer.Option(help="training samples per epoch (N)")]
Epochs = Annotated[float, typer.Option(help="passes over the training samples")]
TrainTokens = Annotated[int | None, typer.Option(help="training tokens in all (language models; instead of samples)")]
InferSamples = Annotated[int | None, typer.Option(help="inference samples (M)")]
BatchSize = Annotated[int, typer.Option(help="samples per step on one device")]
SeqLen = Annotated[int | None, typer.Option(help="tokens per sample (default: model max, capped)")]
ImageSize = Annotated[int | None, typer.Option(help="image side in pixels (default: the model's native size)")]
Precision = Annotated[str, typer.Option(help="fp32 | fp16-mixed | bf16-mixed | bf16")]
Optim = Annotated[str, typer.Option(help="sgd | sgd-momentum | adam | adamw | adam-8bit | adafactor | adagrad | "
                                                 "rowwise-adagrad")]
Freeze = Annotated[list[str] | None, typer.Option(help="freeze parameters matching a glob; '!GLOB' unfreezes; "
                                                        "repeatable, applied in order")]
Depth = Annotated[int, typer.Option(help="depth of the module tree")]
AllowLonger = Annotated[bool, typer.Option(help="allow --seq-len beyond the model's maximum")]
TrustRemoteCode = Annotated[bool, typer.Option(help="run a Hub model's own code (only if you trust it)")]
Hub = Annotated[bool, typer.Option(help="look a config up on the Hugging Face Hub if not found offline")]
Task = Annotated[str, typer.Option(help="auto | generate (prefill + cached decode per request)")]
PromptTokens = Annotated[int | None, typer.Option(help="prompt tokens per request (--task generate)")]
GenerateTokens = Annotated[int | None, typer.Option(help="generated tokens per request (--task generate)")]
ModelOption = Annotated[list[str] | None, typer.Option("--model-option", "-O",
                                                       help="KEY=VALUE size of a built-in spec (recsys:, diffusers:); "
                                                            "repeatable")]
TrustPickle = Annotated[bool, typer.Option(help="unpickle .bin/.pt checkpoints (runs code from the file: only if "
                                                "you trust it)")]

# the strategy and the hardware (assess, measure)
Count = Annotated[int | None, typer.Option(help="devices in all")]
Nodes = Annotated[int | None, typer.Option(help="nodes (count = nodes x gpus-per-node)")]
GpusPerNode = Annotated[int | None, typer.Option(help="devices per node (default: the device's usual)")]
Parallel = Annotated[str, typer.Option(help="dp | zero1 | zero2 | zero3 | fsdp")]
Tp = Annotated[int, typer.Option(help="tensor-parallel degree")]
Pp = Annotated[int, typer.Option(help="pipeline-parallel degree")]
GradAccum = Annotated[int, typer.Option(help="micro-batches per optimizer step")]
Recompute = Annotated[bool, typer.Option(help="activation checkpointing (re-run forward in backward)")]
PricePerHour = Annotated[float | None, typer.Option(help="USD per device-hour (overrides the catalog)")]
Region = Annotated[str | None, typer.Option(help="grid region for CO2 (default: world average)")]
GridIntensity = Annotated[float | None, typer.Option(help="grid intensity, gCO2e/kWh")]
Pue = Annotated[float | None, typer.Option(help="data-centre PUE (default: industry average)")]
Mfu = Annotated[float | None, typer.Option(help="fix model FLOPs utilisation instead of the roofline")]
HardwareFile = Annotated[str | None, typer.Option(help="TOML/YAML file adding or overriding devices")]

# the budget (assess, plan, compare, measure)
BudgetUsd = Annotated[float | None, typer.Option(help="money you can spend (USD)")]
Deadline = Annotated[str | None, typer.Option(help="time you have, e.g. 36h, 7d")]
MaxKwh = Annotated[float | None, typer.Option(help="energy limit (kWh)")]
MaxCo2 = Annotated[float | None, typer.Option(help="carbon limit (kg CO2e)")]
Available = Annotated[str | None, typer.Option(help="hardware you own: NAME:COUNT[,NAME:COUNT...]")]
Electricity = Annotated[float | None, typer.Option(help="electricity price for owned hardware (USD/kWh)")]

# the command's own switches
TrustCode = Annotated[bool, typer.Option(help="let the --job file run code: a module: model (imports and calls it), "
                                              "trust_remote_code or trust_pickle set in the file")]
Force = Annotated[bool, typer.Option(help="overwrite an existing --report file (and its _files/ folder); let a --job "
                                          "file's report path lie outside the job's folder")]
Explain = Annotated[bool, typer.Option(help="show each headline figure's formula, inputs and sources")]
AsJson = Annotated[bool, typer.Option("--json", help="print exactly one JSON object")]
Verbose = Annotated[bool, typer.Option(help="every table: compute, memory parts, hardware, modules, coverage")]
