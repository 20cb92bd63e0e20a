"""Weight formats for inference: the exact bytes of a model's weights in fp32/fp16/bf16, LLM.int8, NF4, GPTQ, AWQ,
FP8, NVFP4/MXFP4 and GGUF files, from the traced parameters (names, shapes, which are linear layers, which is the
output head).

Each layout is the one the named runtime stores, tensor by tensor (sources on each entry):
- weight-only formats of transformers/vLLM (int8, nf4, gptq, awq, fp8, nvfp4, mxfp4) quantize the linear layers
  but the output head; embeddings, norms, biases and the head stay in 16 bits;
- GGUF files (llama.cpp) quantize every 2-D `*.weight` but norms and position embeddings, with a type per
  tensor chosen by `llama_tensor_get_type` (the "mixtures" Q4_K_M, Q5_K_M...), and keep 1-D tensors in F32.
The figures are checked against published file sizes in tests/golden/test_weight_formats.py.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from afford.errors import InputError

LLAMA_QUANT = ("llama.cpp src/llama-quant.cpp (llama_tensor_get_type, tensor_allows_quantization), "
               "ggml-org/llama.cpp@007dbbf3")
GGML_BLOCKS = "llama.cpp ggml/src/ggml-common.h block structs (ggml-org/llama.cpp@01243c58)"

# ggml types: bytes per block / weights per block (ggml-common.h)
GGML_TYPES: dict[str, tuple[int, int]] = {
    "F32": (4, 1), "F16": (2, 1), "BF16": (2, 1), "Q4_0": (18, 32), "Q4_1": (20, 32), "Q5_0": (22, 32),
    "Q5_1": (24, 32), "Q8_0": (34, 32), "Q2_K": (84, 256), "Q3_K": (110, 256), "Q4_K": (144, 256),
    "Q5_K": (176, 256), "Q6_K": (210, 256)}
# llama_tensor_get_type's fallback when a row length is not a multiple of the block (tensor_type_fallback)
_FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
# a GGUF file type: its default tensor type (llama_ftype_get_default_type)
GGUF_FILES = {"q2_k": "Q2_K", "q3_k_s": "Q3_K", "q3_k_m": "Q3_K", "q3_k_l": "Q3_K", "q4_0": "Q4_0",
              "q4_1": "Q4_1", "q4_k_s": "Q4_K", "q4_k_m": "Q4_K", "q5_0": "Q5_0", "q5_1": "Q5_1",
              "q5_k_s": "Q5_K", "q5_k_m": "Q5_K", "q6_k": "Q6_K", "q8_0": "Q8_0", "f16": "F16", "bf16": "BF16"}


@dataclass(frozen=True)
class WeightFormat:
    """A way of storing a model's weights for inference."""

    id: str
    kind: str  # dense | linear (weight-only, linear layers but the head) | gguf
    bits: float  # nominal bits per quantized weight (before scales)
    group: int = 0  # weights per scale group (0: none)
    device_format: str | None = None  # the catalog format a device must have to run it (fp8, fp4)
    source: str = ""

    @property
    def dense_bytes(self) -> int:
        """Bytes per weight of the tensors a format keeps unquantized (16-bit, or fp32 for fp32)."""
        return 4 if self.id == "fp32" else 2


