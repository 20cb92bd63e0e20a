"""An in-process cache of traced assessments: a repeated assessment of the same model and traced job (on other
hardware, with other totals, budgets or prices) re-prices the trace instead of tracing again.

The key is everything that changes the traced graph or the notes made with it: the model spec string (and, for
a path, its size and modification time), the trust and source options, and the workload's batch, shapes,
precision, freeze patterns, generation lengths and which of its totals are given. Model objects
(`nn.Module`) and `example_inputs` are never cached: they can change in place. `AFFORD_NO_CACHE=1` turns the
cache off. Kept in memory for the process only (a store across runs is not built yet).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

from afford.assess import Assessment
from afford.workload import Workload

HASHED_BYTES = 1 << 20  # model files up to this size are keyed by their content too
MAX_ENTRIES = 32  # traces kept; the least recently used goes first

_entries: OrderedDict[tuple[Any, ...], tuple[Assessment, tuple[str, ...]]] = OrderedDict()


def _file_facts(model: str) -> tuple[Any, ...]:
    """Size, modification time and (for small files) content hash of a model path and of a folder's config.json:
    an edited file is a new key."""
    path = Path(model).expanduser()
    try:
        if not path.exists():
            return ()
        facts: list[Any] = [str(path.resolve())]
        for p in (path, path / "config.json") if path.is_dir() else (path,):
            if p.is_file():
                st = p.stat()
                facts += [st.st_size, st.st_mtime_ns]
                if st.st_size <= HASHED_BYTES:  # configs: their content, whatever the clock's resolution
                    facts.append(hashlib.sha256(p.read_bytes()).hexdigest())
        return tuple(facts)
    except OSError:
        return ()


def key(model: Any, workload: Workload, *, options: dict[str, Any] | None, flags: tuple[bool, ...],
        example_inputs: Any) -> tuple[Any, ...] | None:
    """The cache key of a traced job, or None when it must not be cached."""
    if os.environ.get("AFFORD_NO_CACHE") or not isinstance(model, str) or example_inputs is not None:
        return None
    w = workload
    shape = (w.batch_size, w.seq_len, w.image_size, w.precision, w.optimizer, w.freeze, w.allow_longer, w.task,
             w.prompt_tokens, w.generate_tokens, w.wants_training, w.infer_samples is not None,
             w.train_tokens is not None)
    limits = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AFFORD_MAX_")))  # op/file caps
    return (model.strip(), _file_facts(model.strip()), tuple(sorted((options or {}).items())), flags, shape, limits)


def get(k: tuple[Any, ...] | None, workload: Workload, depth: int) -> Assessment | None:
    """A fresh Assessment over the cached trace for this job (no estimate or verdict yet), or None."""
    if k is None or k not in _entries:
        return None
    _entries.move_to_end(k)
    traced, notes = _entries[k]
    return replace(traced, workload=workload, depth=depth, notes=list(notes), estimate=None, decision=None)


def put(k: tuple[Any, ...] | None, result: Assessment) -> None:
    """Keep a traced Assessment (before pricing) under its key."""
    if k is None:
        return
    _entries[k] = (replace(result, notes=[], estimate=None, decision=None), tuple(result.notes))
    _entries.move_to_end(k)
    while len(_entries) > MAX_ENTRIES:
        _entries.popitem(last=False)


def clear() -> None:
    """Forget every cached trace."""
    _entries.clear()
