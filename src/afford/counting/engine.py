"""Trace a model on PyTorch's meta device and measure FLOPs, bytes and memory by phase, op and module.

The engine is `torch.utils.flop_counter.FlopCounterMode` with three additions: each leaf op's FLOPs, bytes and
module are recorded (for coverage and the roofline), the storages that ops create are followed until freed
(live-memory peaks), and tensors autograd saves for backward are measured through saved-tensor hooks (both in
counting/livebytes.py).
Attention calls are routed to PyTorch's memory-efficient SDPA kernel, as a GPU runs them, instead of the math
fallback that the meta device would otherwise pick (which would materialise the score matrix).
"""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Callable, Container, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode
from torch.utils import flop_counter as fc

from afford.counting import convkind, eager, memo, rowblocks, serial
from afford.counting.formulas import custom_mapping
from afford.counting.fusion import BARRIERS, PHASES, FusionLog
from afford.counting.livebytes import LiveBytes
from afford.counting.profile import OpStat, PhaseProfile
from afford.counting.tensors import read_bytes, storage_key, tensor_bytes
from afford.errors import InputError, TraceError

aten = torch.ops.aten

# Ops that only ask about metadata; they never run a kernel.
# Ops that only ask about metadata or allocate without writing; they do no arithmetic and move no data.
_NO_WORK_OPS = frozenset({"size", "sym_size", "stride", "sym_stride", "numel", "sym_numel", "dim",
                          "is_contiguous", "storage_offset", "sym_storage_offset", "is_same_size",
                          "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided",
                          # a sparse tensor's parts and counts: accessors, no kernel
                          "_indices", "_values", "indices", "values", "_nnz", "sparse_dim", "dense_dim",
                          "is_coalesced"})

# Embedding lookups (table first, indices second) read only the rows their indices name: their bytes count
# indices.numel() rows of the table, never the whole table (docs/recsys.md, "Time").
_LOOKUP_OPS = frozenset({"embedding", "_embedding_bag", "_embedding_bag_forward_only", "embedding_bag"})


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a nested structure of tuples, lists and dicts."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _tensors(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _tensors(x)


def lookup_bytes(args: Any) -> int:
    """Bytes of an embedding lookup's table that the lookup reads: one row per index, at most the table."""
    table, indices = args[0], args[1]
    row = tensor_bytes(table) // max(int(table.shape[0]), 1) if table.dim() else 0
    return min(tensor_bytes(table), int(indices.numel()) * row)


