"""The sources' name helpers, which live in `afford.names` (a base module: the catalog, job files and the schema
use them without importing the sources, and so torch)."""

from afford.names import MESSAGE_NAME_CHARS, closest, did_you_mean, shorten

__all__ = ["MESSAGE_NAME_CHARS", "closest", "did_you_mean", "shorten"]