FORMATS: dict[str, WeightFormat] = {f.id: f for f in (
    WeightFormat("fp32", "dense", 32, source="IEEE 754 binary32"),
    WeightFormat("fp16", "dense", 16, source="IEEE 754 binary16"),
    WeightFormat("bf16", "dense", 16, source="bfloat16 (Google Brain float)"),
    WeightFormat("int8", "linear", 8, source="LLM.int8 (Dettmers et al. 2022), bitsandbytes Int8Params: int8 weight + "
                                             "one fp32 scale per output row (SCB); transformers keeps lm_head"),
    WeightFormat("nf4", "linear", 4, 64, source="bitsandbytes quantize_4bit: 4-bit NF4, blocksize 64, one fp32 absmax "
                                                "per block (transformers' default, no double quantization)"),
    WeightFormat("nf4-dq", "linear", 4, 64, source="bitsandbytes quantize_4bit with compress_statistics (QLoRA double "
                                                   "quantization): 8-bit absmax per 64, fp32 per 256 blocks"),
    WeightFormat("gptq-4bit", "linear", 4, 128, source="GPTQ as vLLM loads it (quantization/gptq.py): qweight int32 "
                                                       "[in/8, out], qzeros int32 [in/g, out/8], scales fp16 "
                                                       "[in/g, out], g_idx int32 [in]; group 128"),
    WeightFormat("awq-4bit", "linear", 4, 128, source="AWQ as vLLM loads it (quantization/awq.py): qweight int32 "
                                                      "[in, out/8], qzeros int32 [in/g, out/8], scales fp16 "
                                                      "[in/g, out]; AutoAWQ's default group 128"),
    WeightFormat("int4-g32", "linear", 4, 32, source="torchao / gpt-fast int4 weight-only (tinygemm, quantize.py "
                                                     "WeightOnlyInt4Linear): packed 4-bit weights, scales_and_zeros "
                                                     "bf16 [in/32, out, 2]"),
    WeightFormat("int4-g128", "linear", 4, 128, source="torchao int4 weight-only as above, group 128 (torchao's "
                                                       "default group size)"),
    WeightFormat("fp8", "linear", 8, device_format="fp8",
                 source="FP8 E4M3 weights with one fp32 scale per tensor (weight_scale, input_scale) as vLLM's "
                        "fp8 checkpoints; the head stays 16-bit"),
    WeightFormat("nvfp4", "linear", 4, 16, device_format="fp4",
                 source="NVFP4: E2M1 values, one E4M3 scale per 16 and one fp32 scale per tensor (NVIDIA)"),
    WeightFormat("mxfp4", "linear", 4, 32, device_format="fp4",
                 source="OCP Microscaling MXFP4: E2M1 values, one E8M0 scale per 32"),
    *(WeightFormat(f"gguf-{name}", "gguf", GGML_TYPES[t][0] * 8 / GGML_TYPES[t][1],
                   source=f"{LLAMA_QUANT}; {GGML_BLOCKS}") for name, t in GGUF_FILES.items()),
)}


# GPTQ and AWQ at another group size than 128: `gptq-4bit-g32`, `awq-4bit-g64` (the layouts above with g scales
# and zeros per g input features; GPTQ's act-order stores g_idx either way, so it does not change the bytes)
_GROUPED = re.compile(r"^(gptq|awq)-4bit-g(32|64|128)$")


def weight_format(name: str) -> WeightFormat:
    """The format named `name` (case-insensitive; `Q4_K_M` and `gguf-q4_k_m` are the same; `gptq-4bit-g32` is GPTQ
    at group 32), or an InputError listing them."""
    raw = str(name).strip().lower()
    gguf = "gguf-" + raw.removeprefix("gguf-").removeprefix("gguf:").replace("-", "_")
    for key in (raw, raw.replace("_", "-"), gguf):
        if key in FORMATS:
            return FORMATS[key]
        if grouped := _GROUPED.match(key):
            base, group = FORMATS[f"{grouped[1]}-4bit"], int(grouped[2])
            if group == base.group:
                return base
            return dataclasses.replace(base, id=key, group=group,
                                       source=base.source.rsplit(";", 1)[0] + f"; group {group}")
    raise InputError(f"unknown weight format {str(name)[:40]!r}; choose one of: {', '.join(FORMATS)} "
                     "(GPTQ and AWQ also at group 32 or 64: gptq-4bit-g32, awq-4bit-g64)")


@dataclass(frozen=True)
class Param:
    """One parameter tensor as a format sees it."""

    name: str
    shape: tuple[int, ...]
    linear: tuple[int, int] | None  # (in_features, out_features) of a linear layer's weight (one expert's)
    output: bool  # the output head (or the token embedding tied to it)
    embedding: bool
    stack: int = 1  # experts in a mixture-of-experts weight stack (experts, out, in): `stack` linear weights

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def params_of(trace: Any) -> list[Param]:
    """The traced parameters with their roles (counting/profile.Trace: param_names, linear_params, output_param).
    A 3-D parameter named as experts (transformers' fused MoE stacks, e.g. Mixtral's `experts.gate_up_proj`
    (experts, out, in)) is a stack of linear weights: the formats quantize it as vLLM, AutoAWQ and llama.cpp do."""
    linear = {i: (fi, fo) for i, fi, fo in trace.linear_params}
    embeddings = set(trace.embedding_params)
    out = []
    for i, (name, (shape, _)) in enumerate(zip(trace.param_names, trace.param_shapes, strict=True)):
        role, stack = linear.get(i), 1
        if role is None and len(shape) == 3 and "expert" in name.lower():
            role, stack = (int(shape[2]), int(shape[1])), int(shape[0])
        out.append(Param(name, tuple(shape), role, i == trace.output_param, i in embeddings, stack))
    return out