class _RecordingDispatch(fc._FlopCounterMode):
    """PyTorch's flop-counting dispatch mode, plus grouped_mm in any dtype on meta and remembered norm outputs."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in memo.OPS and not os.environ.get(memo.ENV):
            out = memo.call(self.counter, func, args, kwargs,
                            lambda: super(_RecordingDispatch, self).__torch_dispatch__(func, types, args, kwargs))
            if out is not memo.SKIP:
                return out
        if func is aten._grouped_mm.default and args[0].device.type == "meta" and args[0].dtype not in (
                torch.bfloat16, torch.float16):
            # PyTorch's meta kernel accepts only 16-bit inputs; the shapes (and FLOPs) do not depend on dtype.
            a, b = args[0], args[1]
            rest = [x.to(torch.bfloat16) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
                    for x in args[2:]]
            out = func(a.to(torch.bfloat16), b.to(torch.bfloat16), *rest, **kwargs).to(a.dtype)
            return self.counter._count_flops(func._overloadpacket, out, args, kwargs)
        if func is aten.clone.default and args[0].layout == torch.sparse_coo and args[0].device.type == "meta":
            # meta's sparse clone keeps the shape but drops the stored values (nnz 0). Autograd clones a sparse
            # gradient here only because the tracing mode holds references; without one, AccumulateGrad takes
            # the tensor's parts as they are (torch/csrc/autograd/functions/accumulate_grad.h), so do the same
            # and record no kernel
            x = args[0]
            return torch.sparse_coo_tensor(x._indices(), x._values(), x.shape, is_coalesced=x.is_coalesced(),
                                           check_invariants=False)
        return super().__torch_dispatch__(func, types, args, kwargs)


_NO_SEQUENCE = 1 << 62  # AccumulateGrad and other graph roots carry UINT64_MAX as their sequence number


class ModuleStack:
    """The modules whose forward is running, by qualified name (`ResNet.layer1.0`), from global forward hooks only;
    it stands in for PyTorch's ModuleTracker inside the counter.

    ModuleTracker also hangs `register_multi_grad_hook` on every module's inputs and outputs that require grad, to
    follow modules through backward. That fails on a view made under no_grad of a parameter (timm's
    `self.latent.expand(B, -1, -1)` and `cls_token.expand(...)` at inference): such a view requires grad yet has no
    grad_fn, and the hook raises "Expected gradient function to be set". Its "all" hooks also hold every gradient
    of a module's inputs until the last one arrives, which inflates the measured backward memory. Backward credit
    comes from `_NodeLabels` (the autograd node running), so no backward hook is needed here.
    """

    def __init__(self) -> None:
        self.parents: set[str] = {"Global"}
        self._names: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()
        self._seen: weakref.WeakSet[nn.Module] = weakref.WeakSet()
        self._handles: list[Any] = []
        self.calls = 0  # module forward calls so far (estimate/runtime.py prices each one's Python call)

    @property
    def is_bw(self) -> bool:
        """Whether the autograd engine is running a backward pass on this thread."""
        return bool(torch._C._current_graph_task_id() != -1)

    def name(self, mod: nn.Module) -> str:
        """A module's name: its class for a module first met outside any known parent, else `parent.child`
        (ModuleTracker's naming, so per-module figures keep their keys)."""
        if mod not in self._names:
            self._names[mod] = type(mod).__name__
        name = self._names[mod]
        if mod not in self._seen:
            self._seen.add(mod)
            for child_name, child in mod.named_children():
                self._names[child] = f"{name}.{child_name}"
                self.name(child)
        return name

    def _enter(self, mod: nn.Module, args: Any) -> None:
        self.calls += 1
        self.parents.add(self.name(mod))

    def _leave(self, mod: nn.Module, args: Any, output: Any) -> None:
        self.parents.discard(self.name(mod))

    def __enter__(self) -> ModuleStack:
        self._handles = [register_module_forward_pre_hook(self._enter), register_module_forward_hook(self._leave)]
        return self

    def __exit__(self, *args: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.parents = {"Global"}


def new_nodes(roots: Iterable[Any], mark: int, seen: Container[int]) -> Iterator[int]:
    """Sequence numbers of the autograd nodes at and behind `roots` made after sequence number `mark`, skipping
    those in `seen` (read as the caller fills it) and the graph's leaves (AccumulateGrad)."""
    stack = list(roots)
    while stack:
        node = stack.pop()
        seq = node._sequence_nr()
        if seq <= mark or seq >= _NO_SEQUENCE or seq in seen:
            continue
        yield seq
        stack.extend(f for f, _ in node.next_functions if f is not None)


class _NodeLabels(TorchFunctionMode):
    """Labels each autograd node a forward call creates with the modules running at that moment, so that a
    backward op is credited to the module whose forward op it differentiates.

    PyTorch's ModuleTracker keeps a module "in backward" from its output gradients until ALL its input gradients
    are ready; where an input feeds two branches (a residual block's downsample and its main path) every op of
    the other branch runs meanwhile and is credited to it too (ResNet-18's layer2.0.downsample got 719 MFLOPs of
    backward against a 12.8 MFLOPs forward). The autograd engine runs one node at a time on this thread and
    `torch._C._current_autograd_node()` names it, so the label of that node is exact.
    """

    def __init__(self, tracker: ModuleStack) -> None:
        super().__init__()
        self.tracker = tracker
        self.labels: dict[int, frozenset[str]] = {}  # node sequence number -> module names (with "Global")
        self.high = -1  # highest sequence number labelled: nodes at or below it belong to earlier calls

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if torch.is_grad_enabled() and not self.tracker.is_bw:
            label: frozenset[str] | None = None
            for t in _tensors(out):
                if t.grad_fn is not None:
                    label = label or frozenset(self.tracker.parents)
                    self._label(t.grad_fn, label)
        return out

    def _label(self, node: Any, label: frozenset[str]) -> None:
        """Label `node` and the nodes behind it that this call created (sequence numbers above the mark)."""
        top = self.high
        for seq in new_nodes([node], self.high, self.labels):
            self.labels[seq] = label
            top = max(top, seq)
        self.high = top

    def backward_parents(self) -> set[str]:
        """The modules the running backward node belongs to ("Global" alone when it was made outside a call)."""
        node = torch._C._current_autograd_node()
        label = self.labels.get(node._sequence_nr()) if node is not None else None
        return set(label) if label else {"Global"}


# Dispatched aten ops one trace may run (all its phases together) before it stops with a TraceError. Real
# models need far fewer (measured: GPT-2 at 128 tokens 3,148; Llama-2-70B at 4,096 tokens, training and
# inference, 37,505; Llama-2-7B generating 64 tokens 29,057); an op costs 0.3-0.8 ms on a 2-core machine, so
# the default stops a runaway config or module loop after some minutes instead of hours.
# AFFORD_MAX_TRACE_OPS overrides it (README, "Limits").
DEFAULT_MAX_TRACE_OPS = 1_000_000
MAX_TRACE_OPS_ENV = "AFFORD_MAX_TRACE_OPS"


def max_trace_ops() -> int:
    """The op budget of a trace: AFFORD_MAX_TRACE_OPS when set (a positive integer), else the default."""
    raw = os.environ.get(MAX_TRACE_OPS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_TRACE_OPS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if not 1 <= value <= 10**12:
        raise InputError(f"{MAX_TRACE_OPS_ENV} must be a positive integer (ops per trace), got {raw[:40]!r}")
    return value


class Counter(fc.FlopCounterMode):
    """FlopCounterMode that also records, per leaf op, its bytes, module and phase, and follows live memory."""

    repeat = 1  # identical runs each recorded op stands for (`repeated`: a diffusion sampler's steps)

    def __init__(self, live: LiveBytes) -> None:
        super().__init__(display=False, custom_mapping=custom_mapping())
        self.mod_tracker: ModuleStack = ModuleStack()  # type: ignore[assignment]  # forward hooks only
        self.live = live
        self.phase = PhaseProfile(name="forward")
        self._finished = True  # no phase open until start_phase
        self._module_base: dict[str, int] = {}
        self._calls_base = 0
        self.ops = 0  # aten ops dispatched so far, against the budget `max_ops`
        self.max_ops = max_trace_ops()
        self.score_side: tuple[int, int] | None = None  # (batch, S): recognise S x S eager attention scores
        self.fusion: FusionLog | None = None  # the open phase's op log, for a fusing runtime (counting/fusion.py)
        self.library_depth = 0  # inside `library_call`: the ops recorded are a library's own launches
        self.library_nodes: set[int] = set()  # sequence numbers of the autograd nodes library calls made

    def __enter__(self) -> Counter:
        self.flop_counts.clear()
        self.mod_tracker.__enter__()
        self.nodes = _NodeLabels(self.mod_tracker)
        self.nodes.__enter__()
        self.mode = _RecordingDispatch(self)
        self.mode.__enter__()
        return self

    def __exit__(self, *args: Any) -> Any:
        out = super().__exit__(*args)
        self.nodes.__exit__(*args)
        return out

    def start_phase(self, name: str) -> PhaseProfile:
        """Close the running phase and open a new one; module FLOPs are split at this point."""
        self.finish_phase()
        self.phase = PhaseProfile(name=name)
        self._calls_base = self.mod_tracker.calls
        self._finished = False
        self.fusion = FusionLog() if name in PHASES else None
        self.live.reset_peak()
        return self.phase

    def finish_phase(self) -> PhaseProfile:
        """Close the running phase (idempotent): split module FLOPs and keep its live-memory peak."""
        if self._finished:
            return self.phase
        self._finished = True
        totals = {mod: sum(ops.values()) for mod, ops in self.flop_counts.items()}
        self.phase.by_module = {m: v - self._module_base.get(m, 0) for m, v in totals.items()
                                if v - self._module_base.get(m, 0) > 0}
        self._module_base = totals
        self.phase.module_calls = self.mod_tracker.calls - self._calls_base
        self.phase.peak_live_bytes = max(self.phase.peak_live_bytes, self.live.peak)
        self.phase.lean_peak_bytes = max(self.phase.lean_peak_bytes, self.live.lean_peak)
        self.phase.eager = {m: blk for m, blk in self.phase.eager.items() if blk.calls}  # a softmax ran there
        if self.fusion is not None:
            self.phase.fused_events = self.fusion.events()
            self.fusion = None
        return self.phase

    def library_call(self, run: Callable[[], Any]) -> Any:
        """Run `run`, the aten ops that emulate one library call (cuDNN's RNN), and mark them, and the backward ops of
        the autograd nodes they made, as the library's own kernels: launched from C++, no Python dispatch each
        (estimate/runtime.py prices them so); the call itself is one dispatch."""
        mark = self.nodes.high
        self.library_depth += 1
        try:
            out = run()
        finally:
            self.library_depth -= 1
        self.phase.library_calls += self.repeat
        roots = [t.grad_fn for t in _tensors(out) if t.grad_fn is not None]
        for seq in new_nodes(roots, mark, self.library_nodes):
            self.library_nodes.add(seq)
        return out

    def _in_library(self) -> bool:
        """Whether the op being recorded is a library's own launch (`library_call`), forward or backward."""
        if self.library_depth:
            return True
        if not self.library_nodes or not self.mod_tracker.is_bw:
            return False
        node = torch._C._current_autograd_node()
        return node is not None and node._sequence_nr() in self.library_nodes

    def is_score(self, t: torch.Tensor) -> bool:
        """Whether `t` is an S x S attention score tensor of the traced batch (counting/eager.py)."""
        return eager.is_score(t, self.score_side)

    def current_module(self) -> str:
        parents = self.mod_tracker.parents
        return max(parents, key=lambda p: (p.count("."), len(p))) if parents else "Global"

    def _count_flops(self, func_packet: Any, out: Any, args: Any, kwargs: Any) -> Any:
        self.ops += 1
        if self.ops > self.max_ops:
            raise TraceError(f"the trace passed its budget of {self.max_ops:,} dispatched ops (set "
                             f"{MAX_TRACE_OPS_ENV} to allow more); the model is far larger than any real one or "
                             "loops without end")
        name = convkind.tag(func_packet.__name__, args, kwargs)  # depthwise / grouped convolutions apart
        if name in _NO_WORK_OPS:
            made = list(_tensors(out))
            for t in made:
                self.live.add(t, self.score_side is not None and self.is_score(t))
            if self.fusion is not None:
                self.fusion.fresh(made)
            return out
        flops = 0
        if func_packet in self.flop_registry:
            tracked = self.mod_tracker.parents
            if self.mod_tracker.is_bw:  # credit the module of the forward op this backward node differentiates
                self.mod_tracker.parents = self.nodes.backward_parents()
            try:
                before = self.flop_counts["Global"].get(func_packet, 0)
                super()._count_flops(func_packet, out, args, kwargs)
                flops = self.flop_counts["Global"][func_packet] - before
                for par in set(self.mod_tracker.parents) if self.repeat > 1 and flops else ():
                    self.flop_counts[par][func_packet] += flops * (self.repeat - 1)
            finally:
                self.mod_tracker.parents = tracked
        outs = list(_tensors(out))
        ins = list(_tensors(args)) + list(_tensors(kwargs))
        in_keys = {storage_key(t) for t in ins if t.layout == torch.strided}
        aliasing = any(t.layout == torch.strided and storage_key(t) in in_keys for t in outs)
        is_view = aliasing and not name.endswith("_") and flops == 0
        nbytes = 0 if is_view else sum(map(read_bytes, ins)) + sum(map(tensor_bytes, outs))
        if name in _LOOKUP_OPS and nbytes:
            nbytes += lookup_bytes(args) - tensor_bytes(args[0])
        phase = self.phase
        stat = phase.by_op.get(name)
        if stat is None:
            stat = phase.by_op[name] = OpStat()
        r = self.repeat
        stat.calls += r
        stat.flops += flops * r
        stat.bytes += nbytes * r
        phase.flops += flops * r
        phase.bytes_moved += nbytes * r
        if self._in_library():
            phase.library_ops += r
            phase.library_kernels += 0 if is_view else r
        if not is_view:
            key = (name, flops, nbytes)
            phase.events[key] = phase.events.get(key, 0) + r
            loop = serial.loop_length(name, args, outs)
            if loop:
                phase.serial[key] = max(phase.serial.get(key, 0), loop)
            rows = rowblocks.blocks(name, args)
            if rows:
                phase.row_blocks[key] = max(phase.row_blocks.get(key, 0), rows)
            if flops == 0 and func_packet not in self.flop_registry:
                phase.uncounted[name] = phase.uncounted.get(name, 0) + r
            in_block = self.score_side is not None and eager.record(self, name, key, ins, outs, flops)
            if self.fusion is not None:
                fusible = not flops and not in_block and name not in BARRIERS
                self.fusion.record(key, fusible, ins, outs, r)
        for t in outs:
            self.live.add(t, self.score_side is not None and self.is_score(t))
        return out


@contextmanager
def repeated(times: int) -> Iterator[int]:
    """Count a block as `times` identical runs (same weights, same shapes: a diffusion sampler's steps). Yields how
    often the caller must run it: once while afford traces (FLOPs, bytes, calls, module FLOPs and attention calls
    are scaled by `times`; live memory is not, the runs being sequential), `times` on a real run (`afford measure`)."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    counter = next((m.counter for m in reversed(_get_current_dispatch_mode_stack())
                    if isinstance(m, _RecordingDispatch) and isinstance(m.counter, Counter)), None)
    if counter is None:
        yield times
        return
    before = counter.repeat
    counter.repeat = before * times
    try:
        yield 1
    finally:
        counter.repeat = before


def collect() -> None:
    """Free a finished phase's storages now, so live memory sees them go: the young generations only, where its
    cycles are (a full collection costs ~0.5 s with timm/transformers loaded; tests/counting/test_collect.py)."""
    gc.collect(1)


def extra_formulas() -> list[str]:
    """Names of the ops whose formulas afford adds to (or corrects in) PyTorch's registry."""
    return sorted(p.__name__ for p in custom_mapping())
