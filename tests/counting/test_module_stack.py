"""The counter's module stack (forward hooks only) in place of PyTorch's ModuleTracker.

ModuleTracker hung `register_multi_grad_hook` on every module input that requires grad; a view of a parameter
made under no_grad (timm's `self.latent.expand(B, -1, -1)`, PiT's distillation token) requires grad yet has no
grad_fn, and the hook raised "Expected gradient function to be set" at inference. Hand derivation for the model
below: the query projection runs on 4 latent rows of width 8, 4 x 8 x 8 MACs = 512 FLOPs per sample; its backward
is the weight gradient plus the gradient of its input (the latent is a parameter), as many MACs each: 1024 FLOPs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as module_mod

import afford
from afford.assess import Assessment
from afford.counting.engine import Counter, LiveBytes, ModuleStack


class LatentQuery(nn.Module):
    """A learned latent expanded over the batch and handed to a submodule, as timm's AttentionPoolLatent does."""

    def __init__(self) -> None:
        super().__init__()
        self.latent = nn.Parameter(torch.zeros(1, 4, 8))
        self.q = nn.Linear(8, 8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(self.latent.expand(x.shape[0], -1, -1)).mean(1) + x


def _rows(a: Assessment) -> dict[str, dict[str, float]]:
    return {r["module"]: r for r in a.module_rows()}


def test_parameter_view_made_under_no_grad_traces_and_is_credited_to_its_module() -> None:
    a = afford.assess(LatentQuery(), train_samples=2, infer_samples=2, batch_size=2, depth=3,
                      example_inputs=torch.zeros(1, 8))
    assert a.forward_flops == 2 * 4 * 8 * 8
    rows = _rows(a)
    assert rows["LatentQuery.q"]["forward_flops"] == 2 * 4 * 8 * 8
    assert rows["LatentQuery.q"]["backward_flops"] == 2 * 2 * 4 * 8 * 8
    assert a.backward_flops == 2 * 2 * 4 * 8 * 8


def test_stack_names_modules_and_leaves_no_hook_behind() -> None:
    pre, post = len(module_mod._global_forward_pre_hooks), len(module_mod._global_forward_hooks)
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    seen: list[set[str]] = []
    stack = ModuleStack()
    model[1][0].register_forward_pre_hook(lambda m, i: seen.append(set(stack.parents)))  # after the global one
    with stack, torch.no_grad():
        model(torch.zeros(1, 2))
        assert stack.parents == {"Global"}
        assert not stack.is_bw
    assert seen == [{"Global", "Sequential", "Sequential.1", "Sequential.1.0"}]
    assert (len(module_mod._global_forward_pre_hooks), len(module_mod._global_forward_hooks)) == (pre, post)


def test_counter_uses_the_stack() -> None:
    counter = Counter(LiveBytes(set()))
    assert isinstance(counter.mod_tracker, ModuleStack)
