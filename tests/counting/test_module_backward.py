"""Per-module backward FLOPs: each backward op is credited to the module whose forward op it differentiates.

Hand derivation: a conv or linear layer's backward is its input gradient plus its weight gradient, each as many
MACs as its forward, so 2x forward; a first layer whose input needs no gradient does the weight gradient only
(1x). Before the fix, ModuleTracker credited ResNet-18's layer2.0.downsample with the whole main branch's
backward (719 MFLOPs against a 12.8 MFLOPs forward at batch 2).
"""

from __future__ import annotations

import pytest

from afford.api import assess
from afford.assess import Assessment


@pytest.fixture(scope="module")
def resnet18() -> Assessment:
    return assess("torchvision:resnet18", train_samples=10, batch_size=2, depth=4)


def _rows(a: Assessment) -> dict[str, dict[str, float]]:
    return {r["module"]: r for r in a.module_rows()}


def test_conv_layers_backward_is_twice_forward_and_the_stem_once(resnet18: Assessment) -> None:
    rows = _rows(resnet18)
    assert rows["ResNet.conv1"]["backward_flops"] == rows["ResNet.conv1"]["forward_flops"]
    for name in ("ResNet.layer2.0.downsample.0", "ResNet.layer2.0.conv1", "ResNet.layer3.1.conv2", "ResNet.fc"):
        assert rows[name]["backward_flops"] == 2 * rows[name]["forward_flops"], name
    down = rows["ResNet.layer2.0.downsample"]
    assert down["backward_flops"] == 2 * down["forward_flops"] < 30e6


def test_children_add_up_to_the_whole_backward(resnet18: Assessment) -> None:
    rows = _rows(resnet18)
    top = [r for name, r in rows.items() if r["depth"] == 1]
    assert sum(r["backward_flops"] for r in top) == pytest.approx(resnet18.backward_flops, rel=1e-9)
    assert rows["ResNet"]["backward_flops"] == pytest.approx(resnet18.backward_flops, rel=1e-9)
    block = rows["ResNet.layer2.0"]
    parts = [r for name, r in rows.items() if name.startswith("ResNet.layer2.0.") and r["depth"] == 3]
    assert sum(r["backward_flops"] for r in parts) == pytest.approx(block["backward_flops"], rel=1e-9)


def test_transformer_blocks_are_credited_their_own_backward() -> None:
    a = assess("hf:openai-community/gpt2", train_samples=10, seq_len=64, depth=3)
    rows = _rows(a)
    blocks = [r for name, r in rows.items() if name.count(".") == 3 and ".h." in name]
    assert len(blocks) == 12
    # every block does the same work: identical backward, at most the whole backward / 12
    assert len({r["backward_flops"] for r in blocks}) == 1
    assert blocks[0]["backward_flops"] * 12 < a.backward_flops
    assert 1.9 < blocks[0]["backward_flops"] / blocks[0]["forward_flops"] < 2.6
