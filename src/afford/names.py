"""Close-name suggestions for unknown specs, and names cut short for messages (one place, used by every source)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# A name longer than this is cut (with an ellipsis) where a message repeats it.
MESSAGE_NAME_CHARS = 80
# Only this much of a name is compared with the candidates (difflib is quadratic in the lengths).
_COMPARED_CHARS = 200


def shorten(name: str, limit: int = MESSAGE_NAME_CHARS) -> str:
    """`name` for a one-line message: control characters shown escaped, cut to about `limit` characters with
    an ellipsis and the full length, so a 5,000-character spec does not flood the terminal."""
    text = name if name.isprintable() else name.encode("unicode_escape").decode("ascii")
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}\u2026 ({len(name):,} characters)"


def closest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Up to n candidates closest to `name`: difflib ratio, then substring hits; never empty if any exist."""
    name = name[:_COMPARED_CHARS]
    pool = list(dict.fromkeys(candidates))
    lowered = {c.lower(): c for c in pool}
    hits = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)]
    if len(hits) < n:
        key = name.lower()
        hits += [c for c in pool if key in c.lower() and c not in hits][: n - len(hits)]
    if not hits:
        hits = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.0)]
    return hits[:n]
