"""Keras models (keras:NAME, .keras and .h5 files) counted by the meta-device trace through Keras's torch backend,
checked against hand counts of their own architectures and Keras's published parameter counts."""

from __future__ import annotations

import json
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import afford
from afford.cli import app
from afford.errors import ConfigError, UnknownModelError, UnsupportedError
from afford.sources import keras as keras_source

runner = CliRunner()


def keras_resnet50_macs(size: int = 224) -> int:
    """Multiply-accumulates of Keras's ResNet50 (ResNet v1, keras/src/applications/resnet.py) on one image.

    Stem: ZeroPadding2D(3) + 7x7/2 conv (64) + ZeroPadding2D(1) + 3x3/2 max pool. Four stacks of bottleneck blocks
    (filters 64, 128, 256, 512; 3, 4, 6, 3 blocks); the first block of stacks 2-4 strides by 2 ON ITS FIRST 1x1
    CONV (and on the 1x1 projection shortcut), so its 3x3 conv already runs at the halved size. A conv's MACs are
    out_h * out_w * c_in * c_out * k * k; its bias adds are not multiply-accumulates (PyTorch's convolution formula
    counts none). Head: global average pooling, Dense 2048 -> 1000.
    """
    macs = 0
    side = (size + 2 * 3 - 7) // 2 + 1  # 112
    macs += side * side * 3 * 64 * 7 * 7
    side = (side + 2 * 1 - 3) // 2 + 1  # 56
    c_in = 64
    for filters, blocks, first_stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for block in range(blocks):
            stride = first_stride if block == 0 else 1
            out = (side - 1) // stride + 1  # a 1x1 'valid' conv with this stride
            if block == 0:
                macs += out * out * c_in * 4 * filters  # projection shortcut, 1x1, strided
            macs += out * out * c_in * filters  # 1x1 reduce, strided (v1)
            macs += out * out * filters * filters * 3 * 3  # 3x3, 'same' padding, stride 1
            macs += out * out * filters * 4 * filters  # 1x1 expand
            side, c_in = out, 4 * filters
    return macs + 2048 * 1000


