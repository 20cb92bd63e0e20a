"""Bounded reading of the files a user hands afford (configs, job files, JSON indexes): one place for the checks.

Every read goes through `read_text` (or `read_json`): the path must be a regular file (a FIFO, a device such as
/dev/zero, a socket or a directory is refused with one line instead of blocking or reading forever), at most
`max_bytes()` are read (16 MiB unless the environment variable AFFORD_MAX_FILE_MB says otherwise), bytes that
are not UTF-8 are a one-line ConfigError, and JSON that nests too deep (RecursionError) or whose top level is
not an object is a ConfigError too. Files too large to read whole (ONNX models, weights) use `regular_file`
alone.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from afford.errors import ConfigError, InputError

MAX_FILE_MB_ENV = "AFFORD_MAX_FILE_MB"
DEFAULT_MAX_FILE_MB = 16.0

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def max_bytes(scale: float = 1.0) -> int:
    """The most bytes one read may take: AFFORD_MAX_FILE_MB (default 16) MiB, times `scale`."""
    raw = os.environ.get(MAX_FILE_MB_ENV, "").strip()
    mb = DEFAULT_MAX_FILE_MB
    if raw:
        try:
            mb = float(raw)
        except ValueError:
            mb = -1.0
        if not 0 < mb < 1e9:
            raise InputError(f"{MAX_FILE_MB_ENV}={raw[:40]!r}: give a positive number of MiB (default "
                             f"{DEFAULT_MAX_FILE_MB:g})")
    return int(mb * scale * (1 << 20))


def _size(n: int, bytes_word: str = " bytes") -> str:
    """A file size for a message: exact bytes under 1 MiB, else MiB with one decimal."""
    return f"{n:,}{bytes_word}" if n < (1 << 20) else f"{n / (1 << 20):,.1f} MiB"


def kind_of(mode: int) -> str | None:
    """What a file of this st_mode is when it is not a regular file ('a FIFO (named pipe)', ...); None if it is."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def exists(path: Path) -> bool:
    """`path.exists()` that answers False instead of raising (a name too long, a bad character, no permission)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def regular_file(path: Path, what: str = "") -> os.stat_result:
    """The stat of `path` (symlinks followed) if it is a regular file; else a one-line InputError naming it."""
    label = f"{what} {path}" if what else str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{label}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    kind = kind_of(st.st_mode)
    if kind is not None:
        raise InputError(f"{label} is {kind}, not a regular file")
    return st


def read_bytes(path: Path, what: str = "", *, scale: float = 1.0) -> bytes:
    """The bytes of a regular file of at most `max_bytes(scale)`; read through one descriptor, so a file swapped
    for a FIFO between the check and the open, or one that grows while read, is still bounded."""
    label = f"{what} {path}" if what else str(path)
    limit = max_bytes(scale)
    st = regular_file(path, what)
    if st.st_size > limit:
        raise InputError(f"{label} is {_size(st.st_size)}, over the {_size(limit, '-byte')} limit for such files "
                         f"(raise it with {MAX_FILE_MB_ENV}, in MiB)")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"{label}: cannot read it: {exc.strerror or exc}") from None
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise InputError(f"{label} is {kind}, not a regular file")
        chunks: list[bytes] = []
        got = 0
        while got <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise InputError(f"{label}: cannot read it: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if got > limit:
        raise InputError(f"{label} is over the {_size(limit, '-byte')} limit for such files (raise it with "
                         f"{MAX_FILE_MB_ENV}, in MiB)")
    return b"".join(chunks)


def read_text(path: Path, what: str = "", *, scale: float = 1.0) -> str:
    """The UTF-8 text of a regular file of bounded size; bytes that are not UTF-8 are a one-line ConfigError."""
    raw = read_bytes(path, what, scale=scale)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        label = f"{what} {path}" if what else str(path)
        raise ConfigError(f"{label} is not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}): a binary file, "
                          "not a config") from None


def loads_json(text: str, where: str, **kwargs: Any) -> dict[str, Any]:
    """A JSON object from text; malformed JSON, nesting too deep to parse and a top level that is not an object
    are each a one-line ConfigError naming `where`."""
    try:
        data = json.loads(text, **kwargs)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON (truncated or malformed) at line {exc.lineno}, column "
                          f"{exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ConfigError(f"{where}: its JSON nests too deep to read (thousands of levels); not a config") from None
    except ValueError as exc:  # an object_pairs_hook's refusal, a number too long to convert
        raise ConfigError(f"{where} is not valid JSON ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a JSON object, found {type(data).__name__}")
    return data


def read_json(path: Path, what: str = "", *, scale: float = 1.0, **kwargs: Any) -> dict[str, Any]:
    """A JSON object from a regular file of bounded size (see `read_text` and `loads_json`)."""
    return loads_json(read_text(path, what, scale=scale), f"{what} {path}" if what else str(path), **kwargs)


__all__ = ["MAX_FILE_MB_ENV", "exists", "kind_of", "loads_json", "max_bytes", "read_bytes", "read_json",
           "read_text", "regular_file"]


def load_yaml(text: str, where: str) -> Any:
    """A YAML document parsed with PyYAML's safe loader (no Python tags) and aliases refused: `*name` could
    expand a few lines into gigabytes (an anchor bomb), and a file afford reads has nothing to repeat.
    yaml.YAMLError propagates for the caller to name the file and line."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise InputError(f"{where}: line {mark.line + 1}: YAML aliases (*name) are not allowed; write the "
                                 "value out")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=NoAliasLoader)
