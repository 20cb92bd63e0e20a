"""torchvision detection models (Faster/Mask/Keypoint R-CNN, RetinaNet, FCOS, SSD, SSDlite) traced on meta.

Their forward has data-dependent steps (score thresholds, non-maximum suppression, samplers, boolean masks,
value checks) that the meta device cannot evaluate. `DetectionRules`, entered around every traced step, gives
each such step a fixed count: every threshold and NMS keeps everything, so the model's own caps decide
(RPN `post_nms_top_n`, `detections_per_img`, `topk_candidates`); samplers take their configured batch; a few
call sites get the count their sampler guarantees. The rule and its reasoning: docs/detection.md.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache, lru_cache
from types import FrameType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from afford.errors import InputError, TraceError
from afford.sources.base import Dims, ModelKind, ModelSpec
from afford.sources.building import build_on_meta
from afford.sources.options import take

aten = torch.ops.aten

# Ground-truth instances per synthetic training image: COCO averages 7.7 instances per image (Lin et al. 2014,
# "Microsoft COCO: Common Objects in Context", ECCV, Section 5), rounded up to 8.
TARGET_BOXES = 8

OPTIONS: dict[str, tuple[type, Any]] = {
    "proposals": (int, None),  # RPN proposals per image at inference (default: the model's post_nms_top_n)
    "detections": (int, None),  # detections per image (default: the model's detections_per_img)
    "boxes": (int, TARGET_BOXES),  # ground-truth boxes per training image
}


def _tvm() -> Any:
    import torchvision.models as tvm

    return tvm


@lru_cache(maxsize=1)
def names() -> frozenset[str]:
    """Every detection model torchvision registers."""
    tvm = _tvm()
    return frozenset(tvm.list_models(module=tvm.detection))


def _meta(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.device.type == "meta"


def _site() -> tuple[str, FrameType | None]:
    """The torchvision function (qualified name) and frame that issued the current op."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename.replace("\\", "/")
        if "/torchvision/" in path:
            return frame.f_code.co_qualname, frame
        frame = frame.f_back
    return "", None


def _positives(heads: Any) -> int:
    """Positive proposals per image the RoI sampler can draw: floor(batch_size_per_image x positive_fraction)."""
    sampler = heads.fg_bg_sampler
    return int(sampler.batch_size_per_image * sampler.positive_fraction)


