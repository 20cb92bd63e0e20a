"""A restricted JSON form of a traced assessment's data, for the trace cache on disk (tracedisk.py).

Type-directed: the value is written and read back by the dataclasses' own annotations (`Trace`, `PhaseProfile`,
`OpStat`, `AttentionCall`, `GenerationProfile`, `MemoryBreakdown`, `Dims`), so only plain data comes back: ints,
floats, strings, booleans, None, lists, tuples, dicts, fractions and those dataclasses. No class is named by the
payload and no code runs: a corrupt or hostile payload can only fail to decode (`CodecError`). Ints and floats
keep their JSON type, and dicts their order, so a decoded value equals the encoded one exactly.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Any

from afford.counting.profile import AttentionCall, EagerBlock, GenerationProfile, OpStat, PhaseProfile, Trace
from afford.estimate.memory import MemoryBreakdown
from afford.sources.base import Dims

FORMAT = 3  # bump when the layout below changes


class CodecError(ValueError):
    """A value does not fit its declared type (when writing) or a payload is not a valid trace (when reading)."""


@dataclass
class Traced:
    """What the disk cache keeps of an Assessment: the traced data, not the ModelSpec (it holds code)."""

    dims: Dims
    trace: Trace
    memory: MemoryBreakdown
    module_params: dict[str, int]
    notes: list[str]
    forward_is_infer: bool = False  # a trace without a training step: its forward is its infer phase, kept once


ALLOWED: tuple[type, ...] = (Traced, Dims, Trace, PhaseProfile, OpStat, AttentionCall, GenerationProfile,
                             MemoryBreakdown, EagerBlock)


@cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of an allowed dataclass."""
    return typing.get_type_hints(cls)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _convert(value: Any, hint: Any, out: bool) -> Any:
    """Encode (`out`) or decode `value` as the type `hint`; CodecError when it does not fit."""
    return _converter(hint)(value, out)


Convert = Callable[[Any, bool], Any]


def _unfit(value: Any, hint: Any) -> CodecError:
    return CodecError(f"{type(value).__name__} does not fit {hint}")


@cache
def _converter(hint: Any) -> Convert:
    """The converter of one declared type, built once per type (a trace decodes thousands of values of a few
    types: the dispatch on the hint is done here, not per value)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in ALLOWED:
        return lambda value, out: _dataclass(value, hint, out)
    if hint is int or hint is float:  # ints and floats keep their own JSON type: exact both ways
        def number(value: Any, out: bool) -> Any:
            if type(value) is int or type(value) is float or _number(value):  # bool is neither
                return value
            raise _unfit(value, hint)
        return number
    if hint is bool or hint is str:
        def exact(value: Any, out: bool) -> Any:
            if isinstance(value, hint):
                return value
            raise _unfit(value, hint)
        return exact
    if hint is type(None):
        def none(value: Any, out: bool) -> Any:
            if value is None:
                return None
            raise _unfit(value, hint)
        return none
    if hint is Fraction:
        return _fraction
    if origin is typing.Union or origin is types.UnionType:
        choices = [_converter(arg) for arg in args]

        def union(value: Any, out: bool) -> Any:
            for choice in choices:
                try:
                    return choice(value, out)
                except CodecError:
                    continue
            raise _unfit(value, hint)
        return union
    if origin is list:
        item = _converter(args[0])

        def listed(value: Any, out: bool) -> Any:
            if isinstance(value, list):
                return [item(v, out) for v in value]
            raise _unfit(value, hint)
        return listed
    if origin is tuple:
        return _tuple_converter(args)
    if origin is dict:
        return _dict_converter(args)

    def refused(value: Any, out: bool) -> Any:
        raise _unfit(value, hint)
    return refused


@cache
def _fields(cls: type) -> tuple[list[str], list[Convert]]:
    """An allowed dataclass's field names, in order, and their converters."""
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    return names, [_converter(hints[n]) for n in names]


