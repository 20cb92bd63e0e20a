"""--task generate: a request is a prefill of P prompt tokens and G - 1 cached decode steps. The closed-form sum
over the steps equals tracing every step (full attention, sliding windows, an encoder-decoder); GPT-2 and
Whisper-small against hand derivations; the CLI's `generate` section; one-line errors."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from afford.cli import app
from afford.counting.generation import affine_weights
from afford.counting.profile import GenerationProfile
from afford.counting.trace import trace
from afford.sources import hf, resolve
from afford.sources.base import Dims

runner = CliRunner()


# ---- the closed form ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("lo", "hi", "window"), [(0, 40, 9), (5, 6, 3), (3, 30, 100), (17, 200, 18),
                                                  (1, 64, 64), (10, 11, 1)])
def test_affine_weights_sum_a_concave_piecewise_affine_function_exactly(lo: int, hi: int, window: int) -> None:
    # a decode step at cache length c: fixed work + full-attention layers reading c + 1 keys + sliding-window
    # layers reading min(c + 1, window) keys (the shape of every traced decode step)
    def f(c: int) -> int:
        return 1000 + 12 * (c + 1) + 7 * min(c + 1, window)

    calls: list[int] = []

    def counted(c: int) -> int:
        calls.append(c)
        return f(c)

    weights = affine_weights(counted, lo, hi)
    assert sum(w * f(c) for c, w in weights.items()) == sum(f(c) for c in range(lo, hi + 1))
    assert len(set(calls)) <= 6  # three points per affine piece, one knee


def _small_spec(hub_id: str, **changes: Any) -> Any:
    """A bundled config with fewer layers (and a small window), so that every step can be traced quickly."""
    entry = hf.catalog()[hub_id]
    config = copy.deepcopy(entry["config"])
    config.update(changes)
    return hf.spec_from_config(config, f"test:{hub_id}", task=entry.get("task"))


def _generation(spec: Any, prompt: int, new: int, every_step: bool,
                dtype: torch.dtype = torch.float32) -> GenerationProfile:
    module = spec.build(dtype, Dims(seq_len=prompt + new))
    traced = trace(spec, module, batch_size=1, dims=Dims(seq_len=prompt + new), dtype=dtype, train=False,
                   infer=False, generate=(prompt, new), every_step=every_step)
    assert traced.generation is not None
    return traced.generation


@pytest.mark.parametrize(("hub_id", "changes", "prompt", "new"), [
    ("openai-community/gpt2", {"n_layer": 2}, 5, 20),  # full attention: one affine piece
    # sliding window of 8 on every layer: per-step FLOPs grow until the cache holds 7 tokens, then stay flat
    ("mistralai/Mistral-7B-v0.1", {"num_hidden_layers": 2, "sliding_window": 8}, 3, 24),
    # Gemma 2: sliding and global layers alternate (layer_types), a knee in the sum of both
    ("google/gemma-2-2b", {"num_hidden_layers": 2, "sliding_window": 8}, 3, 24),
    # encoder-decoder: the encoder once in the prefill, steps with self- and cross-attention caches
    ("google-t5/t5-small", {"num_layers": 2, "num_decoder_layers": 2}, 7, 20),
], ids=["gpt2", "mistral-window", "gemma2-mixed", "t5"])
def test_closed_form_equals_tracing_every_step(hub_id: str, changes: dict[str, Any], prompt: int, new: int) -> None:
    spec = _small_spec(hub_id, **changes)
    every = _generation(spec, prompt, new, every_step=True)
    closed = _generation(spec, prompt, new, every_step=False)
    assert every.traced_steps == new - 1 and every.every_step
    assert closed.traced_steps <= 6 and not closed.every_step
    assert closed.decode_flops == every.decode_flops
    assert closed.decode_flops == sum(p.flops for p, _ in every.steps.values())
    assert closed.prefill.flops == every.prefill.flops
    assert closed.kv_cache_bytes == every.kv_cache_bytes
    assert closed.kv_cache_tokens == every.kv_cache_tokens
    assert closed.peak_live_bytes == every.peak_live_bytes
    # bytes (the time model) share the FLOPs' pieces: exact where they are affine on them, else within 1e-5
    assert closed.decode_bytes == pytest.approx(every.decode_bytes, rel=1e-5)
    if "sliding_window" in changes:  # per-step FLOPs grew while the window filled, then the sliding part is flat
        per_step = [p.flops for _, (p, _) in sorted(every.steps.items())]
        assert per_step[0] < per_step[-1]
        slopes = {b - a for a, b in itertools.pairwise(per_step)}
        assert len(slopes) == 2  # two affine pieces: the knee where the cache reaches the window


# ---- GPT-2 through the CLI, against a hand derivation ------------------------------------------------------

P, G, M = 512, 256, 1000


@pytest.fixture(scope="module")
def gpt2_generate() -> dict[str, Any]:
    result = runner.invoke(app, ["assess", "gpt2", "--task", "generate", "--prompt-tokens", str(P),
                                 "--generate-tokens", str(G), "--infer-samples", str(M), "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_gpt2_generation_flops_match_hand_derivation(gpt2_generate: dict[str, Any]) -> None:
    g = gpt2_generate["generate"]
    L, h, V = 12, 768, 50257  # GPT-2 small: n_layer, n_embd, vocab (its config.json)
    matmul_params = 12 * L * h * h  # per layer: c_attn 3h^2, c_proj h^2, MLP 4h^2 + 4h^2 (biases add no FLOPs)
    # prefill: every prompt token through the matmuls; attention over the full P x P score matrix (as PyTorch
    # counts it: QK^T and AV, 2 x 2 x P x P x h per layer); the LM head for the last position only
    # (transformers' generate passes logits_to_keep=1)
    prefill = P * 2 * matmul_params + 2 * 2 * L * P * P * h + 2 * h * V
    # G - 1 decode steps (the prefill yields the first new token); the step at cache length c attends over
    # c + 1 keys: 2 x non-embedding matmul params + LM head 2 x h x V + attention 2 x 2 x L x (c + 1) x h
    decode = sum(2 * matmul_params + 2 * h * V + 2 * 2 * L * (c + 1) * h for c in range(P, P + G - 1))
    assert g["prefill_flops"] == pytest.approx(prefill, rel=0.01)
    assert g["decode_flops"] == pytest.approx(decode, rel=0.01)
    assert g["flops_per_request"] == pytest.approx(prefill + decode, rel=0.01)
    assert g["decode_steps"] == G - 1 and g["closed_form"] and g["traced_decode_steps"] <= 6
    # C_infer = M x per request, and the estimate times and prices exactly that
    assert gpt2_generate["compute"]["infer_flops"] == pytest.approx(M * g["flops_per_request"])
    assert g["flops_per_generated_token"] == pytest.approx(g["flops_per_request"] / G)
    # the difference from the 2 x N x tokens rule: N = 124.4 M includes the 39.4 M embedding and position
    # parameters, which do no matmul per token (the tied LM head runs once per step, not per prompt token)
    n = gpt2_generate["model"]["params"]
    assert g["approx_2n_flops_per_request"] == 2 * n * (P + G)
    assert g["vs_approx_2n"] == pytest.approx(g["flops_per_request"] / (2 * n * (P + G)) - 1)
    assert -0.2 < g["vs_approx_2n"] < -0.05


def test_gpt2_generation_kv_cache_time_and_cost(gpt2_generate: dict[str, Any]) -> None:
    g, mem = gpt2_generate["generate"], gpt2_generate["memory"]
    # at the end of a request P + G - 1 positions are cached (the last new token is never fed back): keys and
    # values, 12 layers x 768, fp32
    assert g["kv_cache_tokens"] == P + G - 1
    assert g["kv_cache_bytes"] == g["kv_cache_bytes_per_request"] == 2 * 12 * (P + G - 1) * 768 * 4
    assert mem["kv_cache_bytes"] == g["kv_cache_bytes"]
    # the generation peak holds the weights and the whole cache
    assert mem["generate_peak_bytes"] >= mem["weights_bytes"] + g["kv_cache_bytes"]
    assert mem["per_device_bytes"] == mem["generate_peak_bytes"]
    # a request is its prefill plus its decode steps; M requests one after another on one device
    assert g["seconds_per_request"] == pytest.approx(g["prefill_seconds"] + g["decode_seconds"])
    assert g["total_seconds"] == pytest.approx(M * g["seconds_per_request"])
    assert gpt2_generate["time"]["infer_seconds"] == pytest.approx(g["total_seconds"])
    assert g["tokens_per_second"] == pytest.approx(G / g["seconds_per_request"])
    assert g["total_usd"] == pytest.approx(gpt2_generate["cost"]["infer_usd"])
    assert g["decode_seconds"] > g["prefill_seconds"]  # 255 memory-bound steps outweigh one compute-bound pass


# ---- Whisper-small -----------------------------------------------------------------------------------------

def test_whisper_small_generation_matches_hand_derivation() -> None:
    spec = resolve("hf:openai/whisper-small")
    prompt, new = 4, 16  # <|startoftranscript|><|en|><|transcribe|><|notimestamps|>, then 16 tokens
    gen = _generation(spec, prompt, new, every_step=False, dtype=torch.bfloat16)
    L, d, V, S, mels = 12, 768, 51865, 1500, 80  # whisper-small config.json; 30 s of audio = 1500 positions
    encoder = (2 * mels * d * 3 * 2 * S  # conv1: 80 -> 768 channels, kernel 3, 3000 frames
               + 2 * d * d * 3 * S  # conv2: stride 2, 1500 positions
               + L * (S * 2 * 12 * d * d + 2 * 2 * S * S * d))  # attention 4d^2 + MLP 8d^2, scores S x S
    # decoder prefill: self-attention 4d^2, cross q/o 2d^2, MLP 8d^2 per token; the cross keys/values of the
    # encoder output (2d^2 per position, once); scores over P and over S; logits for every prompt position
    decoder = L * (prompt * 2 * 14 * d * d + S * 2 * 2 * d * d + 2 * 2 * prompt * prompt * d + 2 * 2 * prompt * S * d)
    assert gen.prefill.flops == pytest.approx(encoder + decoder + prompt * 2 * d * V, rel=0.01)
    # each step: 14d^2 of matmuls per layer, self-attention over c + 1 keys, cross-attention over S
    step = sum(L * (2 * 14 * d * d + 2 * 2 * (c + 1) * d + 2 * 2 * S * d) + 2 * d * V
               for c in range(prompt, prompt + new - 1))
    assert gen.decode_flops == pytest.approx(step, rel=0.01)
    # the cache: self-attention keys/values of P + G - 1 positions and cross-attention ones of 1500, bf16
    assert gen.kv_cache_bytes == L * 2 * d * 2 * (prompt + new - 1 + S)


# ---- errors ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "expect"), [
    (["torchvision:resnet18", "--prompt-tokens", "8", "--generate-tokens", "8"], "image model"),
    (["hf:google-bert/bert-base-uncased", "--prompt-tokens", "8", "--generate-tokens", "8"], "masked-lm model"),
    (["gpt2", "--prompt-tokens", "1000", "--generate-tokens", "100"], "maximum of 1024 positions"),
    (["hf:openai/whisper-small", "--prompt-tokens", "4", "--generate-tokens", "500"], "maximum of 448"),
    (["gpt2", "--prompt-tokens", "8"], "needs --prompt-tokens P and --generate-tokens G"),
])
def test_generate_errors_are_one_line(args: list[str], expect: str) -> None:
    result = runner.invoke(app, ["assess", *args, "--task", "generate"])
    assert result.exit_code == 2, result.output
    assert expect in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
