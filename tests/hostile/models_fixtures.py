"""Models the `model-` rows name through `module:hostile.models_fixtures:NAME` (see cases_models.py)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["bn_head", "only_embedding", "tiny_gpt2", "token_net"]


class TokenNet(nn.Module):
    """Integer ids in (an embedding), a Linear after it: afford's guess (a float vector of the Linear's width)
    is wrong, and the error says to pass example_inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 8)
        self.fc = nn.Linear(8, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(ids))


class OnlyEmbedding(nn.Module):
    """No Conv2d or Linear: nothing to guess an input from."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.emb(ids)


def token_net() -> nn.Module:
    return TokenNet()


def only_embedding() -> nn.Module:
    return OnlyEmbedding()


def bn_head() -> nn.Module:
    """A conv stem, global pooling, then a BatchNorm on the pooled features (one value per channel at batch 1,
    as in Inception v3's auxiliary head): trains from batch 2, runs inference at any batch."""
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(8), nn.Flatten(),
                         nn.Linear(8, 10))


def tiny_gpt2() -> nn.Module:
    """A 2-layer GPT-2 built from its class (a transformers PreTrainedModel handed over as a module): its
    inputs are token ids made from its config, never floats."""
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=128, vocab_size=1000))