def _dataclass(value: Any, cls: type, out: bool) -> Any:
    names, converters = _fields(cls)
    if out:
        if type(value) is not cls:
            raise CodecError(f"expected {cls.__name__}, got {type(value).__name__}")
        return {n: c(getattr(value, n), out) for n, c in zip(names, converters, strict=True)}
    if not isinstance(value, dict) or list(value) != names:
        raise CodecError(f"not a {cls.__name__}")
    return cls(**{n: c(value[n], out) for n, c in zip(names, converters, strict=True)})


def _fraction(value: Any, out: bool) -> Any:
    if out and isinstance(value, Fraction):
        return [value.numerator, value.denominator]
    if not out and isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value) and value[1] > 0:
        return Fraction(value[0], value[1])
    raise CodecError("not a fraction")


# the exact JSON types each plain declared type takes (bool is neither int nor float here, as in `_number`)
_PLAIN: dict[Any, frozenset[type]] = {str: frozenset({str}), int: frozenset({int, float}),
                                      float: frozenset({int, float})}


def _tuple_converter(args: tuple[Any, ...]) -> Convert:
    """tuple[X, ...] or tuple[X, Y, ...] of fixed length: a JSON list, decoded back to a tuple."""
    variadic = len(args) == 2 and args[1] is Ellipsis
    if not variadic and all(a in _PLAIN for a in args):  # (op, flops, bytes) and the like: checked in one pass
        allowed = tuple(_PLAIN[a] for a in args)

        def plain(value: Any, out: bool) -> Any:
            if (isinstance(value, tuple if out else list) and len(value) == len(allowed)
                    and all(type(v) in ok for v, ok in zip(value, allowed, strict=True))):
                return list(value) if out else tuple(value)
            raise CodecError("not a tuple of its declared types")
        return plain
    item = _converter(args[0]) if variadic else None
    fixed = [] if variadic else [_converter(a) for a in args]

    def convert(value: Any, out: bool) -> Any:
        if not isinstance(value, tuple if out else list):
            raise CodecError("not a tuple")
        if item is not None:
            items = [item(v, out) for v in value]
        else:
            if len(fixed) != len(value):
                raise CodecError("a tuple of the wrong length")
            items = [c(v, out) for v, c in zip(value, fixed, strict=True)]
        return items if out else tuple(items)
    return convert


def _dict_converter(args: tuple[Any, ...]) -> Convert:
    """str-keyed dicts as JSON objects; any other key type as a list of [key, value] pairs (order kept)."""
    key_type, value_type = args
    key, val = _converter(key_type), _converter(value_type)

    def convert(value: Any, out: bool) -> Any:
        if out:
            if not isinstance(value, dict):
                raise CodecError("not a dict")
            if key_type is str:
                if not all(isinstance(k, str) for k in value):
                    raise CodecError("a dict key is not a string")
                return {k: val(v, out) for k, v in value.items()}
            return [[key(k, out), val(v, out)] for k, v in value.items()]
        if key_type is str:
            if not isinstance(value, dict):
                raise CodecError("not a dict")
            return {k: val(v, out) for k, v in value.items()}
        if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
            raise CodecError("not a list of pairs")
        result = {}
        for k, v in value:
            decoded = key(k, out)
            if decoded in result:
                raise CodecError("a repeated key")
            result[decoded] = val(v, out)
        return result
    return convert


def dumps(traced: Traced) -> bytes:
    """The JSON bytes of a Traced; CodecError when a value does not fit its declared type."""
    data = {"format": FORMAT, "traced": _convert(traced, Traced, True)}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def loads(raw: bytes) -> Traced:
    """A Traced read back from `dumps`' bytes; CodecError for anything else (corrupt, foreign, other format)."""
    try:
        data = json.loads(raw.decode())
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, or nesting deeper than any trace
        raise CodecError(f"not a trace payload ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or set(data) != {"format", "traced"}:
        raise CodecError("another payload format")
    try:
        traced = _convert(data["traced"], Traced, False)
    except (TypeError, RecursionError) as exc:
        raise CodecError(f"not a trace payload ({exc})") from None
    if not isinstance(traced, Traced):
        raise CodecError("not a trace payload")
    return traced
