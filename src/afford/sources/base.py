"""What every model source produces: a ModelSpec that builds the module on meta and makes its inputs."""

from __future__ import annotations

import enum
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

Run = Callable[..., Any]  # calls the model's forward with keyword arguments


class ModelKind(enum.StrEnum):
    """What the model consumes and produces; decides inputs, the loss and whether it can generate."""

    IMAGE = "image"
    CAUSAL_LM = "causal-lm"
    MASKED_LM = "masked-lm"
    ENCODER = "encoder"
    SEQ2SEQ = "seq2seq"
    SPEECH_SEQ2SEQ = "speech-seq2seq"
    VISION_TEXT = "vision-text"
    GENERIC = "generic"
    RECSYS = "recsys"  # dense features and sparse ids in, a click logit or user/item embeddings out

    @property
    def uses_tokens(self) -> bool:
        return self in (ModelKind.CAUSAL_LM, ModelKind.MASKED_LM, ModelKind.ENCODER, ModelKind.SEQ2SEQ,
                        ModelKind.VISION_TEXT)


@dataclass(frozen=True)
class Dims:
    """The shape of one sample: tokens per sequence and/or image side."""

    seq_len: int | None = None
    image_size: int | None = None


@dataclass(frozen=True)
class DecodeAdapter:
    """How to prefill a prompt into a KV cache and run one cached decode step (causal LMs, encoder-decoders)."""

    prefill: Callable[[Run, int, int], Any]  # (run, batch, prompt_len) -> cache
    step: Callable[[Run, int, Any, int], Any]  # (run, batch, cache, position) -> output
    # encoder-decoders: (run, batch, source_len, decoder_len) -> cache; the encoder runs over source_len tokens
    # (speech: its fixed input) and the decoder prefills decoder_len positions. None for causal LMs.
    encode_prefill: Callable[[Run, int, int, int], Any] | None = None
    # decoder positions a generation request prefills for a prompt of P tokens: P where the prompt is the
    # decoder's (causal LMs, Whisper), the start token where the prompt is the encoder's source (T5, BART)
    decoder_prompt: Callable[[int], int] | None = None


def _no(path: str) -> bool:
    return False


def _none(path: str) -> int | None:
    return None


@dataclass
class ModelSpec:
    """A resolved model: how to build it on meta, feed it and train it, and what is known about it."""

    name: str
    source: str
    kind: ModelKind
    # builds the module in that dtype for that sample shape: on meta by default (no weights), on a real device
    # (random weights) for `afford measure`
    build: Callable[..., nn.Module]
    make_inputs: Callable[[int, Dims, bool], dict[str, Any]]
    loss: Callable[[Any, dict[str, Any]], torch.Tensor]
    native_image_size: int | None = None
    max_seq_len: int | None = None
    default_seq_len: int | None = None
    causal_for: Callable[[str], bool] = _no
    window_for: Callable[[str], int | None] = _none
    decode: DecodeAdapter | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # entered around every traced step: a source's adjustments for the meta device (documented where set)
    context: Callable[[], AbstractContextManager[Any]] = nullcontext

    def dims(self, seq_len: int | None, image_size: int | None) -> Dims:
        """The sample shape for a workload: the user's values, else the model's native ones."""
        return Dims(seq_len=seq_len if seq_len is not None else self.default_seq_len,
                    image_size=image_size if image_size is not None else self.native_image_size)


def first_tensor(output: Any) -> torch.Tensor:
    """The first floating tensor of a model output (a tensor, tuple, dict or ModelOutput)."""
    if isinstance(output, torch.Tensor):
        return output
    values = output.values() if isinstance(output, dict) else output
    if hasattr(output, "to_tuple"):
        values = output.to_tuple()
    for v in values:
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            return v
        if isinstance(v, (tuple, list, dict)):
            try:
                return first_tensor(v)
            except ValueError:
                continue
    raise ValueError("the model returned no floating-point tensor to train against")


def classification_loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """Cross-entropy of the logits against the `_target` labels the input maker added."""
    logits = first_tensor(output)
    target = inputs.get("_target")
    if target is None or logits.dim() != 2:
        return logits.float().sum() if logits.dtype != torch.float32 else logits.sum()
    return nn.functional.cross_entropy(logits, target)


def image_inputs(channels: int = 3) -> Callable[[int, Dims, bool], dict[str, Any]]:
    """Input maker for image models: a batch of (channels, size, size) images and class labels."""

    def make(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
        size = dims.image_size or 224
        x = torch.empty(batch, channels, size, size, device="meta")
        out: dict[str, Any] = {"_args": (x,)}
        if train:
            out["_target"] = torch.zeros(batch, dtype=torch.long, device="meta")
        return out

    return make
