"""Small modules the tests load through `module:` specs (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch
from torch import nn


class ReadsValues(nn.Module):
    """A forward with data-dependent control flow: `.item()` cannot run on the meta device."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum().item() > 0:
            return self.fc(x)
        return x


def reads_values() -> nn.Module:
    return ReadsValues()


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 1024))


def not_a_module() -> int:
    return 3


def zero_paper_7_5b() -> nn.Module:
    """7.5B parameters exactly (3 x 50000 x 50000), the ZeRO paper's example model size."""
    return nn.Sequential(*[nn.Linear(50_000, 50_000, bias=False) for _ in range(3)])
