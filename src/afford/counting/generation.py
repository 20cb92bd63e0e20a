"""A generation request traced on meta: the prefill of the prompt, then its cached decode steps, each traced or
summed in closed form from a few traced contexts (`affine_weights`)."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from functools import partial
from typing import Any

from afford.counting.engine import Counter
from afford.counting.guard import guard
from afford.counting.kvcache import append_in_place, cache_bytes, next_cache
from afford.counting.profile import GenerationProfile, PhaseProfile
from afford.sources.base import DecodeAdapter, ModelSpec, Run

# A request with at most this many decode steps has every step traced in sequence (cheaper than the closed form).
EVERY_STEP_MAX = 8


def affine_weights(f: Callable[[int], int], lo: int, hi: int) -> dict[int, Fraction]:
    """Weights w_c on a few contexts c such that sum_c w_c f(c) equals f summed over every c in lo..hi, exactly.

    f (a decode step's FLOPs at cache length c) is concave and piecewise affine: each attention layer reads c + 1
    keys, or min(c + 1, window) with a sliding window, and nothing else depends on c. A concave function that meets
    a line at both ends of an interval and at one interior point is that line on the whole interval, so three
    points prove a piece affine, and its sum is the trapezoid (b - a + 1) (f(a) + f(b)) / 2. Where the test fails
    the knee is where the lines through the first two and the last two points cross; failing that, halve.
    """
    weights: dict[int, Fraction] = {}

    def add(c: int, w: Fraction) -> None:
        weights[c] = weights.get(c, Fraction(0)) + w

    def on_line(a: int, b: int, c: int) -> bool:
        return (f(b) - f(a)) * (c - a) == (f(c) - f(a)) * (b - a)

    def piece(a: int, b: int) -> None:
        add(a, Fraction(b - a + 1, 2))
        add(b, Fraction(b - a + 1, 2))

    def solve(a: int, b: int) -> None:
        if b - a < 3:
            for c in range(a, b + 1):
                add(c, Fraction(1))
            return
        if on_line(a, a + 1, b):
            piece(a, b)
            return
        s1, s2 = f(a + 1) - f(a), f(b) - f(b - 1)
        if s1 != s2:
            x = Fraction(f(b) - f(a) + s1 * a - s2 * b, s1 - s2)
            k = min(max(x.numerator // x.denominator, a + 1), b - 2)
            if on_line(a, a + 1, k) and on_line(k + 1, b - 1, b):
                piece(a, k)
                piece(k + 1, b)
                return
        mid = (a + b) // 2
        solve(a, mid)
        solve(mid + 1, b)

    solve(lo, hi)
    return {c: w for c, w in weights.items() if w}


def _weighted(values: dict[int, tuple[int, Fraction]]) -> int:
    """sum w x value, exact; integral whenever the quantity is affine on each piece (FLOPs always are)."""
    return round(sum((w * v for v, w in values.values()), Fraction(0)))


def trace_generation(spec: ModelSpec, adapter: DecodeAdapter, run: Run, counter: Counter, batch: int, prompt: int,
                new: int, every_step: bool) -> GenerationProfile:
    """Trace a generation request batch: the prefill of `prompt` tokens, which yields the first new token, then
    the `new` - 1 cached decode steps, each traced or summed in closed form from a few traced contexts."""
    start = adapter.decoder_prompt(prompt) if adapter.decoder_prompt is not None else prompt

    def prefill(context: int) -> Any:
        if adapter.encode_prefill is not None:
            return adapter.encode_prefill(run, batch, prompt, context)
        return adapter.prefill(run, batch, context)

    gen = GenerationProfile(prompt_tokens=prompt, generate_tokens=new, prefill=counter.start_phase("prefill"))
    cache = guard("prefill", spec, lambda: prefill(start))
    counter.finish_phase()
    gen.kv_cache_bytes, gen.kv_cache_tokens = cache_bytes(cache), start
    lo, hi = start, start + new - 2  # cache length before each of the G - 1 steps
    traced: dict[int, PhaseProfile] = {}
    if hi < lo:
        weights: dict[int, Fraction] = {}
    elif every_step or hi - lo + 1 <= EVERY_STEP_MAX:
        for c in range(lo, hi + 1):
            traced[c] = counter.start_phase(f"decode@{c}")
            out = guard("decode step", spec, partial(adapter.step, run, batch, cache, c))
            counter.finish_phase()
            cache = next_cache(out, cache)
            append_in_place(traced[c], cache)
            del out
        gen.every_step = True
        gen.kv_cache_bytes = cache_bytes(cache)
        weights = {c: Fraction(1) for c in traced}
    else:
        cache = None  # each traced step brings its own cache; the prompt's would only inflate the live peak

        def flops_at(c: int) -> int:
            if c not in traced:
                # a cache of c positions, its FLOPs no part of the request; for the last step (the memory peak) a
                # prefill of c - 1 and one step, so that the cache's storage is what decoding leaves (after a
                # prefill a sliding-window layer keeps a view of the whole prompt's keys until its first step)
                counter.start_phase("setup")
                settle = c == hi and c > lo
                state = guard("prefill", spec, lambda: prefill(c - 1 if settle else c))
                if settle:
                    state = next_cache(guard("decode step", spec, lambda: adapter.step(run, batch, state, c - 1)),
                                        state)
                counter.finish_phase()
                traced[c] = counter.start_phase(f"decode@{c}")
                out = guard("decode step", spec, lambda: adapter.step(run, batch, state, c))
                counter.finish_phase()
                append_in_place(traced[c], next_cache(out, state))
                if c == hi:
                    gen.kv_cache_bytes = cache_bytes(next_cache(out, state))
                del out, state  # freed by reference counting (a full gc.collect costs ~0.5 s per call)
            return traced[c].flops

        weights = affine_weights(flops_at, lo, hi)
    del cache
    if traced:
        gen.kv_cache_tokens = hi + 1
    gen.steps = {c: (traced[c], w) for c, w in sorted(weights.items())}
    gen.traced_steps = len(traced)
    gen.decode_flops = _weighted({c: (p.flops, w) for c, (p, w) in gen.steps.items()})
    gen.decode_bytes = _weighted({c: (p.bytes_moved, w) for c, (p, w) in gen.steps.items()})
    gen.decode_masked_flops = _weighted({c: (p.masked_attention_flops(), w) for c, (p, w) in gen.steps.items()})
    last = gen.last_step
    gen.peak_live_bytes = max(gen.prefill.peak_live_bytes, last.peak_live_bytes if last is not None else 0)
    return gen
