"""Close-name suggestions for unknown specs and options, and names cut short for messages (one place, used by every
source, the catalog, job files and the request schema)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# A name longer than this is cut (with an ellipsis) where a message repeats it.
MESSAGE_NAME_CHARS = 80
# Only this much of a name is compared with the candidates (difflib is quadratic in the lengths).
_COMPARED_CHARS = 200


def shorten(name: str, limit: int = MESSAGE_NAME_CHARS) -> str:
    """`name` for a one-line message: control characters shown escaped, cut to about `limit` characters with
    an ellipsis in the middle and the full length, so a 5,000-character spec does not flood the terminal and a
    long path keeps its file name."""
    text = name if name.isprintable() else name.encode("unicode_escape").decode("ascii")
    if len(text) <= limit:
        return text
    tail = (limit - 1) // 3
    return f"{text[: limit - 1 - tail]}\u2026{text[-tail:]} ({len(name):,} characters)"


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


def did_you_mean(word: str, choices: Iterable[str], tail: str = "") -> str:
    """`; did you mean X{tail}?` when `word` is close to one of `choices` (case-insensitive), else nothing: unlike
    `closest`, it stays silent rather than suggest something unrelated."""
    lowered = {c.lower(): c for c in choices}
    near = difflib.get_close_matches(word.lower()[:_COMPARED_CHARS], list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[near[0]]}{tail}?" if near else ""
