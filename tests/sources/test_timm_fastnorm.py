"""timm's `fast_norm` model option (timm's benchmark.py/train.py --fast-norm): under autocast timm's own norm layers
normalise in 16 bits instead of fp32 (sources/timm_fastnorm.py); PyTorch's nn.LayerNorm is unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import afford
from afford.counting import autocast
from afford.errors import InputError
from afford.sources import timm_fastnorm


def test_fast_norm_runs_timms_group_norm_in_16_bits_under_autocast() -> None:
    default = afford.assess("timm:resnet50_gn", infer_samples=8, batch_size=8, image_size=64, forward_only=True,
                            precision="fp16-mixed")
    fast = afford.assess("timm:resnet50_gn", infer_samples=8, batch_size=8, image_size=64, forward_only=True,
                         precision="fp16-mixed", model_options={"fast_norm": True})

    def norm(a: Any) -> tuple[int, int]:
        ev = {k: v for k, v in a.trace.infer.events.items() if k[0] == "native_group_norm"}
        return sum(ev.values()), sum(k[2] * v for k, v in ev.items())

    (calls, fp32_bytes), (fast_calls, fast_bytes) = norm(default), norm(fast)
    assert calls == fast_calls > 0
    assert fast_bytes == pytest.approx(fp32_bytes / 2, rel=0.01)  # the same norms, 2 bytes an element instead of 4
    gpu = [a.to_dict()["time"]["infer_batch_breakdown"]["gpu_seconds"] for a in (fast, default)]
    assert gpu[0] < gpu[1]
    assert fast.spec.metadata.get("fast_norm") is True


def test_fast_norm_leaves_pytorchs_layer_norm_and_16_bit_jobs_alone() -> None:
    def events(model: str, fast: bool, precision: str) -> dict[Any, int]:
        return afford.assess(model, infer_samples=2, batch_size=2, forward_only=True, precision=precision,
                             model_options={"fast_norm": fast}).trace.infer.events

    # Swin's norms are torch.nn.LayerNorm: the option changes nothing (timm's ViTs use timm's LayerNorm: it does)
    swin = "timm:swin_tiny_patch4_window7_224"
    assert events(swin, True, "fp16-mixed") == events(swin, False, "fp16-mixed")
    # without autocast timm's fast-norm casts nothing: the 16-bit trace is the same
    assert events("timm:resnet50_gn", True, "fp16") == events("timm:resnet50_gn", False, "fp16")
    with pytest.raises(InputError, match="fast_norm"):
        afford.assess("timm:resnet18", infer_samples=1, model_options={"fast_norm": "maybe"})


def test_off_meta_timms_own_functions_run_and_the_names_are_restored() -> None:
    from timm.layers import GroupNormAct, norm_act

    original = norm_act.fast_group_norm
    layer = timm_fastnorm.constructed(lambda: GroupNormAct(8, num_groups=2))
    x = torch.randn(2, 8, 4, 4)
    with timm_fastnorm.meta_fast_norm():
        assert norm_act.fast_group_norm is not original
        got = layer(x)  # a CPU tensor: timm's own fast_group_norm
    assert norm_act.fast_group_norm is original
    assert torch.allclose(got, torch.relu(torch.nn.functional.group_norm(x, 2, layer.weight, layer.bias)))


def test_the_emulation_pauses_as_autocast_enabled_false_does() -> None:
    x = torch.zeros(2, 8, 4, 4, device="meta", dtype=torch.float16)
    with autocast.autocast(torch.float16):
        assert autocast.current_low() == torch.float16
        assert torch.nn.functional.group_norm(x, 2).dtype == torch.float32  # autocast's fp32 list
        with autocast.paused():
            assert autocast.current_low() is None
            assert torch.nn.functional.group_norm(x, 2).dtype == torch.float16
    assert autocast.current_low() is None
