"""Callables the `files-` rows name through `module:hostile.files_fixtures:NAME` (see cases_files.py)."""

from __future__ import annotations

from typing import Any
from urllib.request import urlopen  # a standard-library Python function re-exported by a third-party module

from torch import nn

__all__ = ["NotAModule", "Tiny", "builds_badly", "needs_args", "returns_int", "tiny", "urlopen"]


class Tiny(nn.Module):
    """A 16 -> 4 linear layer: the smallest model an assessment can trace."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x: Any) -> Any:
        return self.fc(x)


class NotAModule:
    """A class that is no nn.Module: refused before it is instantiated."""


def tiny() -> nn.Module:
    return Tiny()


def needs_args(width: int) -> nn.Module:
    return nn.Linear(width, width)


def returns_int() -> int:
    return 3


def builds_badly() -> nn.Module:
    raise RuntimeError("the builder failed on purpose")
