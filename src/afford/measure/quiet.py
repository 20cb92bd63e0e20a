"""Silence what PyTorch's profiler (Kineto) writes straight to file descriptor 2 while it runs.

Kineto logs `profiler_start`/`profiler_stop` lines and, on a machine with no GPU, `gpuGetDeviceCount failed`,
from C++ to the process's stderr, past Python's `sys.stderr`: noise beside afford's own one-line messages. The
profiled block runs with descriptor 2 pointed at the null device; Python exceptions still propagate normally.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Point file descriptor 2 at the null device for the block (a no-op where it cannot be redirected)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        saved = -1
    if saved >= 0:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
        except OSError:
            os.close(saved)
            saved = -1
    try:
        yield
    finally:
        if saved >= 0:
            os.dup2(saved, 2)
            os.close(saved)
