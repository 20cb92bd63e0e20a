"""Diffusion models by name (`diffusers:NAME`): Stable Diffusion 1.5, SDXL base and DiT-XL/2, built from bundled
config.json files on the meta device.

The built module is the whole pipeline (docs/diffusion.md): in eval mode its forward generates one batch of images
(text encoder once, `steps` denoiser evaluations, doubled in batch by classifier-free guidance, one VAE decode); in
train mode it runs one noise-prediction step (frozen VAE encoder and text encoder in no-grad, one denoiser
forward at a random timestep, MSE against the noise). The sampler's steps are counted through
`afford.counting.engine.repeated`: traced once, scaled by `steps` (they share weights and shapes), run `steps`
times for real on a device.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from afford.counting.engine import repeated
from afford.errors import UnknownModelError, WorkloadError
from afford.extras import require
from afford.sources.base import Dims, ModelKind, ModelSpec
from afford.sources.building import build_on_meta
from afford.sources.names import closest, shorten
from afford.sources.options import take

CONFIG_DIR = Path(__file__).with_name("diffusers_configs")
LATENT_FACTOR = 8  # the SD VAE downsamples by 2^(4 blocks - 1) = 8 (vae/config.json: four down blocks)
TEXT_TOKENS = 77  # CLIP text encoders take 77 positions (text_encoder/config.json max_position_embeddings)
TRAIN_TIMESTEPS = 1000  # scheduler_config.json num_train_timesteps (SD 1.5, SDXL); DiT trains with T = 1000
NULL_CLASS = 1000  # DiT's unconditional class id (diffusers DiTPipeline: class_null = 1000)
SDXL_TIME_IDS = 6  # SDXL micro-conditioning: original size, crop top-left, target size (Podell et al. 2023, sec. 2.2)
# guidance scales only weight the two halves of the batch; these are the pipelines' defaults (configs' `defaults`)
GUIDANCE_SCALE = {"stable-diffusion": 7.5, "stable-diffusion-xl": 5.0, "dit": 4.0}


@cache
def catalog() -> dict[str, dict[str, Any]]:
    """The bundled pipelines by canonical name (file stem), each its config.json facts with their sources."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(CONFIG_DIR.glob("*.json"))}


def list_names() -> list[str]:
    return sorted(catalog())


def _lookup(name: str) -> tuple[str, dict[str, Any]]:
    key = name.strip().lower()
    for stem, entry in catalog().items():
        if key == stem.lower() or key in (a.lower() for a in entry.get("aliases", ())):
            return stem, entry
    pool = list_names() + [a for e in catalog().values() for a in e.get("aliases", ())]
    raise UnknownModelError(f"unknown diffusers model {shorten(name)!r}; known: {', '.join(list_names())}; closest: "
                            f"{', '.join(closest(name, pool, n=3))}")


@dataclass(frozen=True)
class Recipe:
    """How one image is generated and one training step runs, from the options and the config's defaults."""

    family: str
    steps: int
    guidance: bool
    text_encoder: bool
    vae: bool
    negative_prompt_encoded: bool


def _recipe(stem: str, entry: dict[str, Any], options: Mapping[str, Any]) -> Recipe:
    defaults = entry["defaults"]
    family = entry["family"]
    schema: dict[str, tuple[type, Any]] = {"steps": (int, int(defaults["steps"])),
                                           "guidance": (bool, bool(defaults["guidance"])),
                                           "vae": (bool, True)}
    if family != "dit":
        schema["text_encoder"] = (bool, True)
    got = take(options, schema, f"diffusers:{stem}")
    if got["steps"] < 1:
        raise WorkloadError(f"diffusers:{stem}: steps must be 1 or more, got {got['steps']}")
    return Recipe(family=family, steps=got["steps"], guidance=got["guidance"],
                  text_encoder=bool(got.get("text_encoder", False)), vae=got["vae"],
                  negative_prompt_encoded=bool(defaults.get("negative_prompt_encoded", False)))


def _clip(config: dict[str, Any], projection: bool) -> nn.Module:
    require("transformers", extra="diffusers")  # a missing library: one line naming the extra
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(**{k: v for k, v in config.items() if k not in ("architectures", "torch_dtype")})
    cfg._attn_implementation = "sdpa"  # what the GPU runs; routed to the fused kernel while tracing
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)


