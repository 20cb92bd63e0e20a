"""The job a user asks about: precision, optimizer, batch shape and how many samples or tokens."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from afford.errors import WorkloadError

E = TypeVar("E", bound=enum.StrEnum)


class Precision(enum.StrEnum):
    """Numeric format of training and inference.

    Mixed precision keeps 16-bit weights and gradients for compute and fp32 master weights and optimizer state
    (Micikevicius et al. 2018; the ZeRO paper's 2 + 2 + 12 bytes per parameter for Adam).
    """

    FP32 = "fp32"
    FP16_MIXED = "fp16-mixed"
    BF16_MIXED = "bf16-mixed"
    BF16 = "bf16"

    @property
    def compute_dtype(self) -> torch.dtype:
        return {Precision.FP32: torch.float32, Precision.FP16_MIXED: torch.float16,
                Precision.BF16_MIXED: torch.bfloat16, Precision.BF16: torch.bfloat16}[self]

    @property
    def mixed(self) -> bool:
        return self in (Precision.FP16_MIXED, Precision.BF16_MIXED)

    @property
    def state_bytes(self) -> int:
        """Bytes per element of optimizer state: fp32 except in pure bf16, where PyTorch keeps the param dtype."""
        return 2 if self is Precision.BF16 else 4


class Optimizer(enum.StrEnum):
    """Optimizers whose state afford counts exactly (see docs/methodology.md)."""

    SGD = "sgd"
    SGD_MOMENTUM = "sgd-momentum"
    ADAM = "adam"
    ADAMW = "adamw"
    ADAM_8BIT = "adam-8bit"
    ADAFACTOR = "adafactor"
    ADAGRAD = "adagrad"
    ROWWISE_ADAGRAD = "rowwise-adagrad"


class Task(enum.StrEnum):
    """What an inference request does: one forward pass per sample (`auto`), or prefill P prompt tokens and
    generate G tokens with a KV cache (`generate`, causal and encoder-decoder language models)."""

    AUTO = "auto"
    GENERATE = "generate"


def parse_enum(kind: type[E], value: str | E, what: str) -> E:
    """An enum member from its value, or a WorkloadError listing the valid values."""
    if isinstance(value, kind):
        return value
    aliases = {"adamw8bit": "adam-8bit", "adam8bit": "adam-8bit", "8bit-adam": "adam-8bit", "momentum": "sgd-momentum",
               "rowwiseadagrad": "rowwise-adagrad", "exactrowwiseadagrad": "rowwise-adagrad",
               "bf16mixed": "bf16-mixed", "fp16mixed": "fp16-mixed", "amp": "bf16-mixed"}
    key = str(value).strip().lower()
    key = aliases.get(key.replace("_", "").replace("-", ""), key).replace("_", "-")
    try:
        return kind(key)
    except ValueError:
        valid = ", ".join(m.value for m in kind)
        raise WorkloadError(f"unknown {what} {value!r}; choose one of: {valid}") from None


@dataclass(frozen=True)
class Workload:
    """What the user wants to do with the model; sizes per sample come from the traced shapes."""

    train_samples: int | None = None
    epochs: float = 1.0
    train_tokens: int | None = None
    infer_samples: int | None = None
    batch_size: int = 1
    seq_len: int | None = None
    image_size: int | None = None
    precision: Precision = Precision.FP32
    optimizer: Optimizer = Optimizer.ADAMW
    freeze: tuple[str, ...] = field(default_factory=tuple)
    allow_longer: bool = False
    task: Task = Task.AUTO
    prompt_tokens: int | None = None
    generate_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("train_samples", "train_tokens", "infer_samples", "seq_len", "image_size", "prompt_tokens",
                     "generate_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise WorkloadError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise WorkloadError(f"--batch-size must be a positive integer, got {self.batch_size!r}")
        if self.batch_size > 1_000_000:
            raise WorkloadError(f"--batch-size {self.batch_size} is absurd; use at most 1,000,000")
        if not (self.epochs > 0) or self.epochs > 1e6:
            raise WorkloadError(f"--epochs must be positive (and below a million), got {self.epochs!r}")
        if self.train_samples is not None and self.train_tokens is not None:
            raise WorkloadError("give --train-samples (with --epochs) or --train-tokens, not both")
        if self.image_size is not None and self.image_size > 16384:
            raise WorkloadError(f"--image-size {self.image_size} is beyond 16384 pixels; check the value")
        if self.seq_len is not None and self.seq_len > 10_000_000:
            raise WorkloadError(f"--seq-len {self.seq_len} is beyond 10M tokens; check the value")
        if self.task is Task.GENERATE:
            if self.prompt_tokens is None or self.generate_tokens is None:
                raise WorkloadError("--task generate needs --prompt-tokens P and --generate-tokens G")
            if self.prompt_tokens + self.generate_tokens > 10_000_000:
                raise WorkloadError("--prompt-tokens + --generate-tokens is beyond 10M tokens; check the values")
        elif self.prompt_tokens is not None or self.generate_tokens is not None:
            raise WorkloadError("--prompt-tokens and --generate-tokens apply to --task generate")

    @property
    def wants_training(self) -> bool:
        return self.train_samples is not None or self.train_tokens is not None
