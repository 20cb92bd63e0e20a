"""Weight formats (estimate/formats.py): each layout's bytes from its published tensor shapes, what stays in 16
bits, the device checks, and the CLI and JSON surface (`--weights`, `--kv-cache-dtype`, `memory.inference`)."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

import afford
from afford.cli import app
from afford.errors import InputError
from afford.estimate.formats import FORMATS, Param, weight_bytes, weight_format
from afford.hardware.catalog import Catalog

runner = CliRunner()
OUT, IN = 4096, 11008  # a Llama-2-7B up/down projection
LAYER = Param("model.layers.0.mlp.up_proj.weight", (OUT, IN), (IN, OUT), output=False, embedding=False)
HEAD = Param("lm_head.weight", (32000, 4096), (4096, 32000), output=True, embedding=False)
NORM = Param("model.norm.weight", (4096,), None, output=False, embedding=False)


def _bytes(fmt: str, *params: Param) -> float:
    return weight_bytes(list(params), weight_format(fmt)).bytes


def test_gptq_and_awq_are_vllms_tensor_shapes() -> None:
    groups = IN // 128
    qweight = (IN // 8) * OUT * 4  # int32 [in/8, out]
    qzeros = groups * (OUT // 8) * 4  # int32 [in/g, out/8]
    scales = groups * OUT * 2  # fp16 [in/g, out]
    assert _bytes("gptq-4bit", LAYER) == qweight + qzeros + scales + IN * 4  # + g_idx int32 [in]
    assert _bytes("awq-4bit", LAYER) == qweight + qzeros + scales


def test_bits_per_weight_of_the_block_formats() -> None:
    n = OUT * IN
    assert _bytes("nf4", LAYER) * 8 / n == pytest.approx(4.5)  # 4 bits + fp32 absmax per 64
    assert _bytes("nf4-dq", LAYER) * 8 / n == pytest.approx(4.127, abs=1e-3)  # QLoRA's double quantization
    assert _bytes("int8", LAYER) == n + 4 * OUT  # int8 + fp32 row scale (SCB)
    assert _bytes("nvfp4", LAYER) * 8 / n == pytest.approx(4.5, abs=1e-5)  # + two fp32 scales per tensor
    assert _bytes("mxfp4", LAYER) * 8 / n == pytest.approx(4.25)
    assert _bytes("int4-g32", LAYER) * 8 / n == pytest.approx(5.0)  # + bf16 scale and zero per 32
    assert _bytes("int4-g128", LAYER) * 8 / n == pytest.approx(4.25)
    assert _bytes("gguf-q4_0", LAYER) * 8 / n == pytest.approx(4.5)
    assert _bytes("gguf-q8_0", LAYER) * 8 / n == pytest.approx(8.5)
    assert _bytes("gguf-q6_k", LAYER) * 8 / n == pytest.approx(6.5625)


def test_weight_only_formats_keep_the_head_norms_and_embeddings_in_16_bits() -> None:
    for fmt in ("int8", "nf4", "gptq-4bit", "awq-4bit", "fp8"):
        wb = weight_bytes([LAYER, HEAD, NORM], weight_format(fmt))
        assert wb.kept_params == math.prod(HEAD.shape) + 4096
        assert wb.bytes - _bytes(fmt, LAYER) == 2 * wb.kept_params


def test_gguf_quantizes_the_head_in_q6_k_and_keeps_norms_in_f32() -> None:
    wb = weight_bytes([LAYER, HEAD, NORM], weight_format("q4_k_m"), {"num_layers": 1})
    assert wb.by_type == {"F32": 4096, "Q4_K": OUT * IN, "Q6_K": 32000 * 4096}


def test_names_and_refusals() -> None:
    assert weight_format("Q4_K_M").id == "gguf-q4_k_m" and weight_format("AWQ_4bit").id == "awq-4bit"
    assert len(FORMATS) >= 20
    with pytest.raises(InputError, match="unknown weight format 'int3'"):
        weight_format("int3")


def test_memory_inference_in_json_and_device_checks() -> None:
    a = afford.assess("hf:openai-community/gpt2", infer_samples=4, seq_len=32, precision="fp16", weights="nf4",
                      hardware="t4")
    m = a.to_dict()["memory"]["inference"]
    assert m["format"] == "nf4" and m["fits"] is True and m["kv_cache_dtype"] == "fp16"
    assert m["kept_params"] >= 50257 * 768  # the tied embedding is the head: kept in 16 bits
    assert m["weights_bytes"] < a.memory.weights_bytes
    with pytest.raises(InputError, match=r"V100.*FP8"):
        afford.assess("hf:openai-community/gpt2", infer_samples=4, seq_len=32, weights="fp8", hardware="v100-16gb")
    with pytest.raises(InputError, match="FP4"):
        afford.assess("hf:openai-community/gpt2", infer_samples=4, seq_len=32, weights="nvfp4", hardware="a100-80gb")
    assert Catalog.load().get("b200").has_format("fp4")


def test_cli_weights_flag_and_one_line_error() -> None:
    ok = runner.invoke(app, ["assess", "hf:openai-community/gpt2", "--infer-samples", "2", "--seq-len", "16",
                             "--weights", "q8_0", "--kv-cache-dtype", "fp8", "--hardware", "h100-sxm", "--json"])
    assert ok.exit_code == 0, ok.output
    m = json.loads(ok.stdout)["memory"]["inference"]
    assert m["format"] == "gguf-q8_0" and m["kv_cache_dtype"] == "fp8"
    bad = runner.invoke(app, ["assess", "hf:openai-community/gpt2", "--infer-samples", "2", "--weights", "int3"])
    assert bad.exit_code == 2 and "unknown weight format" in bad.output and "Traceback" not in bad.output
    # the terminal summary too (its weight-format row once overwrote the verdict and crashed the render), with and
    # without a budget
    for extra in ([], ["--budget-usd", "1"]):
        shown = runner.invoke(app, ["assess", "hf:openai-community/gpt2", "--infer-samples", "2", "--seq-len", "16",
                                    "--weights", "int8", "--hardware", "a100-80gb", *extra])
        assert shown.exit_code == 0 and "as int8" in shown.output, shown.output


def test_fp4_formats_compute_their_linear_layers_at_the_fp4_peak() -> None:
    """NVFP4 on a Blackwell device: the linear layers' matmuls run at its FP4 peak (attention in bf16), so a
    compute-bound prefill is faster than in FP8; the FLOPs are unchanged."""
    from afford.estimate.timing import compute_format

    assert compute_format("fp4", "mm") == "fp4" and compute_format("fp4", "_grouped_mm") == "fp4"
    assert compute_format("fp4", "_scaled_dot_product_efficient_attention") == "bf16"
    job = dict(task="generate", prompt_tokens=2048, generate_tokens=2, infer_samples=8, batch_size=8,
               precision="bf16", hardware="b200", runtime="cudagraphs")
    fp4 = afford.assess("hf:meta-llama/Llama-3.2-1B", weights="nvfp4", **job).to_dict()
    fp8 = afford.assess("hf:meta-llama/Llama-3.2-1B", weights="fp8", **job).to_dict()
    assert fp4["generate"]["prefill_seconds"] < 0.95 * fp8["generate"]["prefill_seconds"]
    assert fp4["per_sample"]["forward_flops"] == fp8["per_sample"]["forward_flops"]


def test_gptq_and_awq_take_a_group_size() -> None:
    """`gptq-4bit-g32` is GPTQ's layout with 32 input features per scale and zero; 128 is the plain name; other
    groups are refused."""
    import pytest

    from afford.errors import InputError
    from afford.estimate.formats import _linear_bytes, weight_format

    g32, g128 = weight_format("GPTQ-4bit-g32"), weight_format("gptq-4bit")
    assert (g32.id, g32.group, weight_format("gptq-4bit-g128")) == ("gptq-4bit-g32", 32, g128)
    assert "group 32" in g32.source and weight_format("awq-4bit-g64").group == 64
    fan_in, fan_out = 4096, 4096
    extra = _linear_bytes(g32, fan_in, fan_out) - _linear_bytes(g128, fan_in, fan_out)
    assert extra == (128 - 32) * fan_out * (0.5 + 2)  # 96 more groups of qzeros (4 bits) and scales (fp16) per row
    with pytest.raises(InputError, match="group 32 or 64"):
        weight_format("gptq-4bit-g16")
