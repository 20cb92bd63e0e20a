"""The converted graph as a module: its module tree rebuilt from ONNX node names, weights as frozen parameters,
and a forward that interprets the fx graph with weights on meta and shape arithmetic real on the CPU."""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import torch
from torch import fx, nn
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from afford.errors import TraceError
from afford.sources.onnx.tensors import REAL_LIMIT

# Inputs (by position) whose values an op needs to know its output shape: shapes, axes, pads, scales, indices
# read on the host. Per the ONNX operator specification (https://onnx.ai/onnx/operators/).
STATIC_INPUTS: dict[str, frozenset[int]] = {
    "Reshape": frozenset({1}), "Expand": frozenset({1}), "Tile": frozenset({1}),
    "ConstantOfShape": frozenset({0}), "Range": frozenset({0, 1, 2}), "Slice": frozenset({1, 2, 3, 4}),
    "Pad": frozenset({1, 2, 3}), "Resize": frozenset({1, 2, 3}), "Upsample": frozenset({1}),
    "Unsqueeze": frozenset({1}), "Squeeze": frozenset({1}), "Split": frozenset({1}), "TopK": frozenset({1}),
    "OneHot": frozenset({1}), "Clip": frozenset({1, 2}), "CumSum": frozenset({1}), "Trilu": frozenset({1}),
    "ScatterND": frozenset({1}), "NonMaxSuppression": frozenset({2, 3, 4}),
    **{op: frozenset({1}) for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                      "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")},
}


