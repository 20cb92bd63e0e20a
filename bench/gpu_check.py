"""Measured step times and latencies on a CUDA GPU, for comparison with afford's predictions
(bench/gpu_compare.py prices the same jobs and writes docs/validation.md's "Measured on a lent GPU" table).

Self-contained on purpose: it needs only torch, torchvision, timm and transformers (the GPU machine's own
versions), not afford, so a version difference there cannot break the run. Each group of cases runs in its own
process under a time limit (bench/gpu_check.sh), and every finished case is appended to a JSON-lines file at
once, so a timeout keeps what was measured.

Usage: python bench/gpu_check.py GROUP OUT.jsonl [--smoke]
  GROUP: probe | train | infer | decode | compiled-resnet18 | compiled-vit | compiled-llama | host | phases |
         infer-default
  (probe: the kernel questions the time model has open; run first, the other groups were measured on 2026-12-04)
  (infer-default: fp32 with PyTorch's default TF32 settings, matmuls in full fp32, as afford prices fp32;
  the other groups turn TF32 on for matmuls too)
  --smoke: tiny shapes on the CPU, to check the script itself before spending GPU time.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "src" / "afford" / "sources" / "hf_configs"
SMOKE = "--smoke" in sys.argv
DEVICE = "cpu" if SMOKE else "cuda"


def sync() -> None:
    """Wait for the GPU (nothing to wait for on the CPU)."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def mean_seconds(fn: Callable[[], Any], warmup: int, iters: int) -> float:
    """Mean seconds per call over `iters` calls issued back to back (one sync at the end), after `warmup`:
    throughput timing, as trainers and timm's benchmark run."""
    for _ in range(warmup):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t) / iters


