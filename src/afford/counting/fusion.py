"""Element-wise fusion as a fusing compiler runs a traced phase (torch.compile's Inductor, TensorRT, hand-fused
layers): chains of element-wise, normalisation and reduction ops become one kernel that reads its inputs once and
writes only what is used outside it (docs/methodology.md, "Fusion").

The counting engine logs, per phase, every kernel-launching op in program order with the values it reads and
writes (a value is one version of a storage: an in-place op writes a new one). At the end of the phase the ops are
grouped greedily, as Inductor's scheduler fuses producers into consumers:
- an op with FLOPs (matmul, convolution, attention), an embedding lookup, an eager attention op over S x S
  scores (estimate/attention.py prices those), a library op (sort, scatter, collectives; `BARRIERS`) or an op on
  a tensor without strided storage is a kernel of its own;
- any other op joins the groups of the fusible ops that produced its inputs (merging them), unless a barrier op
  has already read from that group (a group read by a matmul is closed, which also keeps groups acyclic);
- a group reads each outside input once (the same view read twice counts once) and writes each value read
  outside the group, or not read in the phase at all (a phase output, or saved for backward).

The result is the phase's events as the fused program runs them: every barrier op as traced, one ("fused", 0,
bytes) event per group of two or more ops, a lone fusible op as traced. Values the backward re-reads are kept
written (autograd's saved tensors), though a compiler that recomputes them (AOTAutograd's min-cut partitioner)
would write fewer: the fused bytes are an upper bound on what such a compiler moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from afford.counting.tensors import storage_of, tensor_bytes

# aten ops a fusing compiler leaves to a library kernel or a kernel of their own (sorting, scatters with atomics,
# data-dependent shapes, host syncs, collectives), besides every op with counted FLOPs
BARRIERS = frozenset({
    "sort", "argsort", "topk", "kthvalue", "median", "mode", "nonzero", "unique", "_unique", "_unique2",
    "unique_consecutive", "unique_dim", "multinomial", "cumsum", "cumprod", "cummax", "cummin", "logcumsumexp",
    "embedding", "embedding_dense_backward", "_embedding_bag", "_embedding_bag_forward_only", "embedding_bag",
    "_embedding_bag_backward", "_embedding_bag_dense_backward", "index_put", "index_put_", "_index_put_impl_",
    "scatter_add", "scatter_add_", "scatter_reduce", "scatter_reduce_", "index_add", "index_add_",
    "masked_scatter", "masked_scatter_", "_local_scalar_dense", "item", "_fft_r2c", "_fft_c2r", "_fft_c2c",
    "all_reduce", "all_reduce_", "all_gather_into_tensor", "reduce_scatter_tensor", "all_to_all_single",
    "_segment_reduce_backward", "histc", "bincount"})
# phases a fusing runtime prices; generation steps keep their traced (serving-engine) pricing
PHASES = frozenset({"forward", "backward", "infer"})
FUSED = "fused"  # the op name of a fused group's kernel


@dataclass
class _Op:
    key: tuple[str, int, int]
    fusible: bool
    repeat: int
    reads: list[tuple[int, tuple[object, ...], int]]  # (value, view signature, bytes)
    writes: list[tuple[int, int]]  # (value, bytes)


def _storage(t: torch.Tensor) -> int | None:
    """A strided tensor's storage identity, None for tensors without one (the op then cannot be fused)."""
    storage = storage_of(t) if t.layout == torch.strided else None
    return int(storage._cdata) if storage is not None else None


class FusionLog:
    """One phase's kernel-launching ops in program order, with the values they read and write."""

    def __init__(self) -> None:
        self.ops: list[_Op] = []
        self._version: dict[int, int] = {}  # storage -> the value it holds now
        self._next = 0

    def _new(self, storage: int) -> int:
        self._next += 1
        self._version[storage] = self._next
        return self._next

    def fresh(self, tensors: Sequence[torch.Tensor]) -> None:
        """Storages made without a kernel (empty, empty_like): new values, whatever an earlier storage at the same
        address held."""
        for t in tensors:
            s = _storage(t)
            if s is not None:
                self._new(s)

    def record(self, key: tuple[str, int, int], fusible: bool, ins: Sequence[torch.Tensor],
               outs: Sequence[torch.Tensor], repeat: int) -> None:
        """Log one kernel-launching op: its event key, whether a compiler may fuse it, what it reads and writes."""
        reads: list[tuple[int, tuple[object, ...], int]] = []
        for t in ins:
            s = _storage(t)
            if s is None:
                fusible = False
                continue
            value = self._version.get(s)
            if value is None:
                value = self._new(s)
            sig = (value, t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
            reads.append((value, sig, tensor_bytes(t)))
        writes: list[tuple[int, int]] = []
        for t in outs:
            s = _storage(t)
            if s is None:
                fusible = False
                continue
            writes.append((self._new(s), tensor_bytes(t)))
        self.ops.append(_Op(key, fusible, repeat, reads, writes))

    def events(self) -> dict[tuple[str, int, int], int]:
        """The phase's events as a fusing compiler runs them (see the module docstring)."""
        ops = self.ops
        parent = list(range(len(ops)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        producer: dict[int, int] = {}
        closed: set[int] = set()
        for i, op in enumerate(ops):
            sources = {find(producer[v]) for v, _, _ in op.reads if v in producer and ops[producer[v]].fusible}
            if not op.fusible:
                closed |= sources
            else:
                for g in sources:
                    if g not in closed and ops[g].repeat == op.repeat:
                        parent[find(g)] = i  # i becomes the group's root: roots stay open until read by a barrier
            for v, _ in op.writes:
                producer[v] = i
        group = [find(i) for i in range(len(ops))]
        readers: dict[int, set[int]] = {}
        for i, op in enumerate(ops):
            for v, _, _ in op.reads:
                readers.setdefault(v, set()).add(group[i])
        members: dict[int, list[int]] = {}
        for i, g in enumerate(group):
            members.setdefault(g, []).append(i)
        out: dict[tuple[str, int, int], int] = {}
        for g, idx in members.items():
            if len(idx) == 1:
                op = ops[idx[0]]
                out[op.key] = out.get(op.key, 0) + op.repeat
                continue
            inside = {v for i in idx for v, _ in ops[i].writes}
            seen: set[tuple[object, ...]] = set()
            nbytes = 0
            for i in idx:
                for v, sig, n in ops[i].reads:
                    if v not in inside and sig not in seen:
                        seen.add(sig)
                        nbytes += n
                for v, n in ops[i].writes:
                    if readers.get(v, set()) != {g}:  # read outside the group, or not at all in this phase
                        nbytes += n
            key = (FUSED, 0, nbytes)
            out[key] = out.get(key, 0) + ops[idx[0]].repeat
        return out
