"""Source options (`--model-option KEY=VALUE`): sizes of built-in specs such as `recsys:dlrm`, checked strictly."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from afford.errors import InputError


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """`["rows=1000000", "dim=64"]` -> `{"rows": "1000000", "dim": "64"}`; a pair without `=` is an error."""
    out: dict[str, str] = {}
    for raw in pairs:
        key, sep, value = str(raw).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InputError(f"--model-option {raw!r} must look like KEY=VALUE")
        out[key] = value.strip()
    return out


def _convert(key: str, value: Any, kind: type, source: str) -> Any:
    if (isinstance(value, kind) and not isinstance(value, bool)) or (kind is bool and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            number = float(text.replace("_", ""))
            if number != int(number):
                raise ValueError(text)
            return int(number)
        if kind is float:
            return float(text)
        if kind is tuple:
            return tuple(int(float(x)) for x in text.replace(";", ",").replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise InputError(f"{source}: option {key}={value!r} must be {kind.__name__}") from None
    return text


def take(options: Mapping[str, Any] | None, schema: Mapping[str, tuple[type, Any]], source: str) -> dict[str, Any]:
    """Options merged over the defaults of `schema` ({key: (type, default)}); an unknown key or a value of the
    wrong type is an InputError naming the key and the valid ones."""
    given = dict(options or {})
    unknown = sorted(set(given) - set(schema))
    if unknown:
        valid = ", ".join(sorted(schema)) or "none"
        raise InputError(f"{source} has no option {unknown[0]!r}; valid options: {valid}")
    return {k: _convert(k, given[k], kind, source) if k in given else default
            for k, (kind, default) in schema.items()}


def refuse(options: Mapping[str, Any] | None, source: str) -> None:
    """Sources that take no options say so instead of ignoring them."""
    if options:
        raise InputError(f"{source} takes no --model-option (got {', '.join(sorted(options))})")