def block_seconds(fn: Callable[[], Any], warmup: int, iters: int, blocks: int = 5) -> tuple[float, float]:
    """(median over `blocks` blocks, mean over all) seconds per call of calls issued back to back, one sync per
    block: throughput timing that one stray slow call (a GC pause, a host hiccup) cannot move, as it moved a single
    mean in the first H200 run (ResNet-50 TF32 batch 1: 4.88 ms a call back to back against a 3.72 ms synced
    median, which back-to-back issue cannot exceed without an outlier)."""
    for _ in range(warmup):
        fn()
    sync()
    per = max(1, iters // blocks)
    times = []
    for _ in range(blocks):
        t = time.perf_counter()
        for _ in range(per):
            fn()
        sync()
        times.append((time.perf_counter() - t) / per)
    return statistics.median(times), statistics.fmean(times)


def median_latency(fn: Callable[[], Any], warmup: int, iters: int) -> float:
    """Median seconds of one call with a sync after each: latency timing, as a served request sees it."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_gib() -> float:
    """Peak bytes the caching allocator handed out since the last reset, in GiB."""
    return torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else 0.0


def reset_peak() -> None:
    """Free what the last case left and restart the peak count."""
    import gc

    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def vision(name: str) -> torch.nn.Module:
    """A torchvision or timm model with random weights."""
    source, model = name.split(":")
    if source == "torchvision":
        import torchvision

        return torchvision.models.get_model(model, weights=None)
    import timm

    return timm.create_model(model, pretrained=False)


def llm(repo: str, dtype: torch.dtype) -> torch.nn.Module:
    """A causal LM built from the config afford ships (random weights, SDPA attention) on the device."""
    from transformers import AutoConfig, AutoModelForCausalLM

    d = dict(json.loads((CONFIGS / (repo.replace("/", "--") + ".json")).read_text())["config"])
    if SMOKE:
        d.update(num_hidden_layers=2, hidden_size=128, intermediate_size=256, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1000, head_dim=32)
    config = AutoConfig.for_model(d.pop("model_type"), **d)
    with torch.device(DEVICE):
        try:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
        except TypeError:
            model = AutoModelForCausalLM.from_config(config, torch_dtype=dtype, attn_implementation="sdpa")
    return model


class Recorder:
    """Appends one JSON line per finished case, so a killed process keeps the rows before it."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def case(self, row: dict[str, Any], run: Callable[[], dict[str, Any]]) -> None:
        """Run one case and append its row (with the error instead, if it failed)."""
        reset_peak()
        t = time.perf_counter()
        try:
            row.update(run())
            row["peak_gib"] = round(peak_gib(), 3)
        except Exception as e:  # noqa: BLE001  a failed case is recorded, and the next one runs
            row["error"] = f"{type(e).__name__}: {e}"[:500]
            traceback.print_exc()
        row["wall_s"] = round(time.perf_counter() - t, 1)
        print(json.dumps(row), flush=True)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def training_steps(loss: Callable[[], torch.Tensor], opt: torch.optim.Optimizer, warmup: int,
                   iters: int) -> tuple[float, float]:
    """A bf16-autocast training step (the loss, backward, the optimizer step): the first step's seconds (with any
    compilation), then the mean seconds of `iters` steps after `warmup` more."""
    def step() -> None:
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            value = loss()
        value.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - t
    return first, mean_seconds(step, 1 if SMOKE else warmup, 1 if SMOKE else iters)


def train_vision(name: str, batch: int, compiled: bool) -> Callable[[], dict[str, Any]]:
    """A bf16-autocast AdamW training step of a vision model at 224 px (cross-entropy loss)."""
    def run() -> dict[str, Any]:
        model = vision(name).to(DEVICE).train()
        step_model = torch.compile(model) if compiled else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        b = 2 if SMOKE else batch
        x = torch.randn(b, 3, 224, 224, device=DEVICE)
        y = torch.randint(0, 1000, (b,), device=DEVICE)

        first, seconds = training_steps(lambda: torch.nn.functional.cross_entropy(step_model(x), y), opt, 3, 15)
        return {"step_s": seconds, "samples_per_s": b / seconds, "first_step_s": round(first, 2)}
    return run


def train_llm(repo: str, batch: int, seq: int, compiled: bool) -> Callable[[], dict[str, Any]]:
    """A bf16-autocast AdamW training step of a causal LM (fp32 weights, SDPA, labels = inputs)."""
    def run() -> dict[str, Any]:
        model = llm(repo, torch.float32).train()
        step_model = torch.compile(model) if compiled else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        s = 16 if SMOKE else seq
        ids = torch.randint(0, int(model.config.vocab_size), (1 if SMOKE else batch, s), device=DEVICE)

        first, seconds = training_steps(lambda: step_model(input_ids=ids, labels=ids).loss, opt, 2, 8)
        return {"step_s": seconds, "tokens_per_s": ids.numel() / seconds, "first_step_s": round(first, 2)}
    return run


def infer_vision(name: str, batch: int, dtype: torch.dtype, graphs: bool) -> Callable[[], dict[str, Any]]:
    """Eval-mode inference at 224 px in `dtype` (weights cast to it): batch latency (sync after each call) and
    throughput (calls back to back, the median of five blocks); with `graphs`, the forward replayed from one
    captured CUDA graph."""
    def run() -> dict[str, Any]:
        model = vision(name).to(DEVICE, dtype).eval()
        x = torch.randn(batch if not SMOKE else 1, 3, 224, 224, device=DEVICE, dtype=dtype)
        fn: Callable[[], Any]
        with torch.inference_mode():
            if graphs and DEVICE == "cuda":
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    for _ in range(3):
                        model(x)
                torch.cuda.current_stream().wait_stream(s)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    model(x)
                fn = g.replay
            else:
                def fn() -> Any:
                    return model(x)
            iters = 2 if SMOKE else (100 if batch <= 8 else 30)
            latency = median_latency(fn, 2 if SMOKE else 10, iters)
            throughput, mean = block_seconds(fn, 1, iters)
        return {"latency_s": latency, "batch_s": throughput, "batch_s_mean": mean,
                "samples_per_s": x.shape[0] / throughput}
    return run


def decode_llm(repo: str, batch: int, prompt: int, tokens: int) -> Callable[[], dict[str, Any]]:
    """bf16 eager HF generation by hand: the prefill of `prompt` tokens (TTFT) and the median decode step over
    `tokens` steps with the dynamic KV cache (TPOT), at `batch` sequences."""
    def run() -> dict[str, Any]:
        model = llm(repo, torch.bfloat16).eval()
        b, p, n = (1, 8, 3) if SMOKE else (batch, prompt, tokens)
        ids = torch.randint(0, int(model.config.vocab_size), (b, p), device=DEVICE)
        with torch.inference_mode():
            ttft = median_latency(lambda: model(input_ids=ids, use_cache=True), 1 if SMOKE else 2,
                                  2 if SMOKE else 5)
            out = model(input_ids=ids, use_cache=True)
            cache = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
            for _ in range(2):  # warm-up decode steps
                out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                nxt = out.logits[:, -1:].argmax(-1)
            sync()
            steps = []
            for _ in range(n):
                t = time.perf_counter()
                out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                nxt = out.logits[:, -1:].argmax(-1)
                sync()
                steps.append(time.perf_counter() - t)
        tpot = statistics.median(steps)
        return {"ttft_s": ttft, "tpot_s": tpot, "decode_tokens_per_s": b / tpot}
    return run


def host_ops() -> Callable[[], dict[str, Any]]:
    """Host time per op on this machine: a tiny in-place add (dispatch and launch, as `afford calibrate` times
    it), a tiny nn.Linear module call and a tiny convolution, each issued 2,000 times back to back."""
    def run() -> dict[str, Any]:
        tiny = torch.ones(8, device=DEVICE)
        lin = torch.nn.Linear(8, 8).to(DEVICE)
        conv = torch.nn.Conv2d(3, 8, 3).to(DEVICE)
        img = torch.randn(1, 3, 8, 8, device=DEVICE)
        out: dict[str, Any] = {}
        with torch.inference_mode():
            for name, fn in (("add_us", lambda: tiny.add_(0)), ("linear_module_us", lambda: lin(tiny)),
                             ("conv_module_us", lambda: conv(img))):
                out[name] = 1e6 * min(mean_seconds(fn, 100, 2000) for _ in range(3))
        return out
    return run


def train_phases(name: str, batch: int) -> Callable[[], dict[str, Any]]:
    """One bf16-autocast training step of a vision model split in its phases, each timed alone: forward (with
    autograd recording), forward + backward, and AdamW's step (foreach, PyTorch's CUDA default, and fused)."""
    def run() -> dict[str, Any]:
        model = vision(name).to(DEVICE).train()
        b = 2 if SMOKE else batch
        x = torch.randn(b, 3, 224, 224, device=DEVICE)
        y = torch.randint(0, 1000, (b,), device=DEVICE)
        params = list(model.parameters())

        def forward() -> torch.Tensor:
            with torch.autocast(DEVICE, dtype=torch.bfloat16):
                return torch.nn.functional.cross_entropy(model(x), y)

        def fwd_bwd() -> None:
            forward().backward()

        warm, iters = (1, 1) if SMOKE else (3, 15)
        out: dict[str, Any] = {"tensors": len(params)}
        out["forward_s"] = mean_seconds(forward, warm, iters)
        out["forward_backward_s"] = mean_seconds(fwd_bwd, warm, iters)
        for label, kwargs in (("adamw_foreach_s", {"foreach": True}), ("adamw_fused_s", {"fused": DEVICE == "cuda"})):
            opt = torch.optim.AdamW(params, lr=1e-4, **kwargs)  # type: ignore[arg-type]
            out[label] = mean_seconds(opt.step, warm, iters)
        return out
    return run


def probe_upsample(planes: int, side: int, dtype: torch.dtype, channels_last: bool) -> Callable[[], dict[str, Any]]:
    """One bilinear 2x upsampling of (planes // 1024 or 1, ...) planes of side x side: the per-pixel NCHW kernel
    that loops over N x C in every thread (afford's counting/serial.py prices it at 260 ns a plane), or the NHWC
    kernel with `channels_last`."""
    def run() -> dict[str, Any]:
        c = min(planes, 1024)
        n = max(1, planes // c) if not SMOKE else 1
        x = torch.randn(n, c, side, side, device=DEVICE, dtype=dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            t = mean_seconds(lambda: torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear"),
                             1 if SMOKE else 3, 1 if SMOKE else 5)
        return {"seconds": t, "planes": n * c, "ns_per_plane": 1e9 * t / (n * c)}
    return run


def probe_depthwise(batch: int, channels: int, side: int, kernel: int, dtype: torch.dtype,
                    channels_last: bool) -> Callable[[], dict[str, Any]]:
    """One depthwise convolution (groups = channels, stride 1, same padding, no bias), forward: the GPU-side rate
    afford's efficiency.toml [depthwise] derives from a 2080 Ti table, on this GPU, in NCHW or channels_last."""
    def run() -> dict[str, Any]:
        b = 2 if SMOKE else batch
        conv = torch.nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels, bias=False)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        conv = conv.to(DEVICE, dtype).to(memory_format=fmt)
        x = torch.randn(b, channels, side, side, device=DEVICE, dtype=dtype).contiguous(memory_format=fmt)
        with torch.inference_mode():
            t, _ = block_seconds(lambda: conv(x), 1 if SMOKE else 3, 2 if SMOKE else 20)
        return {"seconds": t, "batch_run": b}
    return run


def probe_grouped(batch: int, channels: int, groups: int, side: int, dtype: torch.dtype, tf32: bool,
                  channels_last: bool) -> Callable[[], dict[str, Any]]:
    """One grouped 3x3 convolution (ResNeXt's: `groups` groups of channels // groups, stride 1, same padding),
    forward and forward + backward, with the FLOP/s it reaches: the rate afford prices by the dense tensor-core
    rule (DLE's A100 TF32 rows are +31% to +48% too fast, ResNet-50's dense ones too; docs/validation.md "DLE
    vision training"), so the dense TF32 case is measured beside the grouped ones."""
    def run() -> dict[str, Any]:
        b = 2 if SMOKE else batch
        allow = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = tf32
        try:
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            conv = torch.nn.Conv2d(channels, channels, 3, padding=1, groups=groups, bias=False)
            conv = conv.to(DEVICE, dtype).to(memory_format=fmt)
            x = torch.randn(b, channels, side, side, device=DEVICE, dtype=dtype).contiguous(memory_format=fmt)
            x.requires_grad_()
            g = torch.randn_like(conv(x))
            with torch.no_grad():
                t_fwd, _ = block_seconds(lambda: conv(x), 1 if SMOKE else 3, 2 if SMOKE else 20)
            t_all, _ = block_seconds(lambda: conv(x).backward(g), 1 if SMOKE else 3, 2 if SMOKE else 20)
        finally:
            torch.backends.cudnn.allow_tf32 = allow
        flops = 2 * b * channels * (channels // groups) * 9 * side * side
        return {"forward_s": t_fwd, "forward_tflops": flops / t_fwd / 1e12, "train_s": t_all,
                "train_tflops": 3 * flops / t_all / 1e12, "batch_run": b}
    return run


def probe_layer_norm(rows: int, width: int, dtype: torch.dtype) -> Callable[[], dict[str, Any]]:
    """One layer norm over `rows` rows of `width` elements, forward: PyTorch's block-per-row kernel, against
    afford's floor of one memory round trip per wave of resident blocks (efficiency.toml [row_blocks])."""
    def run() -> dict[str, Any]:
        n = 1024 if SMOKE else rows
        x = torch.randn(n, width, device=DEVICE, dtype=dtype)
        w, b = torch.ones(width, device=DEVICE, dtype=dtype), torch.zeros(width, device=DEVICE, dtype=dtype)
        with torch.inference_mode():
            t, _ = block_seconds(lambda: torch.nn.functional.layer_norm(x, (width,), w, b),
                                 1 if SMOKE else 3, 2 if SMOKE else 20)
        return {"seconds": t, "rows_run": n, "ns_per_row": 1e9 * t / n}
    return run


def probe_conv3d(batch: int, width: int, side: int, dtype: torch.dtype,
                 channels_last: bool) -> Callable[[], dict[str, Any]]:
    """Lambda layers' position-lambda convolution (timm LambdaLayer, r = 9): Conv3d(1, 16, (9, 9, 1)) over
    (batch, 1, side, side, width), forward, with the FLOP/s it reaches. timm's RTX PRO 6000 table implies 0.70-0.72
    TFLOP/s for it in eager fp16 (docs/validation.md, the lambda rows); afford prices it at the dense rate."""
    def run() -> dict[str, Any]:
        b = 2 if SMOKE else batch
        fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
        conv = torch.nn.Conv3d(1, 16, (9, 9, 1), padding=(4, 4, 0), bias=False).to(DEVICE, dtype).to(memory_format=fmt)
        x = torch.randn(b, 1, side, side, width, device=DEVICE, dtype=dtype).contiguous(memory_format=fmt)
        with torch.inference_mode():
            t, _ = block_seconds(lambda: conv(x), 1 if SMOKE else 3, 2 if SMOKE else 20)
        flops = 2 * b * 16 * 81 * side * side * width
        return {"seconds": t, "tflops": flops / t / 1e12, "batch_run": b}
    return run


def probe_model(name: str, batch: int, dtype: torch.dtype, autocast: bool, channels_last: bool = False,
                fast_norm: bool = False) -> Callable[[], dict[str, Any]]:
    """Eval-mode throughput of a vision model as timm's benchmark runs it (autocast fp16 with fp32 weights, or
    weights cast to `dtype`), optionally in channels_last or with timm's fast-norm (16-bit GroupNorm/LayerNorm)."""
    def run() -> dict[str, Any]:
        if fast_norm:
            from timm.layers import set_fast_norm

            set_fast_norm(True)
        try:
            model = vision(name).to(DEVICE, torch.float32 if autocast else dtype).eval()
        finally:
            if fast_norm:
                set_fast_norm(False)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt)
        b = 2 if SMOKE else batch
        x = torch.randn(b, 3, 224, 224, device=DEVICE, dtype=torch.float32 if autocast else dtype)
        x = x.contiguous(memory_format=fmt)

        def fn() -> Any:
            with torch.autocast(DEVICE, dtype=dtype, enabled=autocast):
                return model(x)
        with torch.inference_mode():
            t = mean_seconds(fn, 1 if SMOKE else 3, 1 if SMOKE else 10)
        return {"batch_s": t, "samples_per_s": b / t}
    return run


def probe_kernels(name: str, batch: int) -> Callable[[], dict[str, Any]]:
    """Every kernel of one fp16 eval forward (eager; a CUDA graph replays the same kernels), from torch.profiler:
    how many, their durations (the data a per-kernel floor or an occupancy model needs), the ten longest."""
    def run() -> dict[str, Any]:
        from torch.profiler import ProfilerActivity, profile

        model = vision(name).to(DEVICE, torch.float16).eval()
        x = torch.randn(batch if not SMOKE else 1, 3, 224, 224, device=DEVICE, dtype=torch.float16)
        with torch.inference_mode():
            for _ in range(3):
                model(x)
            sync()
            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
            with profile(activities=acts) as prof:
                model(x)
                sync()
        kernels = [(e.name, e.device_time) for e in prof.events() if getattr(e, "device_type", None) is not None
                   and str(e.device_type).endswith("CUDA") and e.device_time > 0]
        us = sorted(t for _, t in kernels)
        top = sorted(kernels, key=lambda k: -k[1])[:10]
        return {"kernels": len(us), "kernel_us_total": sum(us),
                "kernel_us_p10_p50_p90": [us[int(q * (len(us) - 1))] for q in (0.1, 0.5, 0.9)] if us else [],
                "top": [[n[:80], round(t, 1)] for n, t in top]}
    return run


def probes(rec: Recorder) -> None:
    """Kernel questions the time model has open (docs/validation.md): the serial upsampling rule's per-plane time,
    depthwise convolutions at RepLKNet's shapes (efficiency.toml [depthwise]) in fp16 and fp32, NCHW and NHWC,
    16-bit NCHW convolutions against channels_last, GroupNorm under autocast with and without timm's fast-norm
    (the timm table's GroupNorm rows), efficientformerv2 and lambda end to end, LayerNorm2d over few channels and an
    RmsNorm ViT with and without fast-norm, ResNet-50's kernel durations and names (which cuDNN kernels 16-bit NCHW
    takes on this GPU), test_efficientnet_ln's and lambda_resnet26t's (its Conv3d over one input channel and its
    batched 1 x K matmuls), ResNeXt's grouped 3x3 convolutions in TF32, fp32 and fp16 against a dense one, layer
    norms over 16-768 element rows (efficiency.toml [row_blocks]) and the lambda layers' Conv3d alone."""
    for planes, side, dtype, cl in ((2048 * 1024, 7, torch.float32, False), (256 * 1024, 7, torch.float32, False),
                                    (2048 * 1024, 7, torch.float32, True), (64 * 1024, 16, torch.float16, False)):
        rec.case({"kind": "probe", "probe": "upsample_bilinear2d", "planes": planes, "side": side,
                  "dtype": str(dtype).split(".")[1], "channels_last": cl}, probe_upsample(planes, side, dtype, cl))
    for channels, side, kernel, dtype, cl in ((384, 32, 3, torch.float16, False), (384, 32, 7, torch.float16, False),
                                              (384, 32, 7, torch.float16, True), (384, 32, 7, torch.float32, False),
                                              (384, 32, 31, torch.float32, False)):
        rec.case({"kind": "probe", "probe": "depthwise", "batch": 64, "channels": channels, "side": side,
                  "kernel": kernel, "dtype": str(dtype).split(".")[1], "channels_last": cl},
                 probe_depthwise(64, channels, side, kernel, dtype, cl))
    grouped = ((128, 32, torch.float32, True, False), (128, 32, torch.float32, False, False),
               (256, 32, torch.float32, True, False), (256, 32, torch.float16, False, False),
               (256, 32, torch.float16, False, True), (256, 1, torch.float32, True, False))
    for channels, groups, dtype, tf32, cl in grouped:
        rec.case({"kind": "probe", "probe": "grouped_conv", "batch": 64, "channels": channels, "groups": groups,
                  "side": 56, "dtype": str(dtype).split(".")[1], "tf32": tf32, "channels_last": cl},
                 probe_grouped(64, channels, groups, 56, dtype, tf32, cl))
    for rows, width in ((13_107_200, 16), (13_107_200, 24), (3_276_800, 64), (819_200, 128), (409_600, 768)):
        rec.case({"kind": "probe", "probe": "layer_norm", "rows": rows, "width": width, "dtype": "float16"},
                 probe_layer_norm(rows, width, torch.float16))
    for dtype, cl in ((torch.float16, False), (torch.float16, True), (torch.float32, False)):
        rec.case({"kind": "probe", "probe": "conv3d_lambda", "batch": 256, "width": 64, "side": 16,
                  "dtype": str(dtype).split(".")[1], "channels_last": cl}, probe_conv3d(256, 64, 16, dtype, cl))
    for name, batch, kw in (("torchvision:resnet50", 256, {}), ("torchvision:resnet50", 256, {"channels_last": True}),
                            ("timm:resnet50_gn", 256, {}), ("timm:resnet50_gn", 256, {"fast_norm": True}),
                            ("timm:convnext_tiny", 256, {}), ("timm:convnext_tiny", 256, {"fast_norm": True}),
                            ("timm:efficientformerv2_s0", 256, {}), ("timm:lambda_resnet26t", 256, {}),
                            # LayerNorm2d over 16-256 channels against the same net with BatchNorm; an RmsNorm ViT
                            ("timm:test_efficientnet", 256, {}), ("timm:test_efficientnet_ln", 256, {}),
                            ("timm:test_efficientnet_ln", 256, {"fast_norm": True}),
                            ("timm:vit_base_patch16_xp_224", 64, {}),
                            ("timm:vit_base_patch16_xp_224", 64, {"fast_norm": True})):
        rec.case({"kind": "probe", "probe": "amp_fp16", "model": name, "batch": batch, **kw},
                 probe_model(name, batch, torch.float16, True, **kw))
    rec.case({"kind": "probe", "probe": "fp16_weights", "model": "torchvision:resnet50", "batch": 256},
             probe_model("torchvision:resnet50", 256, torch.float16, False))
    for name, batch in (("torchvision:resnet50", 1), ("torchvision:resnet50", 8), ("torchvision:resnet50", 64),
                        ("timm:test_efficientnet_ln", 256), ("timm:lambda_resnet26t", 64)):
        rec.case({"kind": "probe", "probe": "kernels", "model": name, "batch": batch}, probe_kernels(name, batch))


def main() -> int:
    group, out = sys.argv[1], sys.argv[2]
    rec = Recorder(out)
    if DEVICE == "cuda" and group != "infer-default":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__, flush=True)
    llama1b, llama7b = "meta-llama/Llama-3.2-1B", "meta-llama/Llama-2-7b-hf"
    if group == "train":
        for name, batch in (("torchvision:resnet18", 64), ("torchvision:resnet50", 64),
                            ("timm:vit_base_patch16_224", 64), ("timm:regnety_004", 256),
                            ("timm:deit_tiny_patch16_224", 256)):
            rec.case({"kind": "train", "model": name, "batch": batch, "runtime": "eager"},
                     train_vision(name, batch, False))
        for batch, seq in ((8, 512), (2, 2048)):
            rec.case({"kind": "train", "model": "hf:" + llama1b, "batch": batch, "seq": seq, "runtime": "eager"},
                     train_llm(llama1b, batch, seq, False))
    elif group == "infer":
        for name, batches in (("torchvision:resnet50", (1, 8, 64, 256)), ("timm:vit_base_patch16_224", (1, 64))):
            for dtype, label in ((torch.float32, "fp32"), (torch.float16, "fp16")):
                for batch in batches:
                    rec.case({"kind": "infer", "model": name, "batch": batch, "precision": label,
                              "runtime": "eager"}, infer_vision(name, batch, dtype, False))
        for batch in (1, 8):
            rec.case({"kind": "infer", "model": "torchvision:resnet50", "batch": batch, "precision": "fp16",
                      "runtime": "cudagraphs"}, infer_vision("torchvision:resnet50", batch, torch.float16, True))
    elif group == "decode":
        for repo, batches in ((llama1b, (1, 16)), (llama7b, (1, 32))):
            for batch in batches:
                rec.case({"kind": "decode", "model": "hf:" + repo, "batch": batch, "prompt": 512, "tokens": 64,
                          "precision": "bf16", "runtime": "eager"}, decode_llm(repo, batch, 512, 64))
    elif group == "compiled-resnet18":
        rec.case({"kind": "train", "model": "torchvision:resnet18", "batch": 64, "runtime": "compiled"},
                 train_vision("torchvision:resnet18", 64, True))
    elif group == "compiled-vit":
        rec.case({"kind": "train", "model": "timm:vit_base_patch16_224", "batch": 64, "runtime": "compiled"},
                 train_vision("timm:vit_base_patch16_224", 64, True))
    elif group == "compiled-llama":
        rec.case({"kind": "train", "model": "hf:" + llama1b, "batch": 2, "seq": 2048, "runtime": "compiled"},
                 train_llm(llama1b, 2, 2048, True))
    elif group == "probe":
        probes(rec)
    elif group == "host":
        rec.case({"kind": "host"}, host_ops())
    elif group == "phases":
        for name, batch in (("torchvision:resnet18", 64), ("timm:regnety_004", 256),
                            ("timm:deit_tiny_patch16_224", 256), ("timm:vit_base_patch16_224", 64),
                            ("timm:regnetx_008", 256), ("timm:mixnet_m", 128)):
            rec.case({"kind": "phases", "model": name, "batch": batch}, train_phases(name, batch))
    elif group == "infer-default":
        for name, batches in (("torchvision:resnet50", (1, 64)), ("timm:vit_base_patch16_224", (1, 64)),
                              ("timm:regnety_004", (1, 256)), ("timm:deit_tiny_patch16_224", (1, 256))):
            for batch in batches:
                rec.case({"kind": "infer", "model": name, "batch": batch, "precision": "fp32", "runtime": "eager",
                          "tf32_matmul": False}, infer_vision(name, batch, torch.float32, False))
    else:
        print(f"unknown group {group!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
