"""LSTMs as cuDNN runs them: `nn.LSTM` (`torch.lstm`) routed on the meta device to the kernels of cuDNN's RNN.

On a GPU, PyTorch runs `torch.lstm` as `aten::_cudnn_rnn` (aten/src/ATen/native/cudnn/RNN.cpp; cuDNN is on by
default): per layer and direction, one GEMM projects the input of every time step at once, then each step runs one
GEMM of the hidden state by the recurrent weights and one fused point-wise kernel for the gates (Appleyard, Kocisky
and Blunsom 2016, "Optimizing Performance of Recurrent Neural Networks on GPUs", arXiv:1604.01946, sections 3.1-3.3:
the input GEMMs combined across steps, the element-wise gate operations fused). Under autocast the weights,
input and states are cast to 16 bits once per call (aten/src/ATen/cudnn/AutocastRNN.cpp `_cudnn_rnn_cast_reflatten`,
which re-makes the flat weight buffer in fp16). Meta has no cuDNN, so a meta trace takes
PyTorch's CPU-style path instead: per step two linear layers, six element-wise kernels and, under autocast, a cast
of both weight matrices every step.

`route_lstm` emits the cuDNN structure on meta with aten ops that have meta kernels: the input GEMM (`mm`), per
step the recurrent `mm` and PyTorch's own fused CUDA gate kernel `_thnn_fused_lstm_cell` (the one PyTorch's
non-cuDNN GPU path runs, reading the two gate pre-activations and the cell state and writing h, c and the
workspace autograd saves), then the outputs stacked (a copy cuDNN does not make: it writes each step's h into the
output, so the output's bytes are counted twice, about 10 % of the gate traffic). The FLOPs are the math's; the
backward follows through autograd (`_thnn_fused_lstm_cell_backward_impl`). Packed sequences, LSTMs with a
projection (proj_size) and GRUs keep the traced path. The emulating ops, forward and backward, are marked as the
library's own launches (`Counter.library_call`): eager PyTorch dispatches `_cudnn_rnn` once from Python, and cuDNN
launches its per-step kernels from C++ (estimate/runtime.py prices a launch each, no dispatch).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from afford.counting import autocast

if TYPE_CHECKING:
    from afford.counting.engine import Counter

aten = torch.ops.aten
LSTM = torch._C._VariableFunctions.lstm


def route_lstm(func: Any, args: Any, kwargs: dict[str, Any], counter: Counter) -> Any:
    """`torch.lstm(input, (h0, c0), params, has_biases, num_layers, dropout, train, bidirectional, batch_first)`
    on meta as cuDNN runs it, one library call (`Counter.library_call`); any other form (packed input, projections,
    off meta) as called."""
    if kwargs or len(args) != 9 or not isinstance(args[1], (tuple, list)):
        return func(*args, **kwargs)
    x, _, params, has_biases, layers, _, _, bidirectional, _ = args
    dirs = 2 if bidirectional else 1
    per = 4 if has_biases else 2
    if not isinstance(x, torch.Tensor) or x.device.type != "meta" or x.dim() != 3 or len(params) != layers * dirs * per:
        return func(*args, **kwargs)
    return counter.library_call(lambda: _cudnn_lstm(*args))


def _cudnn_lstm(x: torch.Tensor, hx: Any, params: Any, has_biases: bool, layers: int, dropout: float, train: bool,
                bidirectional: bool, batch_first: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernels cuDNN's standard LSTM runs (module docstring), as aten ops."""
    h0, c0 = hx
    dirs = 2 if bidirectional else 1
    per = 4 if has_biases else 2
    low = autocast.current_low()
    with autocast.paused() if low is not None else nullcontext():
        if low is not None:  # `_cudnn_rnn` on autocast's list: input, states and weights cast once per call
            x, h0, c0 = (_low(t, low) for t in (x, h0, c0))
            params = [_low(p, low) for p in params]
        if batch_first:
            x = x.transpose(0, 1)
        layer_in = x.contiguous()  # cuDNN takes a contiguous time-major input (a copy when batch_first)
        steps, batch = layer_in.shape[0], layer_in.shape[1]
        h_n: list[torch.Tensor] = []
        c_n: list[torch.Tensor] = []
        for layer in range(layers):
            outs = []
            for d in range(dirs):
                i = (layer * dirs + d) * per
                w_ih, w_hh = params[i], params[i + 1]
                gates = w_ih.shape[0]
                b_ih, b_hh = (params[i + 2], params[i + 3]) if has_biases else (
                    w_ih.new_zeros(gates), w_ih.new_zeros(gates))  # the meta kernel wants both biases
                igates = torch.mm(layer_in.reshape(steps * batch, -1), w_ih.t()).view(steps, batch, gates)
                per_step = igates.unbind(0)  # views; the backward stacks the steps' gradients once
                h, c = h0[layer * dirs + d], c0[layer * dirs + d]
                hs = []
                for t in (range(steps) if d == 0 else reversed(range(steps))):
                    h, c, _ = aten._thnn_fused_lstm_cell(per_step[t], torch.mm(h, w_hh.t()), c, b_ih, b_hh)
                    hs.append(h)
                if d == 1:
                    hs.reverse()
                outs.append(torch.stack(hs))
                h_n.append(h)
                c_n.append(c)
            layer_in = outs[0] if dirs == 1 else torch.cat(outs, dim=2)
            if dropout and train and layer < layers - 1:
                layer_in = F.dropout(layer_in, float(dropout), True)
        out = layer_in.transpose(0, 1) if batch_first else layer_in
        return out, torch.stack(h_n), torch.stack(c_n)


def _low(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Autocast's cast of a floating tensor to `dtype` (a recorded kernel)."""
    return t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t