@dataclass
class WeightBytes:
    """A model's weights in one format: the total, and how many parameters were quantized or kept."""

    format: str
    bytes: float
    quantized_params: int
    kept_params: int
    by_type: dict[str, int]  # GGUF: parameters per ggml type; others: {"quantized": n, "kept": n}

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "weights_bytes": self.bytes, "quantized_params": self.quantized_params,
                "kept_params": self.kept_params, "params_by_type": self.by_type,
                "source": weight_format(self.format).source}


def weight_bytes(params: list[Param], fmt: WeightFormat, meta: dict[str, Any] | None = None) -> WeightBytes:
    """The bytes of `params` stored in `fmt`. `meta` (the spec's metadata: num_layers, heads, kv heads, the
    parameter count) steers GGUF's per-tensor choices."""
    if fmt.kind == "dense":
        n = sum(p.numel for p in params)
        return WeightBytes(fmt.id, n * fmt.bits / 8, 0, n, {fmt.id: n})
    if fmt.kind == "gguf":
        return _gguf(params, fmt, meta or {})
    total, quantized, kept = 0.0, 0, 0
    for p in params:
        if p.linear is None or p.output:
            total, kept = total + p.numel * fmt.dense_bytes, kept + p.numel
            continue
        total, quantized = total + p.stack * _linear_bytes(fmt, *p.linear), quantized + p.numel
    return WeightBytes(fmt.id, total, quantized, kept, {"quantized": quantized, "kept": kept})


def _linear_bytes(fmt: WeightFormat, fan_in: int, fan_out: int) -> float:
    """One linear weight [out, in] in a weight-only format, with its scales and zeros (see FORMATS' sources)."""
    n = fan_in * fan_out
    groups_in = math.ceil(fan_in / fmt.group) if fmt.group else 0
    match fmt.id:
        case "int8":
            return n + 4 * fan_out
        case "nf4":
            return n / 2 + 4 * math.ceil(n / 64)
        case "nf4-dq":
            blocks = math.ceil(n / 64)
            return n / 2 + blocks + 4 * math.ceil(blocks / 256) + 4
        case "gptq-4bit" | "gptq-4bit-g32" | "gptq-4bit-g64":
            return n / 2 + groups_in * fan_out / 2 + 2 * groups_in * fan_out + 4 * fan_in
        case "awq-4bit" | "awq-4bit-g32" | "awq-4bit-g64":
            return n / 2 + groups_in * fan_out / 2 + 2 * groups_in * fan_out
        case "int4-g32" | "int4-g128":
            return n / 2 + groups_in * fan_out * 4
        case "fp8":
            return n + 8
        case "nvfp4":
            return n / 2 + math.ceil(n / 16) + 8
        case "mxfp4":
            return n / 2 + math.ceil(n / 32)
    raise InputError(f"weight format {fmt.id} has no layout")  # pragma: no cover - every linear format is above


# tensor categories of llama_tensor_get_type, from Hugging Face parameter names (llama, mistral, qwen, gemma,
# phi, gpt-2, gpt-neox, falcon, bloom, opt names)
_CATEGORIES = (
    ("attn_qkv", re.compile(r"(c_attn|query_key_value|qkv_proj|Wqkv)\.weight$")),
    ("attn_v", re.compile(r"(v_proj|\.value)\.weight$")),
    ("attn_k", re.compile(r"(k_proj|\.key)\.weight$")),
    ("attn_q", re.compile(r"(q_proj|\.query)\.weight$")),
    ("attn_output", re.compile(r"(o_proj|out_proj|attn\.c_proj|attention\.dense|self_attention\.dense)\.weight$")),
    ("ffn_down", re.compile(r"(down_proj|mlp\.c_proj|fc2|dense_4h_to_h|\.w2)\.weight$")),
)
_POSITION = re.compile(r"(position|wpe|pos_emb|token_type)", re.I)
_LAYER = re.compile(r"\.(\d+)\.")


