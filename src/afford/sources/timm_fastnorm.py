"""timm's fast-norm (`--model-option fast_norm=true`; timm's benchmark.py and train.py `--fast-norm`), on meta.

With `timm.layers.set_fast_norm()`, timm's own normalisation layers (GroupNorm, GroupNorm1, LayerNorm, LayerNorm2d,
the *NormAct variants, RmsNorm, SimpleNorm) call `timm.layers.fast_norm`: under autocast they cast the input and
weights to the autocast dtype and normalise with autocast off, so the norm runs and writes in 16 bits where
PyTorch's autocast would run it in fp32 (timm/layers/fast_norm.py: "bypass typical AMP upcast to float32").
PyTorch's own nn.LayerNorm and nn.GroupNorm (Swin, among others) are not affected; timm's ViTs and ConvNeXt use
timm's LayerNorm and are.

Those functions ask `torch.is_autocast_enabled(x.device.type)` and enter `torch.amp.autocast(device_type=...)`,
which refuse the meta device. While afford traces such a model, the names timm's layers call are swapped for
functions that do the same on meta against afford's emulated autocast (counting/autocast.py): the casts to its
16-bit dtype (real `_to_copy` kernels), then the norm with the emulation paused. On any other device timm's own
functions run. The swap is process-wide while it lasts (afford traces one model at a time in a process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from afford.counting import autocast

# timm.layers modules that import the fast-norm functions by name, and the names they import
_USERS = {"timm.layers.norm": ("fast_group_norm", "fast_layer_norm", "fast_rms_norm", "fast_rms_norm2d",
                               "fast_simple_norm"),
          "timm.layers.norm_act": ("fast_group_norm", "fast_layer_norm", "fast_rms_norm", "fast_rms_norm2d")}


def _natives() -> dict[str, Callable[..., torch.Tensor]]:
    """The norm each fast-norm function computes once its inputs are cast (timm/layers/fast_norm.py)."""
    from timm.layers import fast_norm as fn

    rms = getattr(F, "rms_norm", None) or fn.rms_norm
    return {"fast_group_norm": F.group_norm, "fast_layer_norm": F.layer_norm, "fast_rms_norm": rms,
            "fast_rms_norm2d": fn.rms_norm2d, "fast_simple_norm": fn.simple_norm}


def _on_meta(name: str, timm_fn: Callable[..., torch.Tensor], native: Callable[..., torch.Tensor]) -> Callable:
    """timm's `name` on meta: cast the floating tensors to the emulated autocast's dtype (when one runs), then
    `native` with the emulation paused; timm's own function on any other device."""
    def run(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if x.device.type != "meta":
            return timm_fn(x, *args, **kwargs)
        low = autocast.current_low()
        if low is not None:
            def cast(v: Any) -> Any:
                return v.to(low) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
            x, args, kwargs = cast(x), tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}
        with autocast.paused():
            return native(x, *args, **kwargs)
    run.__name__ = name
    return run


@contextmanager
def meta_fast_norm() -> Iterator[None]:
    """timm's fast-norm functions made to run on meta (module docstring) for the code run inside."""
    import importlib

    natives = _natives()
    saved: list[tuple[Any, str, Any]] = []
    try:
        for module_name, names in _USERS.items():
            module = importlib.import_module(module_name)
            for name in names:
                if hasattr(module, name):
                    original = getattr(module, name)
                    saved.append((module, name, original))
                    setattr(module, name, _on_meta(name, original, natives[name]))
        yield
    finally:
        for module, name, original in reversed(saved):
            setattr(module, name, original)


def constructed(make: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """`make()` with timm's fast-norm switched on while its layers are built (each reads it once, at
    construction), then off again; under `meta_fast_norm`, for constructors that run a probe forward on meta (a
    hybrid ViT sizing its CNN stem's features)."""
    from timm.layers import is_fast_norm, set_fast_norm

    before = is_fast_norm()
    set_fast_norm(True)
    try:
        with meta_fast_norm():
            return make()
    finally:
        set_fast_norm(before)


def traced(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with its forward run under `meta_fast_norm` (in place: the module tree, its names and hooks are
    unchanged)."""
    forward = model.forward

    def fast_forward(*args: Any, **kwargs: Any) -> Any:
        with meta_fast_norm():
            return forward(*args, **kwargs)

    model.forward = fast_forward
    return model
