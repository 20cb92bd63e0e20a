"""LSTMs and GRUs as cuDNN runs them: `nn.LSTM` / `nn.GRU` (`torch.lstm` / `torch.gru`) routed on the meta device to
the kernels of cuDNN's RNN.

On a GPU, PyTorch runs `torch.lstm` and `torch.gru` as `aten::_cudnn_rnn` (aten/src/ATen/native/cudnn/RNN.cpp;
cuDNN is on by default): per layer and direction, one GEMM projects the input of every time step at once, then
each step runs one GEMM of the hidden state by the recurrent weights and one fused point-wise kernel for the gates
(Appleyard, Kocisky and Blunsom 2016, "Optimizing Performance of Recurrent Neural Networks on GPUs",
arXiv:1604.01946, sections 3.1-3.3: the input GEMMs combined across steps, the element-wise gate operations
fused). Under autocast the weights, input and states are cast to 16 bits once per call
(aten/src/ATen/cudnn/AutocastRNN.cpp `_cudnn_rnn_cast_reflatten`, which re-makes the flat weight buffer in fp16).
Meta has no cuDNN, so a meta trace takes PyTorch's CPU-style path instead: per step two linear layers, six
element-wise kernels and, under autocast, a cast of both weight matrices every step.

`route_rnn` emits the cuDNN structure on meta with ops that have meta kernels: the input GEMM (`mm`), per step the
recurrent `mm` and PyTorch's own fused CUDA gate kernel, `_thnn_fused_lstm_cell` or `_thnn_fused_gru_cell` (the
ones PyTorch's non-cuDNN GPU path runs, reading the two gate pre-activations and the cell state or hidden state
and writing the new states and the workspace autograd saves; the GRU cell has no meta kernel, so afford registers
its own op of that name with PyTorch's shapes), then the outputs stacked (a copy cuDNN does not make: it writes
each step's h into the output, so the output's bytes are counted twice, about 10 % of the gate traffic). The
FLOPs are the math's; the backward follows through autograd (`_thnn_fused_lstm_cell_backward_impl`,
`_thnn_fused_gru_cell_backward`). Packed sequences and LSTMs with a projection (proj_size) keep the traced path;
plain `nn.RNN` (tanh/ReLU) is not routed. The emulating ops, forward and backward, are marked as the library's own
launches (`Counter.library_call`): eager PyTorch dispatches `_cudnn_rnn` once from Python, and cuDNN launches its
per-step kernels from C++ (estimate/runtime.py prices a launch each, no dispatch).
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
GRU = torch._C._VariableFunctions.gru
_GRU_WORKSPACE = 5  # r, z, n, hx and the hidden n-gate pre-activation (aten/src/ATen/native/cuda/RNN.cu)


@torch.library.custom_op("afford::_thnn_fused_gru_cell", mutates_args=())
def fused_gru_cell(input_gates: torch.Tensor, hidden_gates: torch.Tensor, hx: torch.Tensor,
                   input_bias: torch.Tensor | None, hidden_bias: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's fused CUDA GRU gate kernel (hy, workspace), computed element-wise off the meta device."""
    ig = input_gates + input_bias if input_bias is not None else input_gates
    hg = hidden_gates + hidden_bias if hidden_bias is not None else hidden_gates
    i_r, i_z, i_n = ig.chunk(3, 1)
    h_r, h_z, h_n = hg.chunk(3, 1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * hx, torch.cat([r, z, n, hx, h_n], 1)


@fused_gru_cell.register_fake
def _fused_gru_cell_fake(input_gates: torch.Tensor, hidden_gates: torch.Tensor, hx: torch.Tensor,
                         input_bias: torch.Tensor | None, hidden_bias: torch.Tensor | None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(hx), hx.new_empty((hx.shape[0], hx.shape[1] * _GRU_WORKSPACE))


@torch.library.custom_op("afford::_thnn_fused_gru_cell_backward", mutates_args=())
def fused_gru_cell_backward(grad_hy: torch.Tensor, workspace: torch.Tensor, has_bias: bool
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gate kernel's backward: gradients of the input gates, hidden gates, hx and the two biases (empty
    without biases)."""
    r, z, n, hx, h_n = workspace.chunk(_GRU_WORKSPACE, 1)
    d_n = grad_hy * (1 - z) * (1 - n * n)
    d_z = grad_hy * (hx - n) * z * (1 - z)
    d_r = d_n * h_n * r * (1 - r)
    grad_ig, grad_hg = torch.cat([d_r, d_z, d_n], 1), torch.cat([d_r, d_z, d_n * r], 1)
    empty = grad_hy.new_empty(0)
    return (grad_ig, grad_hg, grad_hy * z, grad_ig.sum(0) if has_bias else empty,
            grad_hg.sum(0) if has_bias else empty)


@fused_gru_cell_backward.register_fake
def _fused_gru_cell_backward_fake(grad_hy: torch.Tensor, workspace: torch.Tensor, has_bias: bool
                                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    b, h3 = grad_hy.shape[0], 3 * grad_hy.shape[1]
    bias = grad_hy.new_empty(h3 if has_bias else 0)
    return (grad_hy.new_empty(b, h3), grad_hy.new_empty(b, h3), torch.empty_like(grad_hy), bias,
            torch.empty_like(bias))


def _gru_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    ctx.has_bias = inputs[3] is not None
    ctx.save_for_backward(output[1])  # the workspace, as the CUDA kernel's autograd keeps it


def _gru_backward(ctx: Any, grad_hy: torch.Tensor, _grad_ws: torch.Tensor | None) -> tuple[Any, ...]:
    (workspace,) = ctx.saved_tensors
    gi, gh, ghx, gbi, gbh = fused_gru_cell_backward(grad_hy, workspace, ctx.has_bias)
    return gi, gh, ghx, gbi if ctx.has_bias else None, gbh if ctx.has_bias else None


fused_gru_cell.register_autograd(_gru_backward, setup_context=_gru_setup)


def route_rnn(func: Any, args: Any, kwargs: dict[str, Any], counter: Counter) -> Any:
    """`torch.lstm(input, (h0, c0), params, ...)` / `torch.gru(input, h0, params, ...)` (then has_biases, num_layers,
    dropout, train, bidirectional, batch_first) on meta as cuDNN runs them, one library call
    (`Counter.library_call`); any other form (packed input, projections, off meta) as called."""
    lstm = func is LSTM
    if kwargs or len(args) != 9 or isinstance(args[1], torch.Tensor) == lstm:
        return func(*args, **kwargs)
    x, _, params, has_biases, layers, _, _, bidirectional, _ = args
    dirs = 2 if bidirectional else 1
    per = 4 if has_biases else 2
    if not isinstance(x, torch.Tensor) or x.device.type != "meta" or x.dim() != 3 or len(params) != layers * dirs * per:
        return func(*args, **kwargs)
    return counter.library_call(lambda: _cudnn_rnn(lstm, *args))


def _cudnn_rnn(lstm: bool, x: torch.Tensor, hx: Any, params: Any, has_biases: bool, layers: int, dropout: float,
               train: bool, bidirectional: bool, batch_first: bool) -> tuple[torch.Tensor, ...]:
    """The kernels cuDNN's standard LSTM or GRU runs (module docstring), as aten ops; its outputs as
    `torch.lstm` / `torch.gru` return them."""
    h0, c0 = hx if lstm else (hx, hx)
    dirs = 2 if bidirectional else 1
    per = 4 if has_biases else 2
    low = autocast.current_low()
    with autocast.paused() if low is not None else nullcontext():
        if low is not None:  # `_cudnn_rnn` on autocast's list: input, states and weights cast once per call
            cast = autocast.caster(low)
            x, h0 = cast(x), cast(h0)
            c0 = cast(c0) if lstm else h0
            params = [cast(p) for p in params]
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
                    w_ih.new_zeros(gates), w_ih.new_zeros(gates))  # the LSTM meta kernel wants both biases
                igates = torch.mm(layer_in.reshape(steps * batch, -1), w_ih.t()).view(steps, batch, gates)
                per_step = igates.unbind(0)  # views; the backward stacks the steps' gradients once
                h, c = h0[layer * dirs + d], c0[layer * dirs + d]
                hs = []
                for t in (range(steps) if d == 0 else reversed(range(steps))):
                    hg = torch.mm(h, w_hh.t())
                    if lstm:
                        h, c, _ = aten._thnn_fused_lstm_cell(per_step[t], hg, c, b_ih, b_hh)
                    else:
                        h, _ = fused_gru_cell(per_step[t], hg, h, b_ih, b_hh)
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
        return (out, torch.stack(h_n), torch.stack(c_n)) if lstm else (out, torch.stack(h_n))