def _use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's choice of the layers that get more bits in the _M mixtures."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _gguf_type(p: Param, file: str, base: str, layers: int, gqa: float, big: bool) -> str:
    """The ggml type llama_tensor_get_type gives one tensor of a `file` (q4_k_m...) whose default type is `base`."""
    if p.output:
        return "Q8_0" if base == "Q8_0" else ("Q6_K" if base not in ("F16", "BF16") else base)
    if p.embedding:
        return base
    cat = next((c for c, rx in _CATEGORIES if rx.search(p.name)), "")
    m = _LAYER.search(p.name)
    i = int(m.group(1)) if m else 0
    t = base
    if cat == "attn_v":
        if file == "q2_k":
            t = "Q4_K" if gqa >= 4 else "Q3_K"
        elif file == "q3_k_m":
            t = "Q5_K" if i < 2 else "Q4_K"
        elif file == "q3_k_l":
            t = "Q5_K"
        elif file in ("q4_k_m", "q5_k_m") and _use_more_bits(i, layers):
            t = "Q6_K"
        elif file == "q4_k_s" and i < 4:
            t = "Q5_K"
        if big and t in ("Q3_K", "Q4_K"):  # llama.cpp's 70B rule: attn_v is 8x smaller there, given more bits
            t = "Q5_K"
    elif cat == "ffn_down":
        t = {"q2_k": "Q3_K", "q3_k_l": "Q5_K"}.get(file, base)
        if file == "q3_k_m":
            t = "Q5_K" if i < layers // 16 else "Q4_K"
        elif file in ("q4_k_m", "q5_k_m") and _use_more_bits(i, layers):
            t = "Q6_K"
        elif file == "q4_k_s" and i < layers // 8:
            t = "Q5_K"
    elif cat == "attn_output":
        t = {"q2_k": "Q3_K", "q3_k_m": "Q4_K", "q3_k_l": "Q5_K"}.get(file, base)
    elif cat == "attn_qkv":
        t = {"q3_k_m": "Q4_K", "q3_k_l": "Q4_K", "q4_k_m": "Q5_K", "q5_k_m": "Q6_K"}.get(file, base)
    return t


def _gguf(params: list[Param], fmt: WeightFormat, meta: dict[str, Any]) -> WeightBytes:
    """A GGUF file's tensors: 1-D ones in F32, position embeddings in F16, 2-D weights in their ggml type."""
    file = fmt.id.removeprefix("gguf-")
    base = GGUF_FILES[file]
    layers = int(meta.get("num_layers") or 1)
    heads, kv = meta.get("num_heads"), meta.get("num_kv_heads")
    gqa = float(heads) / float(kv) if heads and kv else 1.0
    big = 60e9 <= float(meta.get("params") or 0) <= 80e9  # llama.cpp's LLM_TYPE_70B
    total, quantized, kept = 0.0, 0, 0
    by_type: dict[str, int] = {}
    for p in params:
        if len(p.shape) < 2 or "norm" in p.name.lower():
            t = "F32"
        elif _POSITION.search(p.name) or not p.name.endswith("weight"):
            t = "F16"
        else:
            t = _gguf_type(p, file, base, layers, gqa, big)
            row = p.linear[0] if p.linear else p.shape[-1]  # ggml's ne[0]: a linear layer's input features
            if row % GGML_TYPES[t][1]:  # rows must fill whole blocks (tensor_type_fallback)
                t = _FALLBACK.get(t, "F16")
                t = t if row % GGML_TYPES[t][1] == 0 else "F16"
        size, block = GGML_TYPES[t]
        total += p.numel / block * size
        by_type[t] = by_type.get(t, 0) + p.numel
        if t in ("F32", "F16", "BF16"):
            kept += p.numel
        else:
            quantized += p.numel
    return WeightBytes(fmt.id, total, quantized, kept, dict(sorted(by_type.items())))


KV_DTYPES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1}
KV_SOURCE = "KV cache in fp8 (E4M3) halves fp16's bytes: vLLM --kv-cache-dtype fp8, TensorRT-LLM FP8 KV cache"