def _frozen(module: nn.Module) -> nn.Module:
    """The VAE and text encoders stay frozen in the standard objective: only the denoiser trains."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _noisy(latents: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DDPM forward process at a random timestep per sample: sqrt(a_t) x + sqrt(1 - a_t) eps (element-wise)."""
    t = torch.randint(0, TRAIN_TIMESTEPS, (latents.shape[0],), device=latents.device)
    a = torch.rand(latents.shape[0], 1, 1, 1, device=latents.device, dtype=latents.dtype)
    return a.sqrt() * latents + (1 - a).sqrt() * noise, t


class _LatentDiffusion(nn.Module):
    """Shared parts of a latent diffusion pipeline: VAE round trips, the sampler loop and the training step."""

    denoiser_name = "unet"

    def __init__(self, recipe: Recipe, vae: nn.Module | None, scaling: float) -> None:
        super().__init__()
        self.recipe = recipe
        self.vae: Any = _frozen(vae) if vae is not None else None  # diffusers AutoencoderKL (encode/decode)
        self.scaling = scaling

    def _latents(self, sample: torch.Tensor) -> torch.Tensor:
        """Training latents: the frozen VAE encoder's sample x scaling (no grad), or the given latents."""
        if self.vae is None:
            return sample
        with torch.no_grad():
            return self.vae.encode(sample).latent_dist.sample() * self.scaling

    def _initial(self, sample: torch.Tensor) -> torch.Tensor:
        """Sampling starts from Gaussian latents; pixel-space input (a training batch) only gives the shape."""
        if sample.shape[1] == 3:
            b, _, h, w = sample.shape
            return torch.randn(b, 4, h // LATENT_FACTOR, w // LATENT_FACTOR, device=sample.device,
                               dtype=sample.dtype)
        return sample

    def _sample(self, latents: torch.Tensor, cond: Any) -> torch.Tensor:
        """`steps` denoiser evaluations (on [negative, positive] with guidance) and one VAE decode."""
        r = self.recipe
        scale = GUIDANCE_SCALE[r.family]
        with repeated(r.steps) as runs:
            for _ in range(runs):
                x = torch.cat([latents, latents]) if r.guidance else latents
                t = torch.full((x.shape[0],), TRAIN_TIMESTEPS - 1, device=x.device, dtype=torch.long)
                eps = self._denoise(x, t, cond)
                if r.guidance:
                    uncond, text = eps.chunk(2)
                    eps = uncond + scale * (text - uncond)
                latents = latents - 0.02 * eps  # a first-order (DDIM/Euler) update: element-wise
        if self.vae is None:
            return latents
        return self.vae.decode(latents / self.scaling, return_dict=False)[0]

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        raise NotImplementedError


