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
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Any

from afford.counting.profile import AttentionCall, EagerBlock, GenerationProfile, OpStat, PhaseProfile, Trace
from afford.estimate.memory import MemoryBreakdown
from afford.sources.base import Dims

FORMAT = 2  # bump when the layout below changes


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
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in ALLOWED:
        return _dataclass(value, hint, out)
    if hint is int or hint is float:  # ints and floats keep their own JSON type: exact both ways
        if _number(value):
            return value
    elif hint is bool or hint is str:
        if isinstance(value, hint):
            return value
    elif hint is type(None):
        if value is None:
            return None
    elif hint is Fraction:
        return _fraction(value, out)
    elif origin is typing.Union or origin is types.UnionType:
        for arg in args:
            try:
                return _convert(value, arg, out)
            except CodecError:
                continue
    elif origin is list:
        if isinstance(value, list):
            return [_convert(v, args[0], out) for v in value]
    elif origin is tuple:
        return _tuple(value, args, out)
    elif origin is dict:
        return _dict(value, args, out)
    raise CodecError(f"{type(value).__name__} does not fit {hint}")


def _dataclass(value: Any, cls: type, out: bool) -> Any:
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if out:
        if type(value) is not cls:
            raise CodecError(f"expected {cls.__name__}, got {type(value).__name__}")
        return {n: _convert(getattr(value, n), hints[n], out) for n in names}
    if not isinstance(value, dict) or list(value) != names:
        raise CodecError(f"not a {cls.__name__}")
    return cls(**{n: _convert(value[n], hints[n], out) for n in names})


def _fraction(value: Any, out: bool) -> Any:
    if out and isinstance(value, Fraction):
        return [value.numerator, value.denominator]
    if not out and isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value) and value[1] > 0:
        return Fraction(value[0], value[1])
    raise CodecError("not a fraction")


def _tuple(value: Any, args: tuple[Any, ...], out: bool) -> Any:
    if not isinstance(value, tuple if out else list):
        raise CodecError("not a tuple")
    kinds = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
    if len(kinds) != len(value):
        raise CodecError("a tuple of the wrong length")
    items = [_convert(v, k, out) for v, k in zip(value, kinds, strict=True)]
    return items if out else tuple(items)


def _dict(value: Any, args: tuple[Any, ...], out: bool) -> Any:
    """str-keyed dicts as JSON objects; any other key type as a list of [key, value] pairs (order kept)."""
    key_type, value_type = args
    if out:
        if not isinstance(value, dict):
            raise CodecError("not a dict")
        if key_type is str:
            if not all(isinstance(k, str) for k in value):
                raise CodecError("a dict key is not a string")
            return {k: _convert(v, value_type, out) for k, v in value.items()}
        return [[_convert(k, key_type, out), _convert(v, value_type, out)] for k, v in value.items()]
    if key_type is str:
        if not isinstance(value, dict):
            raise CodecError("not a dict")
        return {k: _convert(v, value_type, out) for k, v in value.items()}
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise CodecError("not a list of pairs")
    result = {}
    for k, v in value:
        decoded = _convert(k, key_type, out)
        if decoded in result:
            raise CodecError("a repeated key")
        result[decoded] = _convert(v, value_type, out)
    return result


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