def inference_memory(a: Any, fmt: WeightFormat, kv_dtype: str | None, device: Any, tp: int = 1) -> dict[str, Any]:
    """An inference batch (and a generation request) with the weights stored in `fmt` and the KV cache in
    `kv_dtype` (default: the compute dtype): weights, activations, KV cache and peaks per device under tensor
    parallelism `tp`, and whether they fit `device` (its memory less the runtime reserve). Under `tp` each device
    holds 1/tp of the weights and activations and its key/value heads' share of the KV cache
    (estimate/sharding.py).

    Activations and the KV cache are the traced ones rescaled from the traced dtype to the format's compute
    dtype (fp32 for fp32, else 16-bit: weight-only formats compute in 16 bits). A weight-only format's
    dequantise-then-compute kernels (bitsandbytes, GPTQ/AWQ at large batches) add one dequantised 16-bit copy of
    the largest linear weight as a workspace."""
    from afford.estimate.parallel import RESERVED_BYTES
    from afford.estimate.sharding import kv_heads_of, kv_share

    if fmt.device_format and not device.has_format(fmt.device_format):
        raise InputError(f"{device.name} has no {fmt.device_format.upper()} support in the catalog: weight format "
                         f"{fmt.id} needs it; choose another --weights or --hardware")
    key = str(kv_dtype).lower() if kv_dtype else None
    if key is not None and key not in KV_DTYPES:
        raise InputError(f"unknown KV cache dtype {str(kv_dtype)[:20]!r}; choose one of: {', '.join(KV_DTYPES)}")
    if key == "fp8" and not device.has_format("fp8"):
        raise InputError(f"{device.name} has no FP8 support in the catalog: --kv-cache-dtype fp8 needs it")
    t, mem = a.trace, a.memory
    params = params_of(t)
    wb = weight_bytes(params, fmt, {**a.spec.metadata, "params": t.params})
    traced = a.workload.precision.compute_dtype.itemsize
    compute = fmt.dense_bytes
    act = compute / traced
    kv_scale = (KV_DTYPES[key] if key else compute) / traced
    workspace = 2 * max((p.numel // p.stack for p in params if p.linear and not p.output), default=0) \
        if fmt.kind == "linear" else 0
    weights = wb.bytes / tp + mem.buffers_bytes * act
    infer_live = t.infer.peak_live_bytes * act
    kv = mem.kv_cache_bytes * kv_scale
    gen_live = max((p.peak_live_bytes for p in (t.prefill, t.decode) if p is not None), default=0)
    if t.generation is not None:
        gen_live = max(gen_live, mem.generate_peak_bytes - mem.weights_bytes - mem.buffers_bytes)
    generating = mem.generate_peak_bytes > 0
    share = kv_share(kv_heads_of(a.spec.metadata), tp)
    gen_live = max(0.0, gen_live - mem.kv_cache_bytes) * act / tp
    gen_peak = (weights + workspace + gen_live + kv * share) if generating else 0.0
    infer_peak = weights + workspace + infer_live / tp
    usable = device.memory_bytes - RESERVED_BYTES
    # a generation job runs its prefill and decode steps, never the one full forward of the infer phase (whose
    # logits cover every position)
    need = gen_peak if t.generation is not None else max(infer_peak, gen_peak)
    return {**wb.to_dict(), "kv_cache_dtype": key or ("fp32" if compute == 4 else "fp16"),
            "kv_cache_bytes": kv, "activations_scale": act, "dequant_workspace_bytes": workspace,
            "infer_peak_bytes": infer_peak, "generate_peak_bytes": gen_peak, "tp": tp,
            "device": device.id, "device_usable_bytes": usable, "fits": need <= usable,
            "kv_source": KV_SOURCE if key == "fp8" else None}


def compute_precision(fmt: WeightFormat, traced: str) -> str:
    """The precision the roofline times a format's inference with: FP8 matmuls for `fp8` (W8A8, as vLLM's FP8
    checkpoints run), FP4 matmuls for `nvfp4` / `mxfp4` (W4A4 on the tensor cores of a device with FP4, at its
    FP4 peak; the formats are refused elsewhere), fp32 for `fp32`, else 16 bits (weight-only formats dequantise to
    16 bits and compute there)."""
    if fmt.id == "fp8":
        return "fp8"
    if fmt.id in ("nvfp4", "mxfp4"):
        return "fp4"
    if fmt.id == "fp32":
        return "fp32"
    return "bf16" if traced.startswith("bf16") else "fp16"


def expert_stack(op: str, flops: float, nbytes: float, stacks: set[tuple[int, ...]],
                 itemsize: float) -> tuple[int, ...] | None:
    """The expert weight stack (experts, out, in) a traced grouped matmul (a mixture-of-experts layer) reads: the
    largest stack whose in x out divides the FLOPs (2 x routed tokens x in x out) and whose bytes the event holds
    (a fused gate-and-up stack and the smaller down stack both divide the gate-and-up FLOPs); None for any other
    event."""
    if op != "_grouped_mm" or not flops:
        return None
    for shape in sorted(stacks, key=math.prod, reverse=True):
        if len(shape) == 3 and not int(flops) % (2 * shape[1] * shape[2]) and itemsize * math.prod(shape) < nbytes:
            return shape
    return None


def linear_shape(op: str, flops: float, nbytes: float, shapes: set[tuple[int, int]],
                 itemsize: float) -> tuple[int, int] | None:
    """The (in, out) weight shape of a traced matmul event that is a linear layer's call, recognised by its FLOPs
    (2 m in out) and bytes (x [m, in], W [in, out] and y [m, out], plus a bias); None for any other event."""
    if op not in ("mm", "addmm") or not flops:
        return None
    for fi, fo in shapes:
        m, rest = divmod(int(flops), 2 * fi * fo)
        plain = itemsize * (m * fi + fi * fo + m * fo)
        if m and not rest and nbytes in (plain, plain + itemsize * fo):
            return fi, fo
    return None


def reweighted(phase: Any, trace: Any, fmt: WeightFormat, meta: dict[str, Any], act: float) -> Any:
    """`phase` (a PhaseProfile) with every linear layer's weight read in `fmt`, for the roofline: each matmul
    event (mm/addmm) that is a linear layer's call, recognised by its FLOPs and bytes (2 m in out FLOPs; bytes
    of x [m, in], W [in, out] and y [m, out], plus a bias), has its weight's traced bytes replaced by the format's
    (divided by `act`, the byte scale the roofline then applies to every byte). The output head, kept in 16 bits
    by the weight-only formats, is left as traced. FLOPs are unchanged."""
    import dataclasses

    if phase is None or fmt.kind == "dense":
        return phase
    itemsize = trace.weights_bytes / trace.params if trace.params else 2
    head = trace.output_param
    shapes = {(fi, fo) for i, fi, fo in trace.linear_params if i != head or fmt.kind == "gguf"}
    stacks = {tuple(shape) for shape, _ in trace.param_shapes if len(shape) == 3}
    per_weight = None
    if fmt.kind == "gguf":  # GGUF mixes types per tensor: the mean bytes per weight of the quantized tensors
        wb = weight_bytes([p for p in params_of(trace) if p.linear], fmt, meta)
        per_weight = wb.bytes / max(1, wb.quantized_params + wb.kept_params)
    # an autocast-traced batch casts each fp32 weight to 16 bits before its matmul; a weight-only format's kernel
    # reads the stored weight instead (counting/autocast.py), so those casts go
    casts = {(4 + itemsize) * fi * fo for fi, fo in shapes} if phase.autocast else set()
    events: dict[tuple[str, int, Any], int] = {}
    for (op, flops, nbytes), calls in phase.events.items():
        if op == "_to_copy" and not flops and nbytes in casts:
            continue
        new = nbytes
        shape = linear_shape(op, flops, nbytes, shapes, itemsize)
        experts = 1
        if shape is None and op == "_grouped_mm":  # a MoE layer's expert stack, read whole (docs/inference.md)
            stack = expert_stack(op, flops, nbytes, stacks, itemsize)
            if stack is not None:
                experts, shape = stack[0], (stack[2], stack[1])
        if shape is not None:
            fi, fo = shape
            stored = fi * fo * per_weight if per_weight is not None else _linear_bytes(fmt, fi, fo)
            new = nbytes - experts * (itemsize * fi * fo - stored / act)
        key = (op, flops, new)
        events[key] = events.get(key, 0) + calls
    return dataclasses.replace(phase, events=events)
