"""One task of a sweep or compare in a worker, a local process or a Dask worker (decide/sweep.py, decide/cluster.py):
the same function either way, so a cluster prices exactly what local workers price."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from afford.errors import cli_names

T = TypeVar("T")
R = TypeVar("R")


def run_task(fn: Callable[[T], R], item: T, cli: bool) -> R:
    """Run one task in a worker (a local process or a Dask worker), naming options as the parent does (flags on
    the command line)."""
    if not cli:
        return fn(item)
    with cli_names():
        return fn(item)
