"""torchvision detection models traced on meta under the fixed-count rule (docs/detection.md): every published
GFLOPS figure and parameter count of torchvision's detection weights, hand-derived head costs at the counts, a
training step against Detectron2's measured memory, the CLI; plus RAFT and a segmentation model."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import afford
from afford.cli import app
from afford.counting.profile import Trace
from afford.counting.trace import trace
from afford.errors import InputError
from afford.sources import detection, resolve
from afford.sources.base import Dims, ModelSpec

# Every weights entry of every torchvision detection model, with the counts its published `_ops` implies.
# torchvision measured each on one 800 x 800 image (the transform's resize of its input; 300 / 320 px for
# SSD / SSDlite / the 320 model) with its pretrained weights, so how many boxes cleared the score thresholds was
# whatever those weights produced; each count below is the only integer that reproduces the figure, and each
# is 0 or the model's cap (docs/detection.md, "What torchvision measured").
PUBLISHED: list[tuple[str, str, dict[str, int]]] = [
    ("fasterrcnn_resnet50_fpn", "COCO_V1", {}),  # 1000 proposals: the cap
    ("fasterrcnn_resnet50_fpn_v2", "COCO_V1", {}),
    ("fasterrcnn_mobilenet_v3_large_fpn", "COCO_V1", {"proposals": 0}),  # RPN score threshold 0.05 kept none
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "COCO_V1", {"proposals": 0}),
    ("retinanet_resnet50_fpn", "COCO_V1", {}),  # single-stage: nothing runs after NMS
    ("retinanet_resnet50_fpn_v2", "COCO_V1", {}),
    ("fcos_resnet50_fpn", "COCO_V1", {}),
    ("ssd300_vgg16", "COCO_V1", {}),
    ("ssdlite320_mobilenet_v3_large", "COCO_V1", {}),
    ("maskrcnn_resnet50_fpn", "COCO_V1", {"detections": 0}),  # no detection cleared 0.05: no mask head
    ("maskrcnn_resnet50_fpn_v2", "COCO_V1", {}),  # 100 detections: the cap
    ("keypointrcnn_resnet50_fpn", "COCO_V1", {"detections": 1}),
    ("keypointrcnn_resnet50_fpn", "COCO_LEGACY", {"detections": 0}),
]
# the published figures are rounded to 3 decimals (GMACs, which torchvision labels GFLOPS)
TOLERANCE_GMACS = 0.0005 + 1e-9


def _trace(spec: ModelSpec, size: int | None = None, batch: int = 1, train: bool = False) -> Trace:
    dims = spec.dims(None, size)
    return trace(spec, spec.build(torch.float32, dims), batch_size=batch, dims=dims, dtype=torch.float32,
                 train=train, infer=not train)


@pytest.fixture(scope="module")
def traced() -> dict[tuple[str, str], tuple[ModelSpec, Trace]]:
    """Each published entry traced once (inference, one image at the model's native size)."""
    out = {}
    for name, member, counts in PUBLISHED:
        spec = resolve(f"torchvision:{name}", options=counts)
        out[(name, member)] = (spec, _trace(spec))
    return out


def _published(name: str, member: str) -> dict[str, Any]:
    import torchvision.models as tvm

    return dict(getattr(tvm.get_model_weights(name), member).meta)


def test_every_detection_weights_entry_is_compared() -> None:
    import torchvision.models as tvm

    listed = {(n, m) for n, m, _ in PUBLISHED}
    every = {(n, w.name) for n in detection.names() for w in tvm.get_model_weights(n)}
    assert listed == every


@pytest.mark.parametrize(("name", "member", "counts"), PUBLISHED, ids=[f"{n}.{m}" for n, m, _ in PUBLISHED])
def test_forward_flops_and_params_match_torchvision(traced: dict[tuple[str, str], tuple[ModelSpec, Trace]],
                                                    name: str, member: str, counts: dict[str, int]) -> None:
    tr = traced[(name, member)][1]
    meta = _published(name, member)
    assert tr.params == meta["num_params"]
    ours = tr.infer.flops / 2 / 1e9
    assert abs(ours - meta["_ops"]) <= TOLERANCE_GMACS, (name, member, ours, meta["_ops"])


def test_default_counts_are_the_models_caps() -> None:
    """torchvision's FasterRCNN defaults: rpn_post_nms_top_n_test=1000, box_detections_per_img=100; the 320
    model lowers the proposals to 150; RetinaNet keeps 300 detections, SSD300 200 (their constructors)."""
    assert resolve("torchvision:fasterrcnn_resnet50_fpn").metadata["counts"] == {
        "proposals": 1000, "detections": 100, "boxes": detection.TARGET_BOXES}
    assert resolve("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn").metadata["counts"]["proposals"] == 150
    assert resolve("torchvision:retinanet_resnet50_fpn").metadata["counts"]["detections"] == 300
    assert resolve("torchvision:ssd300_vgg16").metadata["counts"]["detections"] == 200


def test_head_flops_follow_the_counts(traced: dict[tuple[str, str], tuple[ModelSpec, Trace]]) -> None:
    """Per-module FLOPs against a hand derivation (2 FLOPs per multiply-add) at the traced counts."""
    by = traced[("fasterrcnn_resnet50_fpn", "COCO_V1")][1].infer.by_module
    # TwoMLPHead on 1000 proposals: 7x7x256 -> 1024 -> 1024; predictor 1024 -> 91 classes + 4 x 91 box deltas
    assert by["FasterRCNN.roi_heads.box_head"] == 2 * 1000 * (7 * 7 * 256 * 1024 + 1024 * 1024)
    assert by["FasterRCNN.roi_heads.box_predictor"] == 2 * 1000 * 1024 * (91 + 4 * 91)
    # Mask R-CNN v2 at its cap of 100 detections: four 3x3 256 -> 256 convolutions on 14 x 14 RoI features
    by = traced[("maskrcnn_resnet50_fpn_v2", "COCO_V1")][1].infer.by_module
    assert by["MaskRCNN.roi_heads.mask_head"] == 2 * 100 * 4 * (256 * 256 * 9 * 14 * 14)
    # Keypoint R-CNN at one detection: 3x3 convs 256 -> 512 then 7 x 512 -> 512 on 14 x 14; the predictor is a
    # 4x4 stride-2 transposed convolution 512 -> 17 keypoints, 4 x 4 x 512 multiply-adds per input pixel and map
    by = traced[("keypointrcnn_resnet50_fpn", "COCO_V1")][1].infer.by_module
    assert by["KeypointRCNN.roi_heads.keypoint_head"] == 2 * 196 * 9 * (256 * 512 + 7 * 512 * 512)
    assert by["KeypointRCNN.roi_heads.keypoint_predictor"] == 2 * 196 * 512 * 17 * 4 * 4
    # no proposals, no box head
    by = traced[("fasterrcnn_mobilenet_v3_large_320_fpn", "COCO_V1")][1].infer.by_module
    assert by.get("FasterRCNN.roi_heads.box_head", 0) == 0


def test_image_size_sets_the_resized_image() -> None:
    """--image-size 256: the first convolution (3 -> 16, 3x3, stride 2) sees 256 px, so 128 x 128 outputs."""
    spec = resolve("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", options={"proposals": 0})
    by = _trace(spec, size=256).infer.by_module
    assert by["FasterRCNN.backbone.body.0.0"] == 2 * 16 * 3 * 9 * 128 * 128


# Detectron2 MODEL_ZOO.md (github.com/facebookresearch/detectron2, "COCO Object Detection Baselines"): training
# memory of R50-FPN Faster R-CNN 3.0 GB and RetinaNet 3.9 GB, 2 images per V100 (16 over 8 GPUs), SGD with
# momentum, COCO images resized to a short side of 640-800 (long side <= 1333), about 1.33x our 800 x 800 pixels
# on COCO's typical 4:3 images; their figure is torch.cuda.max_memory_allocated() (detectron2/utils/events.py),
# which also holds cuDNN workspaces and temporaries: our peak must sit below theirs, and above a third of it.
DETECTRON2_TRAIN_MEM = {"fasterrcnn_resnet50_fpn": 3.0e9, "retinanet_resnet50_fpn": 3.9e9}


def _check_training(data: dict[str, Any], name: str, sgd_peak: float) -> None:
    per = data["per_sample"]
    assert per["backward_flops"] > per["train_forward_flops"] > 0
    reference = DETECTRON2_TRAIN_MEM[name]
    assert reference / 3 <= sgd_peak <= reference, (name, sgd_peak / 1e9)
    assert data["memory"]["weights_bytes"] == 4 * _published(name, "COCO_V1")["num_params"]
    assert data["memory"]["activations_bytes"] > 0


def test_cli_assesses_faster_rcnn_training() -> None:
    result = CliRunner().invoke(app, ["assess", "torchvision:fasterrcnn_resnet50_fpn", "--train-samples", "1000",
                                      "--batch-size", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["workload"]["batch_size"] == 2 and data["workload"]["image_size"] == 800
    mem = data["memory"]
    # AdamW keeps two states per trainable parameter, SGD with momentum (Detectron2's optimizer) one
    _check_training(data, "fasterrcnn_resnet50_fpn", mem["train_peak_bytes"] - mem["optimizer_bytes"] / 2)
    # the RoI sampler's 512 proposals per image reach the box head (per-sample module FLOPs)
    rows = {r["module"]: r for r in data["modules"]}
    assert rows["FasterRCNN.roi_heads.box_head"]["forward_flops"] == 2 * 512 * (7 * 7 * 256 * 1024 + 1024 * 1024)
    assert any("1000 proposals and 100 detections" in n for n in data["notes"])
    assert data["compute"]["train_flops"] == pytest.approx(
        1000 * (data["per_sample"]["train_forward_flops"] + data["per_sample"]["backward_flops"]))


def test_retinanet_training_step_traces() -> None:
    a = afford.assess("torchvision:retinanet_resnet50_fpn", train_samples=100, batch_size=2,
                      optimizer="sgd-momentum")
    data = a.to_dict()
    _check_training(data, "retinanet_resnet50_fpn", data["memory"]["train_peak_bytes"])


@pytest.mark.parametrize(("options", "expect"), [
    ({"proposals": 10}, "single-stage detector"),
    ({"detections": -1}, "zero or more"),
    ({"boxes": 0}, "at least 1"),
    ({"anchors": 3}, "valid options: boxes, detections, proposals"),
])
def test_bad_options_are_input_errors(options: dict[str, int], expect: str) -> None:
    with pytest.raises(InputError, match=expect):
        resolve("torchvision:retinanet_resnet50_fpn", options=options)


def test_other_torchvision_models_refuse_options() -> None:
    with pytest.raises(InputError, match="takes no --model-option"):
        resolve("torchvision:resnet18", options={"detections": 1})


def test_raft_matches_torchvision_at_512_px_and_trains() -> None:
    """torchvision's RAFT figure (raft_small 47.655 GFLOPS) is a 512 x 512 frame pair, 12 refinements."""
    spec = resolve("torchvision:raft_small")
    tr = _trace(spec)
    meta = _published("raft_small", "C_T_V2")
    assert tr.params == meta["num_params"]
    assert abs(tr.infer.flops / 2e9 - meta["_ops"]) <= TOLERANCE_GMACS
    small = _trace(spec, size=128, train=True)  # RAFT's smallest input: 1/8-res features halved three times
    assert small.backward is not None and small.backward.flops > small.forward.flops > 0
    with pytest.raises(InputError, match="at least 128"):
        spec.make_inputs(1, Dims(image_size=64), False)


def test_semantic_segmentation_matches_torchvision() -> None:
    """Segmentation already traced before detection did: LR-ASPP at its 520 px evaluation size."""
    spec = resolve("torchvision:lraspp_mobilenet_v3_large")
    tr = _trace(spec)
    meta = _published("lraspp_mobilenet_v3_large", "COCO_WITH_VOC_LABELS_V1")
    assert tr.params == meta["num_params"]
    assert abs(tr.infer.flops / 2e9 - meta["_ops"]) <= TOLERANCE_GMACS
    assert spec.dims(None, None) == Dims(image_size=520)


def test_measure_refuses_detectors_in_one_line() -> None:
    """`afford measure` feeds random tensors, which cannot make valid box targets: a one-line refusal, exit 2."""
    out = CliRunner().invoke(app, ["measure", "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", "--steps", "1"])
    assert out.exit_code == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "cannot run" in out.stderr
