""".onnx files: counted from the graph, checked against afford's own count of the PyTorch module they were
exported from (same random weights), for ResNet-50 and the full BERT-base masked LM, plus the one-line errors."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import afford
from afford.cli import app
from afford.errors import ConfigError, UnsupportedError, WorkloadError
from afford.sources import ModelKind, resolve
from afford.sources import onnx as onnx_source
from afford.sources.base import Dims, ModelSpec

runner = CliRunner()

# torchvision's published cost of ResNet-50 at 224 px: "GFLOPS 4.09" (ResNet50_Weights.IMAGENET1K_V1/V2, meta
# "_ops": 4.089; torchvision counts one multiply-accumulate as one op, so this is 4.089 GMACs):
# https://pytorch.org/vision/stable/models/generated/torchvision.models.resnet50.html
RESNET50_PUBLISHED_GMACS = 4.089


def _export(module: nn.Module, args: tuple[Any, ...], path: Path, names: list[str], dynamic: dict[str, Any]) -> Path:
    """Export with PyTorch's TorchScript exporter (offline, opset 20; about 1 s for ResNet-50, 12 s for BERT-base
    on 2 cores, several times faster than torch.export here), without constant folding, as the model is."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, input_names=names, dynamic_axes=dynamic,
                          do_constant_folding=False)
    return path


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    import torchvision

    module = torchvision.models.resnet50(weights=None).eval()
    folder = tmp_path_factory.mktemp("resnet")
    x = torch.randn(1, 3, 224, 224)
    path = _export(module, (x,), folder / "resnet50.onnx", ["pixel_values"],
                   {"pixel_values": {0: "batch", 2: "height", 3: "width"}})
    return module, path


@pytest.fixture(scope="module")
def resnet_spec(resnet: tuple[nn.Module, Path]) -> ModelSpec:
    """The file resolved once (conversion costs about a second); assess accepts the spec itself."""
    return resolve(resnet[1])


