"""Inputs of models handed in as objects: `example_inputs` (shapes and dtypes only, batch first, re-batched to the
job's batch size) and, for a transformers PreTrainedModel, integer token ids from its config instead of floats.

Hand derivations: a Linear(8, 4) does 8 x 4 MACs per sample, 64 FLOPs, at any batch size; an all-linear model's
backward is 2x its forward except the first layer, whose input needs no gradient (1x).
"""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import afford
from afford.errors import InputError
from afford.sources import resolve
from afford.sources.base import Dims, ModelKind
from afford.sources.example_inputs import example_maker
from afford.sources.module_src import from_module
from hostile.models_fixtures import OnlyEmbedding

TINY_GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_embd": 64, "n_head": 2,
             "n_positions": 256, "vocab_size": 1000}


class TwoInputs(nn.Module):
    """Takes float features and integer ids (positional), and an optional keyword scale."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, ids: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.fc(x + self.emb(ids).mean(1)) * scale


def _tiny_gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    fields = {k: v for k, v in TINY_GPT2.items() if k not in ("model_type", "architectures")}
    with torch.device("meta"):
        return GPT2LMHeadModel(GPT2Config(**fields))


def test_tuple_examples_are_rebatched_keeping_dtypes_and_trailing_shapes() -> None:
    make, shown = example_maker((torch.zeros(2, 8), torch.zeros(2, 5, dtype=torch.long), torch.ones(7, 7)))
    out = make(6, Dims(), True)
    x, ids, shared = out["_args"]
    assert (x.shape, ids.shape, shared.shape) == ((6, 8), (6, 5), (7, 7))  # a differing first dim is kept
    assert (x.dtype, ids.dtype, x.device.type, ids.device.type) == (torch.float32, torch.int64, "meta", "meta")
    assert "(2, 5) int64" in shown


def test_dict_examples_become_keywords_and_plain_values_pass_through() -> None:
    make, _ = example_maker({"input_ids": torch.zeros(1, 9, dtype=torch.int32), "use_cache": False,
                             "pair": (torch.zeros(1, 3), None)})
    out = make(4, Dims(), False)
    assert "_args" not in out
    assert out["input_ids"].shape == (4, 9) and out["input_ids"].dtype == torch.int32
    assert out["use_cache"] is False
    assert out["pair"][0].shape == (4, 3) and out["pair"][1] is None


def test_example_tensors_are_not_kept() -> None:
    x = torch.zeros(3, 8)
    ref = weakref.ref(x)
    spec = from_module(nn.Linear(8, 4), example_inputs=x)
    del x
    gc.collect()
    assert ref() is None
    assert spec.make_inputs(5, Dims(), True)["_args"][0].shape == (5, 8)


@pytest.mark.parametrize("bad, message", [
    ("tokens", "must be a tensor"),
    ({1: torch.zeros(1)}, "keys must be argument names"),
    ({"_args": torch.zeros(1, 2)}, "reserves"),
    ((), "holds no tensor"),
    ((torch.zeros(1, 2), object()), r"\[1\]: a object"),
    (torch.zeros(2, 3).to_sparse(), "dense tensors"),
])
def test_bad_examples_are_one_line_input_errors(bad: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        from_module(nn.Linear(3, 2), example_inputs=bad)


def test_linear_counts_per_sample_at_any_batch_size() -> None:
    a = afford.assess(nn.Linear(8, 4), infer_samples=1, batch_size=3, example_inputs=torch.zeros(1, 8))
    assert a.forward_flops == 2 * 8 * 4
    assert a.trace.batch_size == 3


def test_two_inputs_module_runs_with_examples_on_any_batch() -> None:
    example = (torch.zeros(1, 8), torch.zeros(1, 6, dtype=torch.long))
    a = afford.assess(TwoInputs(), train_samples=4, batch_size=2, example_inputs=example)
    assert a.spec.kind is ModelKind.GENERIC
    assert a.forward_flops == 2 * 8 * 4
    assert any("example_inputs" in n for n in a.notes)


def test_module_with_no_guessable_input_needs_examples() -> None:
    with pytest.raises(InputError, match="example_inputs"):
        afford.assess(OnlyEmbedding(), infer_samples=1)
    a = afford.assess(OnlyEmbedding(), train_samples=1, example_inputs=torch.zeros(1, 12, dtype=torch.long))
    assert a.trace.backward is not None and a.trace.trainable_params == 50 * 16


def test_examples_also_replace_a_named_sources_inputs() -> None:
    """A string spec with example_inputs: torchvision's ResNet-18 fed 64 x 64 images counts as at image_size 64."""
    a = afford.assess("torchvision:resnet18", infer_samples=1, batch_size=2,
                      example_inputs=torch.zeros(1, 3, 64, 64))
    b = afford.assess("torchvision:resnet18", infer_samples=1, batch_size=2, image_size=64)
    assert a.forward_flops == b.forward_flops


def test_transformers_model_gets_integer_tokens_from_its_config(tmp_path: Path) -> None:
    """GPT-2 passed as a module (built on meta) used to be fed floats; now it gets token ids, and counts exactly
    as the same config read as a config.json, and as explicit example_inputs of that length."""
    model = _tiny_gpt2()
    spec = resolve(model)
    assert spec.kind is ModelKind.CAUSAL_LM and spec.max_seq_len == 256 and spec.default_seq_len == 256
    inputs = spec.make_inputs(2, Dims(seq_len=32), True)
    assert inputs["input_ids"].dtype == torch.long and inputs["input_ids"].shape == (2, 32)
    assert inputs["labels"].shape == (2, 32)
    as_module = afford.assess(model, train_samples=2, batch_size=2, seq_len=32)
    (tmp_path / "config.json").write_text(json.dumps(TINY_GPT2))
    as_config = afford.assess(str(tmp_path / "config.json"), train_samples=2, batch_size=2, seq_len=32)
    assert as_module.forward_flops == as_config.forward_flops > 0
    assert as_module.backward_flops == as_config.backward_flops > 0
    example = afford.assess(model, infer_samples=2, batch_size=2,
                            example_inputs={"input_ids": torch.zeros(1, 32, dtype=torch.long)})
    assert example.forward_flops == as_module.forward_flops


def test_transformers_encoder_without_head_gets_tokens_and_no_labels() -> None:
    from transformers import BertConfig, BertModel

    with torch.device("meta"):
        model = BertModel(BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=500, max_position_embeddings=64))
    spec = resolve(model)
    assert spec.kind is ModelKind.ENCODER and spec.default_seq_len == 64
    inputs = spec.make_inputs(3, Dims(seq_len=16), True)
    assert set(inputs) == {"input_ids"} and inputs["input_ids"].dtype == torch.long
    a = afford.assess(model, train_samples=3, batch_size=3, seq_len=16)
    assert a.forward_flops > 0 and a.backward_flops > 0


def test_plain_modules_still_get_their_guessed_inputs() -> None:
    spec = resolve(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten()))
    assert spec.kind is ModelKind.IMAGE
    assert resolve(nn.Linear(5, 2)).make_inputs(2, Dims(), False)["_args"][0].shape == (2, 5)