class _Scope(nn.Module):
    """A level of the module tree rebuilt from ONNX node names (`/encoder/layer.0/...`): it only calls down the
    path to the op's module, so the per-module counts credit every level, as for a PyTorch model."""

    def forward(self, path: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        child = self._modules[path[0]]
        assert child is not None
        return child(path[1:], args, kwargs) if len(path) > 1 else child(*args, **kwargs)


def _path(node_name: str) -> list[str]:
    """`/layer1/layer1.0/conv1/Conv` -> [layer1, 0, conv1, Conv]: exporters name each scope by its full module
    path, so a part that repeats its parent's prefix is cut back to the new part."""
    out: list[str] = []
    prev = ""
    for part in (p for p in node_name.split("/") if p):
        short = part[len(prev) + 1:] if prev and part.startswith(prev + ".") else part
        prev = part
        out.extend(x for x in short.split(".") if x)
    return out


def _node_path(node: Any) -> list[str]:
    """Where a node sits in the exported model: the torch.export exporter's name scopes (`layer1.0.conv1`) plus
    the node's name, else the TorchScript exporter's `/layer1/layer1.0/conv1/Conv` name."""
    import ast

    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = [str(x) for x in ast.literal_eval(prop.value) if x]
            except (ValueError, SyntaxError):
                break
            module = scopes[-2].split(".") if len(scopes) >= 2 else []
            return [p for p in module if p] + [node.name or node.op_type]
    return _path(node.name)


def _nest(gm: fx.GraphModule, root: nn.Module, names: dict[str, tuple[str, list[str]]]) -> dict[str, str]:
    """Move gm's modules into `root`: initializers as they are, each op's module under its ONNX node name's
    path (`encoder.layer.0.attention.self.query.MatMul`); retargets the graph and returns op types by target."""
    out: dict[str, str] = {}
    holder = gm._modules.get("initializers")
    if holder is not None:
        root.add_module("initializers", holder)
    reserved = {"initializers", "ops", "positions", "fx_graph"}

    def taken(parent: nn.Module, name: str) -> bool:
        return (parent is root and name in reserved) or (hasattr(parent, name) and name not in parent._modules)

    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        old = str(node.target)
        module = gm.get_submodule(old)
        op_type, path = names.get(old, ("", []))
        parts = list(path) or [old.replace(".", "_").replace("/", "_")]
        parent: nn.Module = root
        for i, part in enumerate(parts[:-1]):
            scope = parent._modules.get(part)
            if (scope is not None and not isinstance(scope, _Scope)) or taken(parent, part):
                parts = [*parts[:i], "_".join(parts[i:])]
                break
            if scope is None:
                scope = _Scope()
                parent.add_module(part, scope)
            parent = scope
        leaf, k = parts[-1], 1
        while leaf in parent._modules or taken(parent, leaf):
            k += 1
            leaf = f"{parts[-1]}_{k}"
        parent.add_module(leaf, module)
        node.target = ".".join([*parts[:-1], leaf])
        out[str(node.target)] = op_type
    return out


def _keep_real(gm: nn.Module) -> None:
    """Small and integer buffers become plain attributes (the trace swaps registered tensors for meta stand-ins,
    and these are shapes, axes and scalars whose values the graph reads); floating initializers become frozen
    parameters, so they count as the model's weights."""
    initializers = gm._modules.get("initializers")  # fx copies onnx2torch's container into a plain module
    for module in gm.modules():
        for key, value in list(module._buffers.items()):
            if value is None:
                continue
            if value.device.type != "meta":
                del module._buffers[key]
                object.__setattr__(module, key, value)
            elif module is initializers and value.is_floating_point():
                del module._buffers[key]
                module.register_parameter(key, nn.Parameter(value, requires_grad=False))
    for p in gm.parameters():
        p.requires_grad_(False)


# --- running the graph on meta ---------------------------------------------------------------------------------

def _to_meta(value: Any, float_dtype: torch.dtype | None = None) -> Any:
    """A meta stand-in for a real tensor; a floating one takes `float_dtype` (the activations' compute dtype),
    so a graph's fp32 constants do not promote bf16 activations to fp32 when the trace runs another precision."""
    if isinstance(value, torch.Tensor) and value.device.type != "meta":
        dtype = float_dtype if float_dtype is not None and value.is_floating_point() else value.dtype
        return torch.empty(value.shape, dtype=dtype, device="meta")
    return value


def _numel(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return int(value.numel())
    if isinstance(value, (tuple, list)):
        return sum(_numel(v) for v in value)
    return 0


def _shrink(value: Any) -> Any:
    """A real result too big to be shape arithmetic continues as a meta tensor (its values are not needed)."""
    if isinstance(value, torch.Tensor):
        return _to_meta(value) if value.numel() > REAL_LIMIT else value
    if isinstance(value, tuple):
        return tuple(_shrink(v) for v in value)
    if isinstance(value, list):
        return [_shrink(v) for v in value]
    return value


class _Runner(fx.Interpreter):
    """Runs the converted graph with weights and activations on meta and shape arithmetic real on the CPU.

    Shape and Size give real tensors; an op whose inputs are all real runs for real (if its result is small);
    an op with a meta data input gets its other real data inputs as meta stand-ins; inputs that are shapes, axes
    or pads (STATIC_INPUTS) must be real, else the graph reads tensor values that the meta device cannot give."""

    def __init__(self, root: OnnxModule, compute_dtype: torch.dtype | None) -> None:
        super().__init__(root, garbage_collect_values=True, graph=root.fx_graph)
        self.root = root
        # the traced precision where it differs from the graph's own float type, else None
        self.compute_dtype = compute_dtype if compute_dtype != root.native_dtype else None

    def run_node(self, n: fx.Node) -> Any:
        if n.name in self.root.folded:
            # weights-only work (a transposed or reshaped weight): runtimes fold it once when they load the model
            with _disable_current_modes():
                return super().run_node(n)
        return super().run_node(n)

    def _call(self, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call the op's module through its scopes, so module hooks see every level of the tree."""
        path = tuple(target.split("."))
        first = self.root._modules[path[0]]
        assert first is not None
        return first(path[1:], args, kwargs) if len(path) > 1 else first(*args, **kwargs)

    def call_module(self, target: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        op = self.root.ops.get(target, "")
        if op in ("Shape", "Size"):
            x = args[0]
            if op == "Size":
                return torch.tensor(int(x.numel()), dtype=torch.int64)
            module = self.fetch_attr(target)
            return torch.tensor(list(x.shape)[module._start:module._end], dtype=torch.int64)
        compute = self.compute_dtype
        if op == "Cast" and compute is not None and isinstance(args[0], torch.Tensor) \
                and args[0].device.type == "meta":
            # the graph's own float type follows the traced precision (a cast to fp32 in an fp32 graph traced in
            # bf16 is a cast to bf16), as converting the graph to that precision would make it
            if getattr(self.fetch_attr(target), "torch_dtype", None) == self.root.native_dtype:
                return args[0].to(compute)
        if op == "Gather" and len(args) == 2 and getattr(self.fetch_attr(target), "_axis", None) == 0:
            table, index = args
            if isinstance(table, torch.Tensor) and table.device.type == "meta" and table.dim() == 2 \
                    and table.is_floating_point() and not index.is_floating_point():
                # an embedding lookup, counted as PyTorch's (bytes: the rows read, not the whole table)
                return nn.functional.embedding(_to_meta(index), table)
        static = STATIC_INPUTS.get(op, frozenset())
        where = self.root.positions.get(target, {})
        items: list[tuple[int, Any]] = list(enumerate(args)) + [(where.get(k, 99), v) for k, v in kwargs.items()]
        for pos, value in items:
            if pos in static and isinstance(value, torch.Tensor) and value.device.type == "meta":
                raise TraceError(f"ONNX {op} node {target}: its input {pos} (a shape, axes or index) is computed "
                                 "from tensor values, which the meta device does not have")
        data = [v for pos, v in items if pos not in static and isinstance(v, torch.Tensor)]
        float_dtype = next((t.dtype for t in data if t.device.type == "meta" and t.is_floating_point()), compute)
        meta_args = tuple(a if i in static else _to_meta(a, float_dtype) for i, a in enumerate(args))
        meta_kwargs = {k: v if where.get(k, 99) in static else _to_meta(v, float_dtype) for k, v in kwargs.items()}
        if any(t.device.type == "meta" for t in data):
            return self._call(target, meta_args, meta_kwargs)
        if op == "ConstantOfShape":
            shape = [int(s) for s in args[0].tolist()]
            if math.prod(shape) > REAL_LIMIT:
                dtype = self.fetch_attr(target).value.dtype
                if compute is not None and dtype == self.root.native_dtype:
                    dtype = compute
                return torch.zeros(shape, dtype=dtype, device="meta")
        if data:
            # all real: size the result on meta first (uncounted), run it for real only if it is small
            try:
                with _disable_current_modes():
                    probe = self.fetch_attr(target)(*meta_args, **meta_kwargs)
            except (RuntimeError, NotImplementedError, TypeError, ValueError, IndexError):
                probe = None  # the op reads its inputs' values (a gather index): small by construction
            if probe is not None and _numel(probe) > REAL_LIMIT:
                return self._call(target, meta_args, meta_kwargs)
        return _shrink(self._call(target, args, kwargs))


class _HostArithmetic(TorchDispatchMode):
    """Ops whose tensors are all real (CPU) are the graph's shape arithmetic, which runtimes do on the host:
    they run here without reaching afford's counter, so coverage lists only the model's own ops."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        device = kwargs.get("device")
        on_host = all(t.device.type == "cpu" for t in tensors) and (
            device is None or torch.device(device).type == "cpu")
        if on_host:
            with _disable_current_modes():
                return func(*args, **kwargs)
        return func(*args, **kwargs)


def _weight_only_nodes(graph: fx.Graph) -> frozenset[str]:
    """Op nodes whose inputs all come from weights and constants: ONNX Runtime's constant folding computes
    them once at load (onnxruntime graph optimizations, level "basic"), so a traced step does not count them."""
    constant: set[str] = set()
    for node in graph.nodes:
        if node.op == "get_attr":
            constant.add(node.name)
        elif node.op in ("call_module", "call_function") and node.all_input_nodes and all(
                i.name in constant for i in node.all_input_nodes):
            constant.add(node.name)
    return frozenset(n.name for n in graph.nodes if n.name in constant and n.op != "get_attr")


class OnnxModule(nn.Module):
    """The converted ONNX graph as a module: `initializers` holds the graph's weights, the other children are
    onnx2torch's op modules nested by node name; forward interprets the fx graph (see _Runner)."""

    def __init__(self, gm: fx.GraphModule, names: dict[str, tuple[str, list[str]]],
                 native_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.native_dtype = native_dtype  # the float type most of the graph's weights are stored in
        self.ops = _nest(gm, self, names)
        self.fx_graph = gm.graph
        self.positions: dict[str, dict[str, int]] = {}
        for target in self.ops:
            params = list(inspect.signature(self.get_submodule(target).forward).parameters)
            self.positions[target] = {p: i for i, p in enumerate(params)}
        _keep_real(self)
        self._adopt_weights()
        self.folded = _weight_only_nodes(self.fx_graph)

    def _adopt_weights(self) -> None:
        """A weight only one op reads moves into that op's module (`...query.MatMul.weight`), so the module
        tree shows where the parameters are; shared weights stay under `initializers`."""
        holder = self._modules.get("initializers")
        if holder is None:
            return
        for node in self.fx_graph.nodes:
            target = str(node.target)
            if node.op != "get_attr" or not target.startswith("initializers."):
                continue
            key = target.split(".", 1)[1]
            param = holder._parameters.get(key)
            owners = {str(u.target) for u in node.users}
            if param is None or len(owners) != 1 or any(u.op != "call_module" for u in node.users):
                continue
            owner_target = owners.pop()
            owner = self.get_submodule(owner_target)
            name = next(n for n in ("weight", "weight_1", "weight_2", key) if not hasattr(owner, n))
            del holder._parameters[key]
            owner.register_parameter(name, param)
            node.target = f"{owner_target}.{name}"

    def forward(self, *args: Any) -> Any:
        with warnings.catch_warnings(), _HostArithmetic():
            # onnx2torch indexes with lists of slices, which PyTorch warns about; the meaning is unchanged
            warnings.filterwarnings("ignore", message="Using a non-tuple sequence", category=UserWarning)
            compute = next((p.dtype for p in self.parameters() if p.is_floating_point()), None)
            return _Runner(self, compute).run(*args)

