"""The functions a meta trace would run differently from a GPU, routed to the kernels the GPU runs (one torch
function mode for all, so the trace pays one Python hook per call): RMSNorm and LayerNorm (counting/norms.py) and
LSTMs and GRUs (counting/rnn.py). Scaled-dot-product attention has its own router (counting/attention.py), which records
each call as well."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch.overrides import TorchFunctionMode

from afford.counting import norms, rnn

if TYPE_CHECKING:
    from afford.counting.engine import Counter

Route = Callable[[Any, Any, dict[str, Any], "Counter"], Any]
ROUTES: dict[Any, Route] = {**norms.ROUTES, rnn.LSTM: rnn.route_rnn, rnn.GRU: rnn.route_rnn}


class KernelRouter(TorchFunctionMode):
    """Calls a routed function's route (which itself leaves calls off the meta device as they are)."""

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        route = ROUTES.get(func)
        if route is None:
            return func(*args, **(kwargs or {}))
        return route(func, args, dict(kwargs or {}), self.counter)
