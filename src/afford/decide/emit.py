"""Launch configurations for a chosen plan: an accelerate config YAML, or a DeepSpeed JSON.

Fields follow accelerate's `accelerate config` file format (ClusterConfig) and DeepSpeed's configuration
JSON reference (train_micro_batch_size_per_gpu, gradient_accumulation_steps, train_batch_size, bf16/fp16,
zero_optimization.stage and offload_optimizer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from afford.decide.planner import Strategy
from afford.errors import InputError

_ZERO_STAGE = {"dp": 0, "zero1": 1, "zero2": 2, "zero3": 3, "fsdp": 3}


def _mixed(s: Strategy) -> str:
    if s.fp8:
        return "fp8"
    return {"bf16-mixed": "bf16", "bf16": "bf16", "fp16-mixed": "fp16"}.get(s.precision, "no")


def deepspeed_config(s: Strategy) -> dict[str, Any]:
    """DeepSpeed JSON for the strategy (the optimizer stays in the training script: 8-bit Adam and LoRA are the
    script's choice; ZeRO shards whatever optimizer it builds)."""
    dp = s.count // (s.tp * s.pp)
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": s.micro_batch,
        "gradient_accumulation_steps": s.grad_accum,
        "train_batch_size": s.micro_batch * s.grad_accum * dp,
        "bf16": {"enabled": _mixed(s) in ("bf16", "fp8")},
        "fp16": {"enabled": _mixed(s) == "fp16"},
        "zero_optimization": {"stage": _ZERO_STAGE[s.parallel], "overlap_comm": True, "contiguous_gradients": True},
        "gradient_clipping": 1.0,
        "steps_per_print": 100,
        "wall_clock_breakdown": False,
    }
    if s.offload:
        config["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    return config


def accelerate_config(s: Strategy, deepspeed_file: str | None = None) -> dict[str, Any]:
    """accelerate's config file: FSDP for fsdp plans, DeepSpeed for ZeRO plans, DDP or a single device else."""
    nodes = max(1, s.count // 8) if s.count > 8 else 1
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE", "debug": False, "machine_rank": 0, "main_training_function": "main",
        "mixed_precision": _mixed(s), "num_machines": nodes, "num_processes": s.count, "use_cpu": False,
        "rdzv_backend": "static", "same_network": True, "downcast_bf16": "no",
    }
    if s.parallel == "fsdp":
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {
            "fsdp_sharding_strategy": "FULL_SHARD", "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_backward_prefetch": "BACKWARD_PRE", "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_offload_params": s.offload, "fsdp_activation_checkpointing": s.recompute,
            "fsdp_use_orig_params": True, "fsdp_sync_module_states": True, "fsdp_cpu_ram_efficient_loading": True}
    elif s.parallel in ("zero1", "zero2", "zero3"):
        config["distributed_type"] = "DEEPSPEED"
        ds: dict[str, Any] = {"zero_stage": _ZERO_STAGE[s.parallel], "gradient_accumulation_steps": s.grad_accum,
                              "offload_optimizer_device": "cpu" if s.offload else "none",
                              "offload_param_device": "none", "zero3_init_flag": s.parallel == "zero3"}
        if deepspeed_file:
            ds = {"deepspeed_config_file": deepspeed_file, "zero3_init_flag": s.parallel == "zero3"}
        config["deepspeed_config"] = ds
    else:
        config["distributed_type"] = "MULTI_GPU" if s.count > 1 else "NO"
    return config


def write(kind: str, folder: Path, s: Strategy) -> list[Path]:
    """Write the launch configuration for `kind` (accelerate or deepspeed) into `folder`; return the files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--emit: cannot create {folder}: {exc.strerror or exc}") from None
    written: list[Path] = []
    if kind == "deepspeed":
        path = folder / "ds_config.json"
        path.write_text(json.dumps(deepspeed_config(s), indent=2) + "\n")
        written.append(path)
    elif kind == "accelerate":
        path = folder / "accelerate_config.yaml"
        path.write_text(yaml.safe_dump(accelerate_config(s), sort_keys=True))
        written.append(path)
    else:
        raise InputError(f"--emit {kind!r}: choose accelerate or deepspeed")
    notes = folder / "afford_plan.json"
    notes.write_text(json.dumps({"strategy": s.to_dict(),
                                 "script_must": _script_notes(s)}, indent=2) + "\n")
    written.append(notes)
    return written


def _script_notes(s: Strategy) -> list[str]:
    """What the training script itself must do; launch configs cannot express these."""
    out = []
    if s.adapter in ("lora", "qlora"):
        out.append(f"wrap the model with peft.LoraConfig(r={s.lora_rank}, target_modules='all-linear')")
    if s.adapter == "qlora":
        out.append("load the base model with BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4', "
                   "bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)")
    if s.optimizer == "adam-8bit":
        out.append("use bitsandbytes.optim.AdamW8bit as the optimizer")
    if s.recompute and s.parallel != "fsdp":
        out.append("enable activation checkpointing (model.gradient_checkpointing_enable())")
    if s.tp > 1 or s.pp > 1:
        out.append(f"tensor parallel {s.tp} / pipeline parallel {s.pp} need Megatron-LM or torchtitan")
    return out
