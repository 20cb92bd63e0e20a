"""Closed-form transformer FLOP counts, used only to cross-check the trace (never as the engine).

Kaplan et al. 2020, "Scaling Laws for Neural Language Models", Table 1: C_forward = 2N + 2 n_layer n_ctx d_attn
per token, N the non-embedding parameters, with the attention term counting the causal half of QK^T and AV.
Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", Appendix F: both attention matmuls over
the full sequence, 2 x 2 x n_ctx x d_attn per layer per token forward; backward = 2 x forward.
"""

from __future__ import annotations


def kaplan_train_flops_per_token(n_params: int, n_layer: int, n_ctx: int, d_attn: int) -> float:
    """6N + 6 n_layer n_ctx d_attn: forward 2N + 2 n_layer n_ctx d_attn, backward twice that."""
    return 6 * n_params + 6 * n_layer * n_ctx * d_attn


def chinchilla_train_flops_per_token(n_params: int, n_layer: int, n_ctx: int, d_attn: int) -> float:
    """6N + 12 n_layer n_ctx d_attn: the unmasked score and value matmuls (Appendix F), backward 2x forward."""
    return 6 * n_params + 12 * n_layer * n_ctx * d_attn


def forward_flops_per_token(n_params: int, n_layer: int, n_ctx: int, d_attn: int, causal_half: bool) -> float:
    """2N plus the attention matmuls, full (4 n_layer n_ctx d_attn) or causal half (2 n_layer n_ctx d_attn)."""
    return 2 * n_params + (2 if causal_half else 4) * n_layer * n_ctx * d_attn
