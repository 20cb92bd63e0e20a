"""Close-name suggestions for unknown specs (one place, used by every source)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Up to n candidates closest to `name`: difflib ratio, then substring hits; never empty if any exist."""
    pool = list(dict.fromkeys(candidates))
    lowered = {c.lower(): c for c in pool}
    hits = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)]
    if len(hits) < n:
        key = name.lower()
        hits += [c for c in pool if key in c.lower() and c not in hits][: n - len(hits)]
    if not hits:
        hits = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.0)]
    return hits[:n]