@pytest.fixture(scope="module")
def resnet_external(resnet: tuple[nn.Module, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same graph with its weights in a separate .data file (how files over 2 GB must be stored)."""
    import onnx

    path = tmp_path_factory.mktemp("external") / "resnet50.onnx"
    onnx.save_model(onnx.load(str(resnet[1])), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="resnet50.onnx.data", size_threshold=1024)
    return path


class _MaskedLM(nn.Module):
    """BertForMaskedLM with the three inputs an optimum export has, returning the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The full BERT-base masked LM from the bundled config (12 layers, random weights), exported with dynamic
    batch and sequence axes."""
    spec = resolve("hf:google-bert/bert-base-uncased")
    module = spec.build(torch.float32, Dims(seq_len=128), device="cpu").eval()
    ids = torch.zeros(2, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    path = _export(_MaskedLM(module), (ids, torch.ones_like(ids), torch.zeros_like(ids)),
                   tmp_path_factory.mktemp("bert") / "bert-base.onnx", names,
                   {n: {0: "batch", 1: "sequence"} for n in names})
    del module
    return spec, path


def _within(value: float, reference: float, tolerance: float = 0.01) -> bool:
    return abs(value - reference) / reference <= tolerance


def test_resnet50_forward_flops_match_the_torch_module_and_the_published_figure(
        resnet: tuple[nn.Module, Path], resnet_spec: ModelSpec) -> None:
    module, _ = resnet
    from_onnx = afford.assess(resnet_spec, infer_samples=1)
    from_torch = afford.assess(module, infer_samples=1)
    assert from_onnx.spec.kind is ModelKind.IMAGE and from_onnx.dims.image_size == 224
    assert _within(from_onnx.forward_flops, from_torch.forward_flops)
    assert _within(from_onnx.forward_flops / 2 / 1e9, RESNET50_PUBLISHED_GMACS)
    # exported without constant folding, BatchNorm stays a node: the same 25,557,032 parameters (torchvision's
    # published num_params) and the same buffers: running mean and variance, 2 x 26,560 BN channels x 4 bytes,
    # plus num_batches_tracked, 53 BN layers x 8 bytes
    assert from_torch.trace.params == from_onnx.trace.params == 25_557_032
    assert from_torch.trace.buffers_bytes == from_onnx.trace.buffers_bytes == 2 * 26_560 * 4 + 53 * 8
    # the graph's weights were never materialised: every parameter of the converted module is a meta tensor
    built = resnet_spec.build(torch.float32, Dims(image_size=224))
    assert all(p.device.type == "meta" for p in built.parameters())


def test_dynamic_batch_and_image_size_come_from_the_workload(resnet: tuple[nn.Module, Path],
                                                            resnet_spec: ModelSpec) -> None:
    module, _ = resnet
    one = afford.assess(resnet_spec, infer_samples=1)
    four = afford.assess(resnet_spec, infer_samples=1, batch_size=4, image_size=160)
    torch_four = afford.assess(module, infer_samples=1, batch_size=4, image_size=160)
    assert four.trace.batch_size == 4 and four.dims.image_size == 160
    assert _within(four.forward_flops, torch_four.forward_flops)
    # convolutions scale with the pixel count: (160/224)^2 of the 224 px cost, within the classifier's share
    assert _within(four.forward_flops, one.forward_flops * (160 / 224) ** 2, 0.02)


def test_external_weights_are_checked_by_size_and_never_read(resnet_spec: ModelSpec, resnet_external: Path,
                                                             tmp_path: Path) -> None:
    """A .data file of zeros with the right size counts the same (its bytes are never read); a truncated one
    is refused before any tracing."""
    data = resnet_external.with_name("resnet50.onnx.data")
    blank = tmp_path / "resnet50.onnx"
    shutil.copy(resnet_external, blank)
    (tmp_path / data.name).write_bytes(b"\0" * data.stat().st_size)
    same = afford.assess(blank, infer_samples=1)
    assert same.forward_flops == afford.assess(resnet_spec, infer_samples=1).forward_flops
    assert same.trace.params == 25_557_032
    (tmp_path / data.name).write_bytes(b"\0" * 1000)
    with pytest.raises(ConfigError, match="truncated"):
        resolve(blank)


def test_newer_opset_ops_compute_what_onnxruntime_computes(tmp_path: Path) -> None:
    """Ops onnx2torch lacks or gets wrong at opsets 18-20 (Gelu-20, ReduceMean-18 with axes as an input,
    Reshape allowzero=1 as torch.export writes it, Flatten at axis = rank, Identity-19 through its unchanged
    schema): the converted module's real output equals onnxruntime's, and the meta trace runs."""
    import numpy as np
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Gelu", ["x"], ["g"]),
             helper.make_node("ReduceMean", ["g", "axes"], ["r"], keepdims=1),
             helper.make_node("Flatten", ["r"], ["f"], axis=3),
             helper.make_node("Reshape", ["f", "shape"], ["s"], allowzero=1),
             helper.make_node("Identity", ["s"], ["y"])]
    inits = [numpy_helper.from_array(np.array([2], dtype=np.int64), "axes"),
             numpy_helper.from_array(np.array([-1, 2], dtype=np.int64), "shape")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "opset20.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    expected = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    spec = resolve(path)
    got = spec.build(torch.float32, Dims(), device="cpu")(torch.from_numpy(x))
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert afford.assess(path, infer_samples=1, batch_size=2).forward_flops == 0  # no matmul: 0 FLOPs


def test_bert_base_forward_flops_match_the_torch_module(bert: tuple[Any, Path]) -> None:
    spec, path = bert
    from_onnx = afford.assess(path, infer_samples=1, batch_size=2, seq_len=128)
    from_torch = afford.assess(spec, infer_samples=1, batch_size=2, seq_len=128)
    assert from_onnx.dims.seq_len == 128 and from_onnx.trace.batch_size == 2
    assert _within(from_onnx.forward_flops, from_torch.forward_flops)
    # hand check of the matmul FLOPs per 128-token sample (h=768, ff=3072, L=12, vocab 30522), 2 per MAC:
    # per layer 2*S*(4*h*h + 2*h*ff) projections + 2*2*S*S*h attention; head 2*S*(h*h + h*vocab)
    s, h, ff, layers, vocab = 128, 768, 3072, 12, 30522
    hand = layers * (2 * s * (4 * h * h + 2 * h * ff) + 4 * s * s * h) + 2 * s * (h * h + h * vocab)
    assert _within(from_onnx.forward_flops, hand, 0.001)


def test_bert_inputs_are_int64_tokens_with_workload_dims(bert: tuple[Any, Path]) -> None:
    spec = resolve(bert[1])
    assert spec.kind is ModelKind.ENCODER and spec.kind.uses_tokens
    assert spec.default_seq_len == onnx_source.DEFAULT_SEQ and spec.max_seq_len is None
    assert spec.metadata["inference_only"] == "an ONNX graph holds the inference graph only"
    args = spec.make_inputs(3, Dims(seq_len=40), False)["_args"]
    assert [tuple(a.shape) for a in args] == [(3, 40)] * 3
    assert all(a.dtype == torch.int64 and a.device.type == "meta" for a in args)


def test_cli_assess_refuses_training_and_truncated_files(resnet: tuple[nn.Module, Path], tmp_path: Path) -> None:
    _, path = resnet
    ok = runner.invoke(app, ["assess", str(path), "--infer-samples", "100"])
    assert ok.exit_code == 0, ok.output
    assert "818 GFLOPs" in ok.output  # 100 samples x 8.18 GFLOPs
    train = runner.invoke(app, ["assess", str(path), "--train-samples", "100"])
    assert train.exit_code == 2
    assert train.output.strip().count("\n") == 0
    assert "an ONNX graph holds the inference graph only" in train.output
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    bad = runner.invoke(app, ["assess", str(cut), "--infer-samples", "1"])
    assert bad.exit_code == 2
    assert bad.output.strip().count("\n") == 0 and "Traceback" not in bad.output
    assert "truncated or corrupt" in bad.output


def _tiny_graph(tmp_path: Path, op: str, domain: str = "", static_batch: bool = False) -> Path:
    """A one-node graph y = op(x) built with onnx.helper (no export needed)."""
    import onnx
    from onnx import TensorProto, helper

    batch: int | str = 1 if static_batch else "batch"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph([helper.make_node(op, ["x"], ["y"], domain=domain)], "g", [x], [y]),
                              opset_imports=opsets)
    path = tmp_path / f"{op}.onnx"
    onnx.save(model, str(path))
    return path


def test_ops_without_a_converter_are_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match=r"com\.example\.FancyOp-1 \(1 node\)"):
        resolve(_tiny_graph(tmp_path, "FancyOp", domain="com.example"))
    with pytest.raises(UnsupportedError, match="Det-17"):
        resolve(_tiny_graph(tmp_path, "Det"))


def test_a_file_cut_at_a_field_boundary_is_refused(resnet: tuple[nn.Module, Path], tmp_path: Path) -> None:
    """Protobuf parses a file cut between fields; the opset (serialised after the graph) is then missing."""
    import onnx

    model = onnx.load(str(_tiny_graph(tmp_path, "Relu")))
    del model.opset_import[:]
    cut = tmp_path / "no_opset.onnx"
    cut.write_bytes(model.SerializeToString())
    with pytest.raises(ConfigError, match="truncated"):
        resolve(cut)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError):
        resolve(empty)


def test_a_fixed_batch_is_kept(tmp_path: Path) -> None:
    path = _tiny_graph(tmp_path, "Relu", static_batch=True)
    spec = resolve(path)
    assert spec.kind is ModelKind.GENERIC
    assert afford.assess(path, infer_samples=1).trace.batch_size == 1
    with pytest.raises(WorkloadError, match="fixes the batch at 1"):
        afford.assess(path, infer_samples=1, batch_size=2)