def _count(mask: torch.Tensor) -> int:
    """How many elements of a meta boolean mask are taken as true, by the call site that asks (the rule in
    docs/detection.md): the sampler's guaranteed count where a sampler decides, else every element."""
    site, frame = _site()
    every = int(mask.numel())
    if frame is None:
        return every
    local = frame.f_locals
    if site == "RoIHeads.subsample":  # the sampled proposals of one image: batch_size_per_image
        return min(every, int(local["self"].fg_bg_sampler.batch_size_per_image))
    if site == "RoIHeads.forward":  # positives of one image for the mask / keypoint head
        return min(every, _positives(local["self"]))
    if site == "fastrcnn_loss" and frame.f_back is not None:  # positives among all sampled proposals
        heads = frame.f_back.f_locals["self"]
        per_image = heads.fg_bg_sampler.batch_size_per_image
        return min(every, max(1, every // per_image) * _positives(heads))
    if site == "RegionProposalNetwork.compute_loss":  # sampled anchors: positives first, then negatives
        sampler = local["self"].fg_bg_sampler
        images = len(local["labels"])
        pos = int(sampler.batch_size_per_image * sampler.positive_fraction)
        first = isinstance(local.get("sampled_pos_inds"), list)  # still the sampler's masks: the positive call
        return min(every, images * (pos if first else sampler.batch_size_per_image - pos))
    if site == "Matcher.set_low_quality_matches_":  # one best prediction per ground-truth box
        return min(every, int(local["match_quality_matrix"].shape[0]))
    if site == "_multiscale_roi_align":  # RoIs spread evenly over the pyramid levels (same cost per RoI)
        total, level_count = int(local["levels"].numel()), len(local["x_filtered"])
        level = int(local["level"])
        return total // level_count + (1 if level < total % level_count else 0)
    return every


def _nonzero(mask: torch.Tensor) -> torch.Tensor:
    return torch.empty((_count(mask), mask.dim()), dtype=torch.long, device=mask.device)


def _read(value: torch.Tensor) -> Any:
    """A value read from a meta tensor (`.item()`, `bool()`): only the reads these models make are answered."""
    site, _ = _site()
    if site in ("GeneralizedRCNN.forward", "RetinaNet.forward", "FCOS.forward", "SSD.forward") and (
            value.dtype == torch.bool):
        return False  # the degenerate-box check on the synthetic targets, which are valid by construction
    if site.endswith(".compute_loss"):
        # the foreground count that divides a loss (`max(1, n)`, `n.item()`): any value costs the same
        return False if value.dtype == torch.bool else 1
    raise TraceError(f"reading a tensor value at {site or 'an unknown site'} has no meta-device rule")


class DetectionRules(TorchDispatchMode):
    """Answers, on meta tensors, the ops whose result depends on values: nonzero (`torch.where(mask)`),
    boolean-mask indexing, value reads and torchvision's nms (keeps every box, best score first)."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is aten.nonzero.default and _meta(args[0]):
            return _nonzero(args[0])
        if func is aten.index.Tensor and _meta(args[0]) and any(
                _meta(i) and i.dtype in (torch.bool, torch.uint8) for i in args[1] if i is not None):
            indices: list[torch.Tensor | None] = []
            for i in args[1]:
                if i is not None and i.dtype in (torch.bool, torch.uint8):
                    indices.extend(_nonzero(i).unbind(1))
                else:
                    indices.append(i)
            return func(args[0], indices)
        if func is aten._local_scalar_dense.default and _meta(args[0]):
            return _read(args[0])
        if getattr(func, "namespace", "") == "torchvision" and func.__name__.startswith("nms") and _meta(args[0]):
            return torch.argsort(args[1], descending=True)
        return func(*args, **kwargs)


def _paste_masks() -> Callable[..., torch.Tensor]:
    def paste(masks: torch.Tensor, boxes: torch.Tensor, img_shape: tuple[int, int], padding: int = 1) -> torch.Tensor:
        """Each mask resized to the largest box the image allows (all of it) and pasted: (N, 1, H, W)."""
        h, w = int(img_shape[0]), int(img_shape[1])
        if masks.shape[0] == 0:
            return masks.new_empty((0, 1, h, w))
        return F.interpolate(F.pad(masks, (padding,) * 4), size=(h, w), mode="bilinear", align_corners=False)

    return paste


def _heatmaps(side: Callable[[], int]) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    def heatmaps_to_keypoints(maps: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """torchvision's per-RoI decoding (upsampling to the box, argmax), every box the whole image. Bilinear
        stands in for bicubic: the same bytes in and out, no FLOP formula for either, and bicubic's meta kernel
        is a Python decomposition that takes about a second a call."""
        n, k, size = int(maps.shape[0]), int(maps.shape[1]), side()
        xy = torch.zeros((n, 3, k), dtype=torch.float32, device=maps.device)
        scores = torch.zeros((n, k), dtype=torch.float32, device=maps.device)
        for i in range(n):
            roi_map = F.interpolate(maps[i][:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
            pos = roi_map.reshape(k, -1).argmax(dim=1)
            x, y = pos % size, torch.div(pos, size, rounding_mode="floor")
            xy[i, 0, :] = x.float() + rois[i, 0]
            xy[i, 1, :] = y.float() + rois[i, 1]
            xy[i, 2, :] = 1
            scores[i, :] = roi_map[torch.arange(k, device=maps.device), y, x]
        return xy.permute(0, 2, 1), scores

    return heatmaps_to_keypoints


@contextmanager
def rules(side: Callable[[], int]) -> Iterator[None]:
    """The fixed-count rule for images of side `side()`: the dispatch rules above, torchvision's batched NMS
    through its coordinate trick (its other path loops over `torch.unique`, which has no meta kernel), and mask
    pasting / keypoint decoding with every box the whole image (their sizes are read from box values)."""
    from torchvision.models.detection import roi_heads, transform
    from torchvision.ops import boxes

    patches = [(boxes, "batched_nms", boxes._batched_nms_coordinate_trick),
               (transform, "paste_masks_in_image", _paste_masks()),
               (roi_heads, "heatmaps_to_keypoints", _heatmaps(side))]
    saved = [(module, attr, getattr(module, attr)) for module, attr, _ in patches]
    for module, attr, value in patches:
        setattr(module, attr, value)
    try:
        with DetectionRules():
            yield
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)


# ---------------------------------------------------------------------------------------------------------------
# building


def _default_weights(name: str) -> Any:
    return _tvm().get_model_weights(name).DEFAULT


@contextmanager
def _offline_weights(state: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Make `weights.get_state_dict()` return `state` (no download): the builder then takes its pretrained
    branch (FrozenBatchNorm2d, torchvision's default trainable backbone layers) with our stand-in values."""
    from torchvision.models._api import WeightsEnum

    original = WeightsEnum.get_state_dict

    def stand_in(self: Any, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return dict(state)

    WeightsEnum.get_state_dict = stand_in
    try:
        yield
    finally:
        WeightsEnum.get_state_dict = original


def _plain(name: str, device: str) -> nn.Module:
    """The architecture without pretrained weights: its state dict stands in for the published one."""
    tvm = _tvm()
    return build_on_meta(lambda: tvm.get_model(name, weights=None, weights_backbone=None), torch.float32, device)


@cache
def _native(name: str) -> tuple[int, int | None, int | None]:
    """(image side the transform resizes to, proposals per image at inference, detections per image)."""
    model: Any = _plain(name, "meta")  # torchvision's detector classes: attributes read by name
    t = model.transform
    side = int(t.fixed_size[0]) if t.fixed_size else int(t.min_size[-1])  # evaluation uses the last min_size
    rpn = getattr(model, "rpn", None)
    proposals = int(rpn._post_nms_top_n["testing"]) if rpn is not None else None
    holder = getattr(model, "roi_heads", model)
    detections = getattr(holder, "detections_per_img", None)
    return side, proposals, int(detections) if detections is not None else None


def build(name: str, dtype: torch.dtype, size: int, proposals: int | None, detections: int | None,
          device: str = "meta") -> nn.Module:
    """The model as fine-tuned from its published weights, its transform set to `size` x `size` images (so the
    traced image is the resized one) and its caps set to the given counts."""
    tvm = _tvm()
    weights = _default_weights(name)
    state = _plain(name, device).state_dict()
    with _offline_weights(state):
        model: Any = build_on_meta(lambda: tvm.get_model(name, weights=weights), dtype, device)
    t = model.transform
    t.min_size = (size,)
    t.max_size = max(int(t.max_size), size)
    if t.fixed_size:
        t.fixed_size = (size, size)
    if proposals is not None:
        model.rpn._post_nms_top_n["testing"] = proposals
    if detections is not None:
        holder = getattr(model, "roi_heads", model)
        holder.detections_per_img = detections
    return model


# ---------------------------------------------------------------------------------------------------------------
# inputs and loss


def _targets(model_kind: str, boxes: int, size: int, keypoints: int) -> dict[str, torch.Tensor]:
    target = {"boxes": torch.empty((boxes, 4), device="meta"),
              "labels": torch.empty((boxes,), dtype=torch.int64, device="meta")}
    if model_kind == "mask":
        target["masks"] = torch.empty((boxes, size, size), dtype=torch.uint8, device="meta")
    if model_kind == "keypoint":
        target["keypoints"] = torch.empty((boxes, keypoints, 3), device="meta")
    return target


def detection_loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """The training loss torchvision's reference recipe backpropagates: the sum of the returned loss dict."""
    if not isinstance(output, dict) or not output:
        raise TraceError("a detection model in training mode returned no loss dict")
    values = list(output.values())
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def resolve(name: str, options: Mapping[str, Any] | None = None) -> ModelSpec:
    """The ModelSpec of torchvision detection model `name` (options: proposals, detections, boxes)."""
    opts = take(options, OPTIONS, f"torchvision:{name}")
    side, default_proposals, default_detections = _native(name)
    if opts["proposals"] is not None and default_proposals is None:
        raise InputError(f"torchvision:{name} is a single-stage detector: it has no proposals option")
    for key in ("proposals", "detections", "boxes"):
        if opts[key] is not None and opts[key] < (1 if key == "boxes" else 0):
            raise InputError(f"torchvision:{name}: option {key}={opts[key]} must be "
                             f"{'at least 1' if key == 'boxes' else 'zero or more'}")
    kind = "mask" if "maskrcnn" in name else "keypoint" if "keypointrcnn" in name else "box"
    keypoints = 17  # COCO person keypoints, the published keypoint weights' num_keypoints

    current = {"size": side}  # the image side being traced, for keypoint decoding's whole-image boxes

    def build_fn(dtype: torch.dtype, dims: Dims, device: str = "meta") -> nn.Module:
        current["size"] = dims.image_size or side
        return build(name, dtype, dims.image_size or side, opts["proposals"], opts["detections"], device)

    def make_inputs(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
        size = current["size"] = dims.image_size or side
        images = tuple(torch.empty((3, size, size), device="meta") for _ in range(batch))
        if not train:
            return {"_args": (images,)}
        targets = [_targets(kind, opts["boxes"], size, keypoints) for _ in range(batch)]
        return {"_args": (images, targets)}

    def context() -> Any:
        return rules(lambda: current["size"])

    spec = ModelSpec(name=f"torchvision:{name}", source="torchvision", kind=ModelKind.IMAGE, build=build_fn,
                     make_inputs=make_inputs, loss=detection_loss, native_image_size=side, context=context)
    weights = _default_weights(name)
    spec.metadata = {
        "weights": str(weights), "published_params": weights.meta.get("num_params"),
        "published_gflops": weights.meta.get("_ops"), "source": weights.meta.get("recipe"),
        "counts": {"proposals": opts["proposals"] if opts["proposals"] is not None else default_proposals,
                   "detections": opts["detections"] if opts["detections"] is not None else default_detections,
                   "boxes": opts["boxes"]},
        # `afford measure` feeds random tensors; detectors need valid per-image box/label targets and real scores
        "not_measurable": "detectors need real images with valid box targets; afford measure feeds random "
                          "tensors (measure a classification backbone instead)",
    }
    counts = spec.metadata["counts"]
    kept = (f"{counts['proposals']} proposals and " if counts["proposals"] is not None else "") + (
        f"{counts['detections']} detections per image")
    spec.metadata["notes"] = [
        f"data-dependent steps at fixed counts: thresholds and NMS keep everything up to the model's caps "
        f"({kept}), the worst case; training uses {opts['boxes']} synthetic boxes per image; "
        f"-O proposals=N / -O detections=N set them (docs/detection.md)"]
    for dataset, values in weights.meta.get("_metrics", {}).items():
        if "box_map" in values:  # not "accuracy": reports read that as top-1
            spec.metadata["box_map"] = {"dataset": dataset, "value": float(values["box_map"])}
            break
    return spec
