"""Failures of a traced call turned into one-line TraceErrors that say what the meta device could not do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from afford.errors import InputError, TraceError, opt
from afford.sources.base import ModelSpec


def guard(what: str, spec: ModelSpec, fn: Callable[[], Any], where: Callable[[], str] | None = None) -> Any:
    """Run a traced step; turn failures that come from the meta device into a TraceError naming the op (and, where
    `where` says, the module that was running)."""
    try:
        return fn()
    except (InputError, TraceError):
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        module = where() if where is not None else "Global"
        inside = f" (in {module})" if module != "Global" else ""
        if "meta" in text.lower() or "item()" in text or "_local_scalar_dense" in text or "nonzero" in text:
            raise TraceError(
                f"{spec.name}: {what} cannot run on the meta device{inside}: {type(exc).__name__}: {text[:300]} - "
                "the model reads tensor values (.item(), nonzero, data-dependent shapes), which the meta device "
                "cannot provide; try another attention/experts implementation or a smaller sibling") from exc
        if "more than 1 value per channel" in text:
            # PyTorch's own check (F.batch_norm in training mode): a real training step at this batch fails too
            raise TraceError(
                f"{spec.name}: the training step fails at batch size 1, as it would in PyTorch: a BatchNorm"
                f"{inside} gets one value per channel ({text.rpartition('input size ')[2][:80] or text[:200]}); use "
                f"{opt('batch_size')} 2 or more (inference at batch 1 works)") from exc
        hint = ""
        if spec.metadata.get("inputs_guessed"):
            hint = (" - afford guessed this module's inputs; pass example_inputs to afford.assess (a tensor, a tuple "
                    "of tensors or a dict of keyword tensors, batch dimension first)")
        raise TraceError(f"{spec.name}: {what} failed{inside}: {type(exc).__name__}: {text[:300]}{hint}") from exc
