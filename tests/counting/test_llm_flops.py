"""Dense decoders against Kaplan et al. 2020 / Hoffmann et al. 2022 (6N + attention), Mixtral's active
parameters, the cached decode step and the KV cache against hand derivations."""

from __future__ import annotations

from typing import Any

import pytest

from afford.counting import analytic


def _matmul_params(a: Any) -> int:
    """Parameters that take part in a matmul per token: all but the input token/position embeddings (a tied
    embedding stays, since it is the LM head)."""
    d = a.to_dict()
    rows = {r["module"]: r["params"] for r in a.module_rows(depth=9)}
    embed = sum(p for m, p in rows.items() if m.endswith((".wte", ".wpe", ".embed_tokens")) and m.count(".") <= 2)
    tied = "gpt2" in d["model"]["name"]
    wte = next((p for m, p in rows.items() if m.endswith(".wte")), 0)
    return d["model"]["params"] - embed + (wte if tied else 0)


@pytest.mark.parametrize(("model", "n_layer", "d_attn", "seq"), [
    ("hf:openai-community/gpt2", 12, 768, 1024),
    ("hf:meta-llama/Llama-2-7b-hf", 32, 4096, 4096),
])
def test_dense_decoder_training_flops_per_token_match_6n_plus_attention(
        assessed: Any, model: str, n_layer: int, d_attn: int, seq: int) -> None:
    a = assessed(model, seq_len=seq, precision="bf16-mixed", train_tokens=10**9)
    n = _matmul_params(a)
    per_token = a.to_dict()["per_token"]
    full = analytic.chinchilla_train_flops_per_token(n, n_layer, seq, d_attn)
    useful = analytic.kaplan_train_flops_per_token(n, n_layer, seq, d_attn)
    assert per_token["train_flops"] == pytest.approx(full, rel=0.05)
    assert per_token["train_flops_useful"] == pytest.approx(useful, rel=0.05)
    # C_train = N x (C_fwd + C_bwd), with N samples = tokens / seq_len
    d = a.to_dict()
    assert d["compute"]["train_samples"] == -(-10**9 // seq)
    assert d["compute"]["train_flops"] == pytest.approx(
        d["compute"]["train_samples"] * (d["per_sample"]["train_forward_flops"] + d["per_sample"]["backward_flops"]))


def test_mixtral_counts_two_routed_experts_per_token(assessed: Any) -> None:
    # Mistral AI, "Mixtral of experts" (2023-12-11): 46.7B total, 12.9B used per token (2 of 8 experts).
    seq = 512
    a = assessed("hf:mistralai/Mixtral-8x7B-v0.1", seq_len=seq, precision="bf16")
    d = a.to_dict()
    assert d["model"]["params"] == 46_702_792_704
    expected = analytic.forward_flops_per_token(12_900_000_000, 32, seq, 4096, causal_half=False)
    assert d["per_token"]["forward_flops"] == pytest.approx(expected, rel=0.05)
    assert "_grouped_mm" in d["coverage"]["counted_ops"]


def test_gpt2_decode_step_and_kv_cache_match_hand_derivation(assessed: Any) -> None:
    ctx = 512
    a = assessed("hf:openai-community/gpt2", seq_len=ctx, precision="fp32")
    d = a.to_dict()
    L, h, V = 12, 768, 50257
    # per layer: qkv 3h^2, proj h^2, mlp 8h^2 (2 FLOPs each); the new token attends over a context of ctx
    # positions (ctx - 1 cached + itself): QK^T and AV, 2 x 2 x h x ctx
    per_layer = 2 * 12 * h * h + 4 * h * ctx
    expected = L * per_layer + 2 * h * V
    assert d["decode"]["flops_per_token"] == expected
    # KV cache: keys and values, every layer, every position, fp32
    assert d["memory"]["kv_cache_bytes"] == 2 * L * ctx * h * 4
    assert d["decode"]["context_tokens"] == ctx


def test_gqa_kv_cache_uses_kv_heads(assessed: Any) -> None:
    a = assessed("hf:meta-llama/Llama-2-70b-hf", seq_len=256, precision="bf16")
    # 80 layers, 8 KV heads of 128, keys and values, 2 bytes
    assert a.to_dict()["memory"]["kv_cache_bytes"] == 2 * 80 * 8 * 128 * 256 * 2
    calls = a.trace.infer.attention
    assert calls and all(c.q_heads == 64 and c.kv_heads == 8 for c in calls)


def test_sliding_window_traced_and_useful_flops(assessed: Any) -> None:
    # Mistral 7B v0.1: sliding_window 4096 on every layer; at 8192 tokens the mask keeps fewer entries than causal
    a = assessed("hf:mistralai/Mistral-7B-v0.1", seq_len=8192, precision="bf16", allow_longer=True)
    calls = a.trace.infer.attention
    assert all(c.window == 4096 and c.causal for c in calls)
    causal_only = (8192 + 1) / (2 * 8192)
    assert calls[0].useful_fraction < causal_only
    # Gemma 2 alternates sliding (4096) and global layers (its config's layer_types)
    from afford.sources import resolve

    spec = resolve("hf:google/gemma-2-2b")
    windows = [spec.window_for(f"Gemma2ForCausalLM.model.layers.{i}.self_attn") for i in range(4)]
    assert windows == [4096, None, 4096, None]