def _cli_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["assess", *args, "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _one_line_error(*args: str) -> str:
    result = runner.invoke(app, ["assess", *args])
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def resnet50() -> dict[str, Any]:
    """`afford assess keras:ResNet50 --train-samples 1000 --infer-samples 100`, end to end through the CLI."""
    return _cli_json("keras:ResNet50", "--train-samples", "1000", "--infer-samples", "100")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small CNN saved as .keras and legacy .h5, a copy naming an unknown layer class, and a truncated copy."""
    keras = keras_source.load_keras()
    folder = tmp_path_factory.mktemp("keras")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(x))
    files = {"keras": folder / "small.keras", "h5": folder / "small.h5"}
    model.save(files["keras"])
    model.save(files["h5"])
    # the same archive with one layer renamed to a class nobody registered
    files["unknown"] = folder / "unknown.keras"
    with zipfile.ZipFile(files["keras"]) as src, zipfile.ZipFile(files["unknown"], "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                data = data.replace(b'"class_name": "Dense"', b'"class_name": "MysteryLayer"')
                assert b"MysteryLayer" in data
            dst.writestr(item, data)
    files["truncated"] = folder / "truncated.keras"
    data = files["keras"].read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    return files


# hand count of the small CNN: conv 3x3, 3 -> 8 channels at 32x32 ('same'); max pool to 16x16; dense 2048 -> 10
SMALL_CONV_MACS = 32 * 32 * 8 * 3 * 3 * 3  # 221,184
SMALL_DENSE_MACS = 16 * 16 * 8 * 10  # 20,480
SMALL_PARAMS = (3 * 3 * 3 * 8 + 8) + (16 * 16 * 8 * 10 + 10)  # 224 + 20,490 = 20,714


def test_resnet50_forward_macs_match_a_hand_count_of_keras_resnet_v1(resnet50: dict[str, Any]) -> None:
    hand = keras_resnet50_macs(224)
    assert hand == 3_857_973_248
    traced = resnet50["per_sample"]["forward_macs"]
    assert abs(traced - hand) / hand < 0.01
    assert resnet50["model"]["native_image_size"] == 224


def test_resnet50_gap_to_torchvision_v1_5_is_the_stride_placement(resnet50: dict[str, Any]) -> None:
    """torchvision's ResNet-50 (v1.5) publishes 4.089 GFLOPS (= GMACs, ResNet50_Weights.IMAGENET1K_V2.meta['_ops']);
    it strides the 3x3 conv instead, so the first 1x1 conv of the 3 downsampling blocks runs at the input side:
    3 x 3/4 x (56*56*256*128) extra MACs (the same for each stack: 28*28*512*256, 14*14*1024*512)."""
    from torchvision.models import ResNet50_Weights

    published = ResNet50_Weights.IMAGENET1K_V2.meta["_ops"] * 1e9
    stride_gap = 3 * (56 * 56 * 256 * 128 - 28 * 28 * 256 * 128)
    assert stride_gap == 231_211_008
    assert abs(published - resnet50["per_sample"]["forward_macs"] - stride_gap) < 0.6e6  # 4.089 is rounded


def test_resnet50_params_and_training_trace(resnet50: dict[str, Any]) -> None:
    # keras.io/api/applications table "Available models": ResNet50 25,636,712 parameters (count_params())
    assert resnet50["model"]["params"] == 25_636_712
    # BatchNorm moving mean/variance are non-trainable weights: 53 BN layers over 26,560 channels, 2 each
    assert resnet50["model"]["trainable_params"] == 25_636_712 - 2 * 26_560
    # every trainable weight gets a gradient (fp32): autograd runs through pooling and all 53 convs
    assert resnet50["memory"]["gradients_bytes"] == 4 * resnet50["model"]["trainable_params"]
    # backward = 2 x forward, less the stem conv's input gradient (the image needs none): 2 x 118,013,952 MACs
    stem = 112 * 112 * 3 * 64 * 7 * 7
    assert resnet50["per_sample"]["backward_flops"] == 2 * 2 * resnet50["per_sample"]["forward_macs"] - 2 * stem
    assert resnet50["compute"]["train_flops"] == 1000 * (resnet50["per_sample"]["forward_flops"]
                                                         + resnet50["per_sample"]["backward_flops"])


@pytest.mark.parametrize(("name", "published"), [
    ("MobileNetV2", 3_538_984),  # keras.io/api/applications table
    ("efficientnetb0", 5_330_571),  # same table; its Dropout seed states are buffers, not weights
])
def test_parameter_counts_equal_keras_published(name: str, published: int) -> None:
    import torch

    spec = keras_source.resolve(name)
    module = spec.build(torch.float32, spec.dims(None, None))
    assert isinstance(module, keras_source.KerasModule)
    assert sum(p.numel() for p in module.parameters()) == published
    assert module._keras_model.count_params() == published
    assert spec.metadata["published_params"] == published


def test_saved_keras_file_via_cli_matches_hand_count(saved: dict[str, Path]) -> None:
    data = _cli_json(str(saved["keras"]), "--train-samples", "10", "--infer-samples", "5")
    assert data["model"]["params"] == SMALL_PARAMS
    assert data["model"]["native_image_size"] == 32
    assert data["per_sample"]["forward_macs"] == SMALL_CONV_MACS + SMALL_DENSE_MACS
    # backward: dense weight and input gradients, conv weight gradient (no input gradient for the image)
    assert data["per_sample"]["backward_macs"] == 2 * SMALL_DENSE_MACS + SMALL_CONV_MACS


def test_legacy_h5_counts_the_same_and_freeze_by_layer_name(saved: dict[str, Path]) -> None:
    a = afford.assess(saved["h5"], train_samples=10, freeze=["conv"])
    assert a.trace.params == SMALL_PARAMS
    assert a.trace.trainable_params == 16 * 16 * 8 * 10 + 10  # only the dense head trains
    assert a.trace.forward.flops == 2 * (SMALL_CONV_MACS + SMALL_DENSE_MACS)


def test_bf16_mixed_traces_in_16_bit(saved: dict[str, Path]) -> None:
    data = _cli_json(str(saved["keras"]), "--train-samples", "10", "--precision", "bf16-mixed")
    assert data["per_sample"]["forward_macs"] == SMALL_CONV_MACS + SMALL_DENSE_MACS
    assert data["memory"]["weights_bytes"] == 2 * SMALL_PARAMS
    assert data["memory"]["master_weights_bytes"] == 4 * SMALL_PARAMS


def test_unknown_layer_class_and_truncated_file_are_one_line_errors(saved: dict[str, Path]) -> None:
    line = _one_line_error(str(saved["unknown"]), "--train-samples", "10")
    assert "MysteryLayer" in line
    line = _one_line_error(str(saved["truncated"]), "--train-samples", "10")
    assert "corrupt or truncated" in line
    with pytest.raises(ConfigError, match="MysteryLayer"):
        keras_source.resolve_path(saved["unknown"])


def test_fixed_input_file_refuses_another_image_size(saved: dict[str, Path]) -> None:
    assert "32 px" in _one_line_error(str(saved["keras"]), "--train-samples", "10", "--image-size", "64")


def test_unknown_name_lists_the_closest_case_insensitively() -> None:
    assert keras_source.resolve("resnet50").name == "keras:ResNet50"
    with pytest.raises(UnknownModelError, match="closest: keras:ResNet50"):
        keras_source.resolve("ResNet5O")


def test_keras_on_another_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(__version__="3.15.1", backend=types.SimpleNamespace(backend=lambda: "jax"))
    monkeypatch.setitem(sys.modules, "keras", fake)
    with pytest.raises(UnsupportedError, match="KERAS_BACKEND=torch"):
        keras_source.resolve("ResNet50")


def test_keras_model_object_is_traced_without_touching_its_weights() -> None:
    keras = keras_source.load_keras()
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="c")(inputs)  # 'valid': 14x14 outputs
    model = keras.Model(inputs, keras.layers.Dense(6, name="d")(keras.layers.GlobalAveragePooling2D()(x)))
    kernel = model.get_layer("c").kernel.value
    before = kernel.detach().clone()
    assert keras_source.is_keras_model(model)
    a = afford.assess(model, train_samples=10)  # the object itself: resolve() sends it to the Keras source
    assert a.spec.source == keras_source.from_model(model).source
    assert a.trace.params == model.count_params() == (3 * 3 * 3 * 4 + 4) + (4 * 6 + 6)
    assert a.trace.forward.flops == 2 * (14 * 14 * 4 * 3 * 3 * 3 + 4 * 6)
    assert model.get_layer("c").kernel.value is kernel and bool((kernel.detach() == before).all())
