"""The job a user asks about: precision, optimizer, batch shape and how many samples or tokens."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from afford import bounds as b
from afford.errors import WorkloadError, opt

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
    FP16 = "fp16"  # pure fp16 (weights and activations), as inference runs; training keeps fp16 optimizer state
    # fp32 storage and arithmetic, with matrix multiplications on TF32 tensor cores where the device has them
    # (torch.backends.cuda.matmul.allow_tf32 = True, or torch.set_float32_matmul_precision("high")); plain fp32
    # runs only convolutions in TF32, PyTorch's default (estimate/timing.py compute_format)
    TF32 = "tf32"

    @property
    def compute_dtype(self) -> torch.dtype:
        return {Precision.FP32: torch.float32, Precision.FP16_MIXED: torch.float16,
                Precision.BF16_MIXED: torch.bfloat16, Precision.BF16: torch.bfloat16,
                Precision.FP16: torch.float16, Precision.TF32: torch.float32}[self]

    @property
    def dense_format(self) -> str:
        """The weight format (estimate/formats.py) the weights are stored in: fp32, fp16 or bf16."""
        return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.compute_dtype]

    @property
    def mixed(self) -> bool:
        return self in (Precision.FP16_MIXED, Precision.BF16_MIXED)

    @property
    def state_bytes(self) -> int:
        """Bytes per element of optimizer state: fp32 except in pure bf16/fp16, where PyTorch keeps the param
        dtype."""
        return 2 if self in (Precision.BF16, Precision.FP16) else 4


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
    eval_samples: int | None = None  # evaluated after every epoch of training (its forward passes, no gradients)
    amp: bool = False  # the training step as torch.amp runs it: fp32 weights, autocast (mixed precisions only)

    def __post_init__(self) -> None:
        """Every count a positive integer below its stated bound (afford.bounds), epochs finite and positive."""
        for name, high in (("train_samples", b.MAX_SAMPLES), ("train_tokens", b.MAX_TOKENS),
                           ("infer_samples", b.MAX_SAMPLES), ("seq_len", b.MAX_SEQ), ("image_size", b.MAX_IMAGE),
                           ("prompt_tokens", b.MAX_SEQ), ("generate_tokens", b.MAX_SEQ),
                           ("eval_samples", b.MAX_SAMPLES)):
            value = getattr(self, name)
            if value is not None:
                b.whole(value, name, high=high, error=WorkloadError)
        b.whole(self.batch_size, "batch_size", high=b.MAX_BATCH, error=WorkloadError)
        b.real(self.epochs, "epochs", high=b.MAX_EPOCHS, open_low=True, error=WorkloadError)
        if self.train_samples is not None and self.train_tokens is not None:
            raise WorkloadError(f"give {opt('train_samples')} (with {opt('epochs')}) or {opt('train_tokens')}, "
                                "not both")
        if self.eval_samples is not None and not self.wants_training:
            raise WorkloadError(f"{opt('eval_samples')} is evaluated after each training epoch: give "
                                f"{opt('train_samples')} or {opt('train_tokens')} too")
        if self.amp and not self.precision.mixed:
            raise WorkloadError(f"{opt('amp')} is torch.amp's mixed precision: use it with {opt('precision')} "
                                f"fp16-mixed or bf16-mixed (got {self.precision.value})")
        if self.task is Task.GENERATE:
            if self.prompt_tokens is None or self.generate_tokens is None:
                raise WorkloadError(f"{opt('task')} generate needs {opt('prompt_tokens')} P and "
                                    f"{opt('generate_tokens')} G")
            if self.prompt_tokens + self.generate_tokens > b.MAX_SEQ:
                raise WorkloadError(f"{opt('prompt_tokens')} + {opt('generate_tokens')} is beyond 10M tokens; "
                                    "check the values")
        elif self.prompt_tokens is not None or self.generate_tokens is not None:
            raise WorkloadError(f"{opt('prompt_tokens')} and {opt('generate_tokens')} apply to {opt('task')} "
                                "generate")

    @classmethod
    def parse(cls, *, precision: str | Precision = Precision.FP32, optimizer: str | Optimizer = Optimizer.ADAMW,
              task: str | Task = Task.AUTO, freeze: Iterable[str] = (), **fields: Any) -> Workload:
        """A Workload from the values a user gives (enum values as strings, freeze patterns as any iterable):
        the one place assess, plan and measure turn options into a job."""
        return cls(precision=parse_enum(Precision, precision, "precision"),
                   optimizer=parse_enum(Optimizer, optimizer, "optimizer"), task=parse_enum(Task, task, "task"),
                   freeze=tuple(freeze), **fields)

    @property
    def amp_training(self) -> bool:
        """Whether the training step is traced as torch.amp runs it (--amp with a mixed precision)."""
        return self.amp and self.precision.mixed

    @property
    def wants_training(self) -> bool:
        return self.train_samples is not None or self.train_tokens is not None