class StableDiffusion(_LatentDiffusion):
    """Stable Diffusion 1.x / XL: CLIP text encoder(s), a conditional U-Net, the KL autoencoder."""

    def __init__(self, recipe: Recipe, entry: dict[str, Any]) -> None:
        require("diffusers")
        from diffusers import AutoencoderKL, UNet2DConditionModel

        vae = AutoencoderKL.from_config(entry["vae"]) if recipe.vae else None
        super().__init__(recipe, vae, float(entry["vae"]["scaling_factor"]))
        self.xl = "text_encoder_2" in entry
        self.unet = UNet2DConditionModel.from_config(entry["unet"])
        self.cross_dim = int(entry["unet"]["cross_attention_dim"])
        self.pooled_dim = int(entry["text_encoder_2"]["projection_dim"]) if self.xl else 0
        self.text_encoder = _frozen(_clip(entry["text_encoder"], False)) if recipe.text_encoder else None
        self.text_encoder_2 = (_frozen(_clip(entry["text_encoder_2"], True))
                               if recipe.text_encoder and self.xl else None)

    def _encode(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Prompt embeddings (B, 77, cross_dim) and, for SDXL, pooled embeddings (B, 1280), as the pipelines
        build them: SD 1.5 the last hidden state, SDXL both encoders' penultimate states concatenated."""
        assert self.text_encoder is not None
        if not self.xl:
            return self.text_encoder(input_ids).last_hidden_state, None
        assert self.text_encoder_2 is not None
        one = self.text_encoder(input_ids, output_hidden_states=True).hidden_states[-2]
        two = self.text_encoder_2(input_ids, output_hidden_states=True)
        return torch.cat([one, two.hidden_states[-2]], dim=-1), two.text_embeds

    def _condition(self, input_ids: torch.Tensor | None, encoder_hidden_states: torch.Tensor | None,
                   text_embeds: torch.Tensor | None, guidance: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.text_encoder is None:
            if encoder_hidden_states is None:
                raise WorkloadError("without the text encoder the pipeline needs encoder_hidden_states")
            emb, pooled = encoder_hidden_states, text_embeds
            if guidance:  # precomputed negative embeddings, same shape
                emb = torch.cat([emb, emb])
                pooled = torch.cat([pooled, pooled]) if pooled is not None else None
            return emb, pooled
        assert input_ids is not None
        if guidance and self.recipe.negative_prompt_encoded:  # SD 1.5 encodes the negative prompt too
            return self._encode(torch.cat([input_ids, input_ids]))
        emb, pooled = self._encode(input_ids)
        if guidance:  # SDXL: force_zeros_for_empty_prompt, zero negative embeddings
            emb = torch.cat([torch.zeros_like(emb), emb])
            pooled = torch.cat([torch.zeros_like(pooled), pooled]) if pooled is not None else None
        return emb, pooled

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        emb, pooled = cond
        extra: dict[str, Any] = {}
        if self.xl:
            time_ids = torch.zeros(x.shape[0], SDXL_TIME_IDS, device=x.device, dtype=x.dtype)
            extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
        return self.unet(x, t, encoder_hidden_states=emb, return_dict=False, **extra)[0]

    def forward(self, sample: torch.Tensor, input_ids: torch.Tensor | None = None,
                encoder_hidden_states: torch.Tensor | None = None,
                text_embeds: torch.Tensor | None = None) -> Any:
        """Train mode: (predicted noise, noise) of one step; eval mode: the generated images."""
        if self.training:
            latents = self._latents(sample)
            with torch.no_grad():
                cond = self._condition(input_ids, encoder_hidden_states, text_embeds, guidance=False)
            noise = torch.randn_like(latents)
            noisy, t = _noisy(latents, noise)
            return self._denoise(noisy, t, cond), noise
        cond = self._condition(input_ids, encoder_hidden_states, text_embeds, guidance=self.recipe.guidance)
        return self._sample(self._initial(sample), cond)


class DiT(_LatentDiffusion):
    """DiT-XL/2: a class-conditional transformer on 2x2 latent patches, the SD KL autoencoder."""

    denoiser_name = "transformer"

    def __init__(self, recipe: Recipe, entry: dict[str, Any], latent_size: int) -> None:
        require("diffusers")
        from diffusers import AutoencoderKL, Transformer2DModel

        vae = AutoencoderKL.from_config(entry["vae"]) if recipe.vae else None
        super().__init__(recipe, vae, float(entry["vae"]["scaling_factor"]))
        # position embeddings are built for the latent grid: sample_size follows the asked image size
        self.transformer = Transformer2DModel.from_config(dict(entry["transformer"], sample_size=latent_size))
        self.latent_channels = int(entry["transformer"]["in_channels"])

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        labels = cond
        out = self.transformer(x, timestep=t, class_labels=labels, return_dict=False)[0]
        return out[:, : self.latent_channels]  # learned-sigma models output [eps, variance] channels

    def forward(self, sample: torch.Tensor, class_labels: torch.Tensor) -> Any:
        """Train mode: (predicted noise, noise) of one step; eval mode: the generated images."""
        if self.training:
            latents = self._latents(sample)
            noise = torch.randn_like(latents)
            noisy, t = _noisy(latents, noise)
            return self._denoise(noisy, t, class_labels), noise
        labels = class_labels
        if self.recipe.guidance:  # the null class for the unconditional half (DiTPipeline)
            labels = torch.cat([class_labels, torch.full_like(class_labels, NULL_CLASS)])
        return self._sample(self._initial(sample), labels)


def noise_loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """The standard epsilon-prediction objective: MSE between the predicted and the added noise."""
    pred, noise = output
    return nn.functional.mse_loss(pred.float(), noise.float())


def _check_size(stem: str, family: str, size: int) -> None:
    multiple = LATENT_FACTOR * (2 if family == "dit" else 1)  # DiT: 2x2 latent patches
    if size <= 0 or size % multiple:
        patches = ", in 2x2 patches" if family == "dit" else ""
        raise WorkloadError(f"diffusers:{stem}: --image-size {size} must be a positive multiple of {multiple} pixels "
                            f"(latents are 1/{LATENT_FACTOR} of the image{patches})")


def _inputs(stem: str, entry: dict[str, Any], recipe: Recipe) -> Any:
    family = entry["family"]

    def make(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
        size = int(dims.image_size or 0)
        _check_size(stem, family, size)
        latent = size // LATENT_FACTOR
        if train and recipe.vae:
            sample = torch.empty(batch, 3, size, size, device="meta")  # training images (pixels)
        else:
            sample = torch.empty(batch, 4, latent, latent, device="meta")  # latents (initial noise or training)
        out: dict[str, Any] = {"_args": (sample,)}
        if family == "dit":
            out["class_labels"] = torch.zeros(batch, dtype=torch.long, device="meta")
        elif recipe.text_encoder:
            out["input_ids"] = torch.zeros(batch, TEXT_TOKENS, dtype=torch.long, device="meta")
        else:
            cross = int(entry["unet"]["cross_attention_dim"])
            out["encoder_hidden_states"] = torch.empty(batch, TEXT_TOKENS, cross, device="meta")
            if "text_encoder_2" in entry:
                out["text_embeds"] = torch.empty(batch, int(entry["text_encoder_2"]["projection_dim"]),
                                                 device="meta")
        return out

    return make


def _metadata(stem: str, entry: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    cfg = " x 2 (classifier-free guidance)" if recipe.guidance else ""
    parts = [f"{recipe.steps} denoiser evaluations{cfg}"]
    if recipe.vae:
        parts.append("one VAE decode")
    if recipe.text_encoder:
        parts.append("the text encoder once")
    frozen = {(True, True): "VAE encoder and text encoder frozen", (True, False): "VAE encoder frozen",
              (False, True): "text encoder frozen, on precomputed latents",
              (False, False): "on precomputed latents"}[(recipe.vae, recipe.text_encoder)]
    return {"id": entry["id"], "source": entry["_source"], "published": entry["published"],
            "pipeline": {"steps": recipe.steps, "guidance": recipe.guidance, "text_encoder": recipe.text_encoder,
                         "vae": recipe.vae, "denoiser": "transformer" if recipe.family == "dit" else "unet"},
            "notes": [f"one sample = one generated image: {' + '.join(parts)}; one training step = one denoiser "
                      f"forward and backward at a random timestep, {frozen} (docs/diffusion.md)"]}


def resolve(name: str, options: Mapping[str, str]) -> ModelSpec:
    """The ModelSpec of `diffusers:NAME`, sized by `--model-option` steps, guidance, text_encoder, vae."""
    stem, entry = _lookup(name)
    recipe = _recipe(stem, entry, options)
    family = entry["family"]
    native = int(entry["vae"]["sample_size"])  # the resolution the pipeline was trained at (vae/config.json)

    def build(dtype: torch.dtype, dims: Dims, device: str = "meta") -> nn.Module:
        size = int(dims.image_size or native)
        _check_size(stem, family, size)
        diffusers_logging = require("diffusers.utils.logging")

        diffusers_logging.set_verbosity_error()  # class-remapping notices are not the user's concern
        if family == "dit":
            return build_on_meta(lambda: DiT(recipe, entry, size // LATENT_FACTOR), dtype, device)
        return build_on_meta(lambda: StableDiffusion(recipe, entry), dtype, device)

    return ModelSpec(name=f"diffusers:{stem}", source="diffusers", kind=ModelKind.IMAGE, build=build,
                     make_inputs=_inputs(stem, entry, recipe), loss=noise_loss, native_image_size=native,
                     causal_for=lambda path: "text_encoder" in path,  # CLIP's text tower is causal
                     metadata=_metadata(stem, entry, recipe))
