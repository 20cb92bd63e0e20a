"""Diffusion models (`diffusers:NAME`): parameter counts against published figures, denoiser FLOPs against the DiT
paper and a hand derivation, and the sampling identity steps x (CFG) x denoiser + VAE decode + text encoder."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from afford.cli import app
from afford.counting.attention import AttentionRouter
from afford.counting.engine import Counter, LiveBytes, repeated
from afford.counting.profile import PhaseProfile
from afford.counting.trace import trace
from afford.errors import InputError, UnknownModelError, WorkloadError
from afford.sources import resolve

runner = CliRunner()


def _profile(fn: Callable[[], Any]) -> PhaseProfile:
    """One no-grad call traced by afford's counter, outside any pipeline."""
    counter = Counter(LiveBytes(set()))
    with torch.no_grad(), counter, AttentionRouter(counter, lambda p: False, lambda p: None):
        counter.start_phase("infer")
        fn()
        return counter.finish_phase()


def _params(module: nn.Module) -> int:
    return sum(int(p.numel()) for p in module.parameters())


def _meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (torch.zeros if dtype == torch.long else torch.empty)(*shape, dtype=dtype, device="meta")


# --- Stable Diffusion 1.5 U-Net: MACs of one forward at 512 px (64 x 64 x 4 latents, 77 text tokens), derived by
# hand from unet/config.json: block_out_channels 320/640/1280/1280, 2 layers per block (3 on the way up, on skip
# concatenations), one transformer (self-attention, cross-attention to 77 x 768, GEGLU feed-forward 4x) after each
# resnet of the three cross-attention levels and in the middle, 1x1 proj_in/proj_out, time embedding 320->1280->1280.
def sd15_unet_macs(latent: int = 64, tokens: int = 77, text_dim: int = 768) -> int:
    temb = 1280

    def conv(h: int, cin: int, cout: int, k: int = 3) -> int:  # output h x h
        return h * h * cin * cout * k * k

    def resnet(h: int, cin: int, cout: int) -> int:  # conv1, time projection, conv2, 1x1 shortcut if widening
        return conv(h, cin, cout) + temb * cout + conv(h, cout, cout) + (conv(h, cin, cout, 1) if cin != cout else 0)

    def transformer(h: int, c: int) -> int:
        n = h * h
        proj = 2 * n * c * c  # proj_in, proj_out (1x1 convolutions)
        self_attn = 4 * n * c * c + 2 * n * n * c  # q, k, v, out; scores and values (n x n)
        cross = 2 * n * c * c + 2 * tokens * text_dim * c + 2 * n * tokens * c  # q, out; k, v of the text; n x 77
        ff = n * c * 8 * c + n * 4 * c * c  # GEGLU c -> 2 x 4c, then 4c -> c
        return proj + self_attn + cross + ff

    total = 320 * 1280 + 1280 * 1280 + conv(latent, 4, 320)  # time MLP, conv_in
    h, c_prev, skips, chans = latent, 320, [320], [320, 640, 1280, 1280]
    for i, c in enumerate(chans):  # down: CrossAttnDown x 3, Down x 1; downsample (stride-2 conv) but the last
        for _ in range(2):
            total += resnet(h, c_prev, c) + (transformer(h, c) if i < 3 else 0)
            c_prev = c
            skips.append(c)
        if i < 3:
            total += conv(h // 2, c, c)
            h //= 2
            skips.append(c)
    total += 2 * resnet(h, 1280, 1280) + transformer(h, 1280)  # mid block
    for i, c in enumerate(reversed(chans)):  # up: Up x 1, CrossAttnUp x 3; upsample (nearest, then conv) but last
        for _ in range(3):
            total += resnet(h, c_prev + skips.pop(), c) + (transformer(h, c) if i > 0 else 0)
            c_prev = c
        if i < 3:
            total += conv(2 * h, c, c)
            h *= 2
    return total + conv(latent, 320, 4)  # conv_out


@pytest.fixture(scope="module")
def sd() -> dict[str, Any]:
    """SD 1.5 as shipped (50 steps, guidance, text encoder, VAE), its parts traced one by one, and the pipeline."""
    spec = resolve("diffusers:stable-diffusion-v1-5")
    dims = spec.dims(None, None)
    module: Any = spec.build(torch.float32, dims)
    unet, vae, text = module.unet, module.vae, module.text_encoder

    def unet_at(b: int) -> int:
        return _profile(lambda: unet(_meta(b, 4, 64, 64), _meta(b, dtype=torch.long),
                                     encoder_hidden_states=_meta(b, 77, 768))).flops

    parts = {"unet1": unet_at(1), "unet2": unet_at(2),
             "decode": _profile(lambda: vae.decode(_meta(1, 4, 64, 64))).flops,
             "encode": _profile(lambda: vae.encode(_meta(1, 3, 512, 512))).flops,
             "text1": _profile(lambda: text(_meta(1, 77, dtype=torch.long))).flops,
             "text2": _profile(lambda: text(_meta(2, 77, dtype=torch.long))).flops}
    traced = trace(spec, module, batch_size=1, dims=dims, dtype=torch.float32)
    return {"spec": spec, "dims": dims, "module": module, "parts": parts, "trace": traced}


def test_sd15_parameter_counts_match_the_published_figures(sd: dict[str, Any]) -> None:
    # CompVis/stable-diffusion README: "With its 860M UNet and 123M text encoder"
    m = sd["module"]
    assert _params(m.unet) == 859_520_964  # diffusers' UNet2DConditionModel from unet/config.json
    assert abs(_params(m.unet) - 860e6) < 0.5e6
    assert abs(_params(m.text_encoder) - 123e6) < 0.5e6
    # only the denoiser trains: the VAE and the text encoder are frozen
    assert sd["trace"].trainable_params == _params(m.unet)
    assert sd["trace"].params == _params(m.unet) + _params(m.vae) + _params(m.text_encoder)
    assert sd["trace"].gradients_bytes == 4 * _params(m.unet)  # fp32 gradients of the U-Net only


def test_sd15_unet_forward_matches_the_hand_derivation(sd: dict[str, Any]) -> None:
    parts = sd["parts"]
    assert parts["unet1"] == 2 * sd15_unet_macs()  # 401,636,720,640 MACs; 2 FLOPs per MAC
    assert parts["unet2"] == 2 * parts["unet1"]  # guidance: one forward on [negative, positive]


def test_sd15_inference_is_steps_times_guided_unet_plus_decode_plus_text(sd: dict[str, Any]) -> None:
    p, t = sd["parts"], sd["trace"]
    # 50 steps x U-Net on the doubled batch + one VAE decode + the text encoder on prompt and negative prompt
    assert t.infer.flops == 50 * p["unet2"] + p["decode"] + p["text2"]
    # every step's attention calls are kept: 16 U-Net transformer blocks x 2 (self, cross) per step
    unet_calls = [a for a in t.infer.attention if ".unet." in a.module]
    assert len(unet_calls) == 50 * 16 * 2 and all(a.batch == 2 for a in unet_calls)


def test_sd15_training_step_is_one_unet_forward_backward_with_frozen_encoders(sd: dict[str, Any]) -> None:
    p, t = sd["parts"], sd["trace"]
    assert t.forward.flops == p["unet1"] + p["encode"] + p["text1"]  # encoders in no-grad, one U-Net forward
    assert t.backward is not None
    # backward of the U-Net only: about twice its forward (input and weight gradients; conv_in has no input grad)
    assert 1.9 < t.backward.flops / p["unet1"] < 2.1


def test_cli_assess_sd15_with_25_steps(sd: dict[str, Any]) -> None:
    result = runner.invoke(app, ["assess", "diffusers:stable-diffusion-v1-5", "--infer-samples", "1000",
                                 "--image-size", "512", "-O", "steps=25", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    p = sd["parts"]
    per_image = 25 * p["unet2"] + p["decode"] + p["text2"]
    assert data["per_sample"]["forward_flops"] == per_image
    assert data["compute"]["infer_flops"] == pytest.approx(1000 * per_image, rel=1e-12)
    assert data["workload"]["image_size"] == 512
    assert data["model"]["trainable_params"] == 859_520_964


@pytest.mark.parametrize("args", [["-O", "stepz=3"], ["-O", "steps=many"], ["--image-size", "500"]])
def test_cli_bad_input_exits_2_with_one_line(args: list[str]) -> None:
    result = runner.invoke(app, ["assess", "diffusers:stable-diffusion-v1-5", "--infer-samples", "10", *args])
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text


def test_resolve_refuses_unknown_names_and_options() -> None:
    with pytest.raises(UnknownModelError, match="stable-diffusion-v1-5"):
        resolve("diffusers:stable-diffusion-v9")
    with pytest.raises(InputError, match="valid options: guidance, steps, vae"):
        resolve("diffusers:DiT-XL-2-256", options={"text_encoder": "false"})  # DiT has no text encoder
    with pytest.raises(WorkloadError):
        resolve("diffusers:sdxl", options={"steps": "0"})


# --- DiT-XL/2 (Peebles & Xie 2023, arXiv:2212.09748) ---------------------------------------------------------------
@pytest.fixture(scope="module")
def dit() -> dict[str, Any]:
    """DiT-XL/2 at 256 px: one denoiser forward (steps=1, no guidance, no VAE) traced through the source."""
    spec = resolve("diffusers:DiT-XL-2-256", options={"steps": "1", "guidance": "false", "vae": "false"})
    dims = spec.dims(None, None)
    module: Any = spec.build(torch.float32, dims)
    return {"module": module, "trace": trace(spec, module, batch_size=1, dims=dims, dtype=torch.float32,
                                             train=False)}


D, T = 1152, 256  # DiT-XL hidden size (Table 1); tokens at 256 px: (256 / 8 / 2)^2
EMBEDDER = (1000 + 1) * D + (256 * D + D) + (D * D + D)  # class table (+ null class), timestep MLP 256 -> D -> D


def test_dit_parameters_match_the_paper(dit: dict[str, Any]) -> None:
    blocks = dit["module"].transformer.transformer_blocks
    assert _params(blocks[0].norm1.emb) == EMBEDDER
    n = _params(dit["module"].transformer)
    assert n == 749_826_464  # diffusers keeps a copy of the timestep/class embedder in each of the 28 blocks
    # the original DiT shares one embedder and keeps its fixed position embedding as a (frozen) parameter:
    # Table 4 gives DiT-XL/2 675M parameters
    original = n - 27 * EMBEDDER + T * D
    assert abs(original - 675e6) < 0.5e6


def test_dit_forward_matches_the_paper_in_macs(dit: dict[str, Any]) -> None:
    macs = dit["trace"].infer.flops // 2
    # by hand, per block: q, k, v, out and the 4x MLP (12 T D^2), scores and values (2 T^2 D), adaLN-Zero
    # modulation (D -> 6D), the block's embedder MLP (256 D + D^2); patch embedding (2x2x4 -> D per token), the
    # output embedder and adaLN (D -> 2D), the output projection (D -> 2 x 2 x 8 per token)
    block = 12 * T * D * D + 2 * T * T * D + 6 * D * D + 256 * D + D * D
    assert macs == 28 * block + T * D * 16 + (256 * D + D * D) + 2 * D * D + T * D * 32
    # Table 4: 118.6 Gflops, counted as multiply-adds (github.com/facebookresearch/DiT/issues/14); diffusers'
    # per-block embedders add 28 x 1.6 M MACs the original does not do: within 0.1%
    assert abs(macs / 118.6e9 - 1) < 1e-3


# --- SDXL base (Podell et al. 2023, arXiv:2307.01952) ---------------------------------------------------------------
def test_sdxl_parameters_and_conditioning() -> None:
    spec = resolve("diffusers:stable-diffusion-xl-base-1.0", options={"steps": "1", "vae": "false"})
    dims = spec.dims(None, 256)
    module: Any = spec.build(torch.float32, dims)
    unet = _params(module.unet)
    assert unet == 2_567_463_684 and 2.55e9 <= unet < 2.65e9  # Table 1: 2.6B U-Net parameters
    text = _params(module.text_encoder) + _params(module.text_encoder_2)
    assert abs(text / 817e6 - 1) < 1e-3  # Table 1: 817M text encoder parameters (CLIP ViT-L + OpenCLIP ViT-bigG)
    traced = trace(spec, module, batch_size=1, dims=dims, dtype=torch.float32, train=False)
    calls = traced.infer.attention
    # force_zeros_for_empty_prompt: each text encoder runs once on the prompt (12 + 32 layers), the U-Net on 2 x batch
    assert len([a for a in calls if "text_encoder" in a.module]) == 12 + 32
    assert all(a.batch == 2 for a in calls if ".unet." in a.module)


# --- the shared mechanism: repeated() counts one traced run as N identical runs ---------------------------------
class _Loop(nn.Module):
    def __init__(self, steps: int, repeat: Callable[[int], Any]) -> None:
        super().__init__()
        self.lin = nn.Linear(32, 32)
        self.steps, self.repeat = steps, repeat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.repeat(self.steps) as runs:
            for _ in range(runs):
                q = self.lin(x).view(1, 2, 8, 16)
                x = x + nn.functional.scaled_dot_product_attention(q, q, q).reshape(x.shape)
        return x


@contextmanager
def _every_step(times: int) -> Iterator[int]:
    yield times


def test_repeated_counts_exactly_what_running_every_step_counts() -> None:
    x = torch.empty(8, 32, device="meta")
    with torch.device("meta"):
        once, loop = _Loop(7, repeated), _Loop(7, _every_step)
    a, b = _profile(lambda: once(x)), _profile(lambda: loop(x))
    assert a.flops == b.flops == 7 * (2 * 8 * 32 * 32 + 4 * 2 * 8 * 8 * 16)  # linear + SDPA (QK^T, AV), by hand
    assert a.bytes_moved == b.bytes_moved and a.events == b.events and a.uncounted == b.uncounted
    assert {k: (v.calls, v.flops, v.bytes) for k, v in a.by_op.items()} == {
        k: (v.calls, v.flops, v.bytes) for k, v in b.by_op.items()}
    assert a.by_module == b.by_module and len(a.attention) == len(b.attention) == 7
    with repeated(7) as runs:  # not tracing (a real run): the caller runs every step
        assert runs == 7
