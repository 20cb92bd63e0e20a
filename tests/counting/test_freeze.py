"""Freezing is traced, not assumed: backward FLOPs against hand derivations."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import afford


def _resnet50_conv_macs() -> dict[str, int]:
    """MACs of every conv in layer3 and layer4 of torchvision's ResNet-50 (v1.5, stride on the 3x3) at 224 px."""
    macs: dict[str, int] = {}
    for layer, planes, blocks, in_ch, res_in in (("layer3", 256, 6, 512, 28), ("layer4", 512, 3, 1024, 14)):
        res_out = res_in // 2
        for b in range(blocks):
            cin = in_ch if b == 0 else planes * 4
            r1 = res_in if b == 0 else res_out
            macs[f"{layer}.{b}.conv1"] = cin * planes * r1 * r1
            macs[f"{layer}.{b}.conv2"] = planes * planes * 9 * res_out * res_out
            macs[f"{layer}.{b}.conv3"] = planes * planes * 4 * res_out * res_out
            if b == 0:
                macs[f"{layer}.{b}.downsample"] = cin * planes * 4 * res_out * res_out
    return macs


def test_resnet50_only_classifier_trainable_backward_is_its_weight_gradient(assessed: Any) -> None:
    a = assessed("torchvision:resnet50", freeze=["*", "!fc.*"], train_samples=10)
    d = a.to_dict()
    assert d["model"]["trainable_params"] == 2048 * 1000 + 1000
    # fc weight gradient: grad_out^T (1000 x B) @ x (B x 2048); no input gradient is needed upstream
    assert d["per_sample"]["backward_flops"] == 2 * 2048 * 1000


def test_resnet50_second_half_trainable_keeps_input_and_weight_gradients(assessed: Any) -> None:
    a = assessed("torchvision:resnet50", freeze=["conv1", "bn1", "layer1", "layer2"], train_samples=10)
    macs = _resnet50_conv_macs()
    fc = 2048 * 1000
    weight_grads = sum(macs.values()) + fc
    # input gradients everywhere except where the input comes from the frozen half
    input_grads = sum(macs.values()) + fc - macs["layer3.0.conv1"] - macs["layer3.0.downsample"]
    assert a.to_dict()["per_sample"]["backward_flops"] == 2 * (weight_grads + input_grads)


class _Adapted(nn.Module):
    """A frozen d x d linear plus a trainable rank-r adapter (B A x), LoRA's structure (Hu et al. 2021)."""

    def __init__(self, d: int, r: int) -> None:
        super().__init__()
        self.base = nn.Linear(d, d, bias=False)
        self.base.weight.requires_grad_(False)
        self.a = nn.Linear(d, r, bias=False)
        self.b = nn.Linear(r, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.base(x) + self.b(self.a(x)))


def test_adapters_everywhere_backward_is_about_forward() -> None:
    d, r, layers = 1024, 8, 8
    with torch.device("meta"):
        model = nn.Sequential(*[_Adapted(d, r) for _ in range(layers)])
    a = afford.assess(model, train_samples=1)
    ps = a.to_dict()["per_sample"]
    fwd = layers * (2 * d * d + 4 * d * r)
    # layer 0: its input needs no gradient -> B's input grad + both adapter weight grads;
    # later layers: input grads through base, A and B, plus both adapter weight grads
    bwd = 6 * d * r + (layers - 1) * (2 * d * d + 8 * d * r)
    assert ps["forward_flops"] == fwd
    assert ps["backward_flops"] == bwd
    assert 0.85 < bwd / fwd < 1.0


def test_peft_lora_on_bert_backward_about_forward() -> None:
    peft = pytest.importorskip("peft")
    from afford.sources import resolve

    spec = resolve("hf:google-bert/bert-base-uncased")
    from afford.sources.base import Dims

    module = spec.build(torch.float32, Dims(seq_len=128))
    lora = peft.get_peft_model(module, peft.LoraConfig(r=8, target_modules=["query", "key", "value", "dense"]))
    from afford.counting.trace import trace

    tr = trace(spec, lora, batch_size=1, dims=Dims(seq_len=128), dtype=torch.float32)
    assert tr.trainable_params < 0.02 * tr.params
    assert tr.backward is not None
    assert 0.9 < tr.backward.flops / tr.forward.flops < 1.2
