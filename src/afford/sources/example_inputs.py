"""Inputs for a model handed in as an object: the user's `example_inputs`, or, for a transformers model, inputs
made from its config.

`example_inputs` is a tensor, a tuple (or list) of tensors (positional arguments) or a dict of keyword tensors, on
any device. They are a BATCH: every tensor has the batch dimension first. Only shapes and dtypes are kept (the
tensors themselves are never read, copied or held); each trace makes meta tensors of those shapes with the batch
dimension replaced by the job's batch size. The examples' batch size is the first dimension of their first tensor;
tensors whose first dimension differs from it (a mask shared by the batch) and 0-d tensors are kept as given.
Plain values (bools, numbers, strings, None) pass through unchanged; tuples, lists and dicts may nest.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from afford.errors import InputError
from afford.sources.base import Dims, ModelKind, ModelSpec, first_tensor

Maker = Callable[[int, Dims, bool], dict[str, Any]]
_PLAIN = (bool, int, float, str, type(None))
# Token inputs when neither the workload nor the model says: the model's maximum positions, capped here.
DEFAULT_TOKENS = 512
# Audio models that take raw samples (wav2vec2's input_values): one second at 16 kHz.
DEFAULT_AUDIO_SAMPLES = 16_000


@dataclass(frozen=True)
class _Like:
    """A tensor's shape and dtype, standing for it (the tensor itself is not kept)."""

    shape: tuple[int, ...]
    dtype: torch.dtype


