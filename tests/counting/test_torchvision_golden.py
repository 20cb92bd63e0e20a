"""Every torchvision classification weights entry: traced forward MACs within 1% of its published `_ops`
(GMACs, torchvision's own figure) at the entry's input size, and parameters equal to its `num_params`.

The whole set traces in about 40 s on a 2-core machine (inference only, one trace per model and size)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchvision.models as tvm

from afford.counting.trace import trace
from afford.sources import torchvision_src
from afford.sources.base import Dims


def _entries(module: Any) -> list[tuple[str, int, Any]]:
    out = []
    for name in tvm.list_models(module=module):
        for w in tvm.get_model_weights(name):
            kw = w.transforms.keywords
            size = kw.get("crop_size") or kw["resize_size"]  # segmentation weights are evaluated resized
            out.append((name, int(size[0] if isinstance(size, (list, tuple)) else size), w))
    return out


SHARDS = 4  # the classification entries are checked in 4 tests, so that test workers can share them


def test_torchvision_ships_over_100_classification_weights_entries() -> None:
    assert len(_entries(tvm)) >= 100  # torchvision 0.29 ships 115 classification weights entries


@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_classification_weights_entry_matches_published_ops_and_params(shard: int) -> None:
    """Shard `shard` of the entries, grouped by model name so that a model's sizes share one shard's cache."""
    names = sorted({name for name, _, _ in _entries(tvm)})
    mine = set(names[shard::SHARDS])
    _check([e for e in _entries(tvm) if e[0] in mine])


def test_segmentation_and_video_weights_entries_match_published_ops_and_params() -> None:
    # video clips are 16 frames, the length torchvision's figures use
    entries = _entries(tvm.segmentation) + _entries(tvm.video)
    assert len(entries) >= 15
    _check(entries)


def _check(entries: list[tuple[str, int, Any]]) -> None:
    cache: dict[tuple[str, int], tuple[int, float]] = {}
    failures = []
    for name, size, weights in entries:
        key = (name, size)
        if key not in cache:
            spec = torchvision_src.resolve(name)
            dims = Dims(image_size=size)
            module = spec.build(torch.float32, dims)
            tr = trace(spec, module, batch_size=1, dims=dims, dtype=torch.float32, train=False)
            cache[key] = (tr.params, tr.infer.macs / 1e9)
        params, gmacs = cache[key]
        published = weights.meta["_ops"]
        if params != weights.meta["num_params"]:
            failures.append(f"{weights}: params {params} != {weights.meta['num_params']}")
        # 1%, or half a unit of the published figure's last decimal when that is coarser (0.04 = 0.035..0.045)
        decimals = len(repr(float(published)).split(".")[1])
        tolerance = max(0.01 * published, 0.5 * 10**-decimals)
        if abs(gmacs - published) > tolerance:
            failures.append(f"{weights}: {gmacs:.4f} GMACs vs published {published}")
    assert not failures, "\n".join(failures)
