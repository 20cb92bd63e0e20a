"""Hugging Face models in motion: the training loss and the decode adapters (causal LMs, encoder-decoders)
that drive prefill and one-token steps on meta, and the context that lets transformers' masks trace on meta."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from afford.errors import TraceError
from afford.extras import require
from afford.sources.base import DecodeAdapter, ModelKind, Run, first_tensor


def output_loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    loss = getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor):
        return loss
    return first_tensor(output).sum()


def _ids(batch: int, length: int) -> torch.Tensor:
    return torch.zeros(batch, length, dtype=torch.long, device="meta")


def _returned_cache(out: Any) -> Any:
    for attr in ("cache", "past_key_values"):
        found = getattr(out, attr, None)
        if found is not None:
            return found
    raise TraceError("the model returned no KV cache from a forward pass with use_cache=True")


def decode_adapter(cls: Any) -> DecodeAdapter:
    """Causal LMs: the prefill returns the cache; a step feeds one token against it. Like transformers'
    `generate`, the prefill computes logits for its last position only where the model allows it
    (`logits_to_keep=1`, GenerationMixin._prepare_cache_for_generation / prepare_inputs_for_generation)."""
    keeps = cls is not None and "logits_to_keep" in inspect.signature(cls.forward).parameters
    last_only = {"logits_to_keep": 1} if keeps else {}

    def prefill(run: Run, batch: int, prompt: int) -> Any:
        return _returned_cache(run(input_ids=_ids(batch, prompt), use_cache=True, **last_only))

    def step(run: Run, batch: int, cache_obj: Any, position: int) -> Any:
        return run(input_ids=_ids(batch, 1), cache=cache_obj, use_cache=True)

    return DecodeAdapter(prefill=prefill, step=step)


@dataclass
class EncoderDecoderState:
    """What an encoder-decoder's decode step needs: the decoder's cache (self-attention keys/values and the
    cross-attention keys/values of the encoder output, an EncoderDecoderCache) and the encoder output."""

    cache: Any
    encoder_output: torch.Tensor
    logits: Any = None


def _seq2seq_adapter(cfg: Any, kind: ModelKind) -> DecodeAdapter:
    """Encoder-decoders (T5, BART, Whisper): the prefill runs the encoder once (over the source tokens, or over
    Whisper's fixed 30 s of audio) and the decoder over its prompt; each step feeds one decoder token with the
    cache and the encoder output, as transformers' `generate` does (encoder_outputs passed, never recomputed)."""
    BaseModelOutput = require("transformers.modeling_outputs").BaseModelOutput

    def source(batch: int, length: int) -> dict[str, torch.Tensor]:
        if kind is ModelKind.SPEECH_SEQ2SEQ:
            frames = 2 * getattr(cfg, "max_source_positions", 1500)  # two mel frames per encoder position
            return {"input_features": torch.empty(batch, cfg.num_mel_bins, frames, device="meta")}
        return {"input_ids": _ids(batch, length)}

    def encode_prefill(run: Run, batch: int, source_len: int, decoder_len: int) -> EncoderDecoderState:
        out = run(**source(batch, source_len), decoder_input_ids=_ids(batch, decoder_len), use_cache=True)
        return EncoderDecoderState(cache=_returned_cache(out), encoder_output=out.encoder_last_hidden_state)

    def prefill(run: Run, batch: int, decoder_len: int) -> EncoderDecoderState:
        # the one-step decode of a plain assessment: a source as long as the traced sequence (decoder_len + 1)
        return encode_prefill(run, batch, decoder_len + 1, decoder_len)

    def step(run: Run, batch: int, state: EncoderDecoderState, position: int) -> EncoderDecoderState:
        out = run(encoder_outputs=BaseModelOutput(last_hidden_state=state.encoder_output),
                  decoder_input_ids=_ids(batch, 1), cache=state.cache, use_cache=True)
        state.cache, state.logits = _returned_cache(out), out.logits
        return state

    # T5 and BART start the decoder from one start token (decoder_start_token_id) and take the prompt as the
    # encoder's source; Whisper's prompt is its decoder's (<|startoftranscript|>, language, task tokens)
    start: Callable[[int], int] = (lambda p: p) if kind is ModelKind.SPEECH_SEQ2SEQ else (lambda p: 1)
    return DecodeAdapter(prefill=prefill, step=step, encode_prefill=encode_prefill, decoder_prompt=start)


def adapter(cls: Any, cfg: Any, kind: ModelKind) -> DecodeAdapter | None:
    """The decode adapter of a model that generates: causal LMs and encoder-decoders with an LM head."""
    if kind is ModelKind.CAUSAL_LM:
        return decode_adapter(cls)
    if kind in (ModelKind.SEQ2SEQ, ModelKind.SPEECH_SEQ2SEQ) and getattr(cfg, "is_encoder_decoder", False):
        return _seq2seq_adapter(cfg, kind)
    return None


@contextmanager
def unpadded_masks() -> Iterator[None]:
    """transformers asks `fast_all(padding_mask)` (a `.item()`) before it drops an all-ones mask; on meta the
    answer cannot be read, but afford's synthetic inputs never contain padding, so it is True by construction."""
    masking_utils: Any = require("transformers.masking_utils")

    original: Any = masking_utils.fast_all

    def fast_all(tensor: Any) -> Any:
        return True if tensor.device.type == "meta" else original(tensor)

    masking_utils.fast_all = fast_all
    try:
        yield
    finally:
        masking_utils.fast_all = original