def _template(value: Any, where: str) -> Any:
    """`value` with every tensor replaced by its shape and dtype; anything else than tensors, plain values and
    tuples, lists and dicts of them is an InputError naming where it sits."""
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided:
            raise InputError(f"example_inputs{where}: a {value.layout} tensor; give dense tensors")
        return _Like(tuple(int(s) for s in value.shape), value.dtype)
    if isinstance(value, (tuple, list)):
        return type(value)(_template(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputError(f"example_inputs{where}: keys must be argument names (str), got {type(k).__name__}")
            out[k] = _template(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, _PLAIN):
        return value
    raise InputError(f"example_inputs{where}: a {type(value).__name__}; give tensors (or tuples, lists and dicts "
                     "of them)")


def _likes(template: Any) -> list[_Like]:
    if isinstance(template, _Like):
        return [template]
    if isinstance(template, (tuple, list)):
        return [x for v in template for x in _likes(v)]
    if isinstance(template, dict):
        return [x for v in template.values() for x in _likes(v)]
    return []


def _make(template: Any, batch: int, lead: int | None) -> Any:
    """Meta tensors in the template's shapes, the leading dimension `lead` replaced by `batch`."""
    if isinstance(template, _Like):
        shape = template.shape
        if shape and lead is not None and shape[0] == lead:
            shape = (batch, *shape[1:])
        return torch.zeros(shape, dtype=template.dtype, device="meta")
    if isinstance(template, (tuple, list)):
        return type(template)(_make(v, batch, lead) for v in template)
    if isinstance(template, dict):
        return {k: _make(v, batch, lead) for k, v in template.items()}
    return template


def _describe(template: Any) -> str:
    if isinstance(template, _Like):
        return f"({', '.join(map(str, template.shape))}) {str(template.dtype).removeprefix('torch.')}"
    if isinstance(template, dict):
        return "{" + ", ".join(f"{k}: {_describe(v)}" for k, v in template.items()) + "}"
    if isinstance(template, (tuple, list)):
        return "(" + ", ".join(_describe(v) for v in template) + ")"
    return repr(template)


def example_maker(example: Any) -> tuple[Maker, str]:
    """An input maker from `example_inputs` (see the module docstring) and a one-line description of them."""
    if isinstance(example, Mapping):
        template = _template(example, "")
        reserved = [k for k in template if k.startswith("_")]
        if reserved:
            raise InputError(f"example_inputs: keyword {reserved[0]!r} starts with '_', which afford reserves")
        args: tuple[Any, ...] = ()
        kwargs: dict[str, Any] = template
    elif isinstance(example, (torch.Tensor, tuple, list)):
        args = tuple(_template(example if isinstance(example, (tuple, list)) else (example,), ""))
        kwargs = {}
    else:
        raise InputError(f"example_inputs must be a tensor, a tuple of tensors or a dict of keyword tensors, got "
                         f"{type(example).__name__}")
    likes = _likes(args) + _likes(kwargs)
    if not likes:
        raise InputError("example_inputs holds no tensor; give the tensors the model's forward takes")
    lead = next((like.shape[0] for like in likes if like.shape), None)

    def make(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
        out: dict[str, Any] = dict(_make(kwargs, batch, lead))
        if args:
            out["_args"] = _make(args, batch, lead)
        return out

    shown = ", ".join(filter(None, [_describe(args)[1:-1] if args else "", _describe(kwargs)[1:-1] if kwargs else ""]))
    return make, shown


def example_loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """The loss a model returns (transformers' `.loss` when labels are among the inputs), else the sum of its
    first floating output."""
    loss = getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor):
        return loss
    return first_tensor(output).sum()


def with_example_inputs(spec: ModelSpec, example: Any) -> ModelSpec:
    """`spec` fed with `example_inputs` instead of the inputs its source makes: a generic model whose sample
    shape is the examples' (--seq-len and --image-size no longer apply)."""
    make, shown = example_maker(example)
    notes = [*spec.metadata.get("notes", ()), f"inputs from example_inputs, batch dimension first and re-batched "
             f"to the batch size: {shown}"]
    return dataclasses.replace(spec, kind=ModelKind.GENERIC, make_inputs=make, loss=example_loss,
                               native_image_size=None, max_seq_len=None, default_seq_len=None,
                               metadata={**spec.metadata, "notes": notes})


@dataclass(frozen=True)
class ConfigInputs:
    """What a transformers model's config says about feeding it: the parts of a ModelSpec that follow from it."""

    kind: ModelKind
    make_inputs: Maker
    max_seq_len: int | None
    default_seq_len: int | None
    native_image_size: int | None
    causal_for: Callable[[str], bool]
    context: Callable[[], AbstractContextManager[Any]]
    metadata: dict[str, Any]


def _is_transformers_model(module: nn.Module) -> bool:
    tf = sys.modules.get("transformers")  # a transformers model means transformers is imported already
    return tf is not None and isinstance(module, tf.PreTrainedModel)


def _max_positions(cfg: Any) -> int | None:
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
        value = getattr(text, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _config_kind(module: nn.Module, main: str) -> ModelKind:
    cls, cfg = type(module).__name__, cast(Any, module.config)
    if main == "pixel_values":
        return ModelKind.IMAGE
    if main == "input_features":
        return ModelKind.SPEECH_SEQ2SEQ
    if main != "input_ids":
        return ModelKind.GENERIC
    if getattr(cfg, "is_encoder_decoder", False):
        return ModelKind.SEQ2SEQ
    if cls.endswith(("ForCausalLM", "LMHeadModel")):
        return ModelKind.CAUSAL_LM
    if cls.endswith(("ForMaskedLM", "ForPreTraining")):
        return ModelKind.MASKED_LM
    return ModelKind.ENCODER


def config_inputs(module: nn.Module) -> ConfigInputs | None:
    """For a transformers PreTrainedModel, inputs from its config: integer token ids (`main_input_name`
    input_ids, `seq_len` of them, at most its maximum positions; labels too for a language-model head), pixels
    at its `image_size`, mel features or raw audio; None for any other module."""
    if not _is_transformers_model(module):
        return None
    cfg: Any = module.config
    main = str(getattr(module, "main_input_name", "input_ids"))
    kind = _config_kind(module, main)
    max_pos = _max_positions(cfg) if kind.uses_tokens or kind is ModelKind.SPEECH_SEQ2SEQ else None
    if kind is ModelKind.SPEECH_SEQ2SEQ:
        max_pos = getattr(cfg, "max_target_positions", None) or max_pos
    default = min(max_pos, DEFAULT_TOKENS) if max_pos else DEFAULT_TOKENS
    vocab = getattr(cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg, "vocab_size", None)
    side = getattr(cfg, "image_size", None) or 224
    image = int(side[0] if isinstance(side, (tuple, list)) else side) if kind is ModelKind.IMAGE else None
    channels = int(getattr(cfg, "num_channels", 3) or 3)
    try:  # the model computes its own loss from labels where its forward takes them (a head)
        labelled = "labels" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        labelled = False

    def ids(batch: int, length: int) -> torch.Tensor:
        return torch.zeros(batch, length, dtype=torch.long, device="meta")  # token 0: inside any vocabulary

    def make(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
        seq = dims.seq_len or default
        out: dict[str, Any] = {}
        if kind is ModelKind.IMAGE:
            size = dims.image_size or image or 224
            out[main] = torch.zeros(batch, channels, size, size, device="meta")
            if train and labelled and type(module).__name__.endswith("ForImageClassification"):
                out["labels"] = torch.zeros(batch, dtype=torch.long, device="meta")
            return out
        if kind is ModelKind.SPEECH_SEQ2SEQ:
            frames = 2 * int(getattr(cfg, "max_source_positions", 1500) or 1500)
            out[main] = torch.zeros(batch, int(getattr(cfg, "num_mel_bins", 80)), frames, device="meta")
            out["decoder_input_ids"] = ids(batch, seq)
        elif kind is ModelKind.GENERIC:
            out[main] = torch.zeros(batch, DEFAULT_AUDIO_SAMPLES, device="meta")
            return out
        else:
            out[main] = ids(batch, seq)
            if kind is ModelKind.SEQ2SEQ:
                out["decoder_input_ids"] = ids(batch, seq)
        if train and labelled and kind is not ModelKind.ENCODER:
            out["labels"] = ids(batch, seq)
        return out

    context: Callable[[], AbstractContextManager[Any]] = nullcontext
    try:
        from afford.sources.hf_decode import unpadded_masks

        context = unpadded_masks
    except ImportError:  # pragma: no cover - part of afford
        pass
    meta = {"model_type": getattr(cfg, "model_type", None), "architecture": type(module).__name__,
            "main_input_name": main, "vocab_size": vocab,
            "notes": [f"inputs made from the model's config ({main}); pass example_inputs to give your own"]}
    return ConfigInputs(kind=kind, make_inputs=make, max_seq_len=max_pos, default_seq_len=default if (
        kind.uses_tokens or kind is ModelKind.SPEECH_SEQ2SEQ) else None, native_image_size=image,
        causal_for=(lambda path: True) if kind is ModelKind.CAUSAL_LM else (lambda path: False),
        context=context, metadata=meta)
