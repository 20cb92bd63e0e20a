"""One exception tree for afford; the CLI turns any AffordError into one line on stderr and exit code 2.

    AffordError
    ├── InputError            bad user input (counts, options, files)
    │   ├── UnknownModelError   a model spec that resolves to nothing, or to several things
    │   ├── ConfigError         a malformed or truncated config file
    │   └── WorkloadError       negative or zero counts, seq-len past the model's maximum
    ├── TraceError            the model cannot run on the meta device (data-dependent ops, ...)
    ├── UnsupportedError      a combination afford does not handle yet
    └── MissingExtraError     an optional library is not installed; names the pip extra (afford/extras.py)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# True while the `afford` command line runs: messages then name options as flags (`--batch-size`), and as the
# Python API's keyword parameters (`batch_size`) otherwise. Set once by the CLI's entry point (`cli_names`).
_CLI_NAMES: ContextVar[bool] = ContextVar("afford_cli_names", default=False)
# Parameters whose flag is not the parameter name with dashes.
_FLAGS = {"allow_hub": "--hub", "model_options": "--model-option", "as_json": "--json"}


def flag(name: str) -> str:
    """The command-line flag of the Python parameter `name` (`batch_size` -> `--batch-size`)."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def opt(name: str) -> str:
    """How an error message names the option `name` (a Python parameter name): `--batch-size` while the
    command line runs, `batch_size` when afford is called from Python. Notes in a result do not use it: they
    are data, and `to_dict()` must equal the CLI's JSON (they name flags, via `flag`)."""
    return flag(name) if _CLI_NAMES.get() else name


@contextmanager
def cli_names() -> Iterator[None]:
    """Within this block, `opt` renders command-line flags (the CLI enters it once, in `main`)."""
    token = _CLI_NAMES.set(True)
    try:
        yield
    finally:
        _CLI_NAMES.reset(token)


class AffordError(Exception):
    """Base of every error afford raises on purpose; its message is one line meant for the user."""


class InputError(AffordError):
    """The user's input is wrong; the message says what would be right."""


class UnknownModelError(InputError):
    """A model spec that names nothing (or several things); the message lists the closest names."""


class ConfigError(InputError):
    """A config file that is malformed, truncated or lacks a required field."""


class WorkloadError(InputError):
    """Workload options that make no sense (zero or negative counts, sequences past the model's maximum)."""


class TraceError(AffordError):
    """The model's forward or backward cannot run on the meta device."""


class UnsupportedError(AffordError):
    """Something afford does not support; the message says what would work instead."""


class MissingExtraError(AffordError):
    """An optional library (transformers, timm, keras, ...) is not installed; the message names the extra that
    brings it: `pip install 'afford[keras]'` (afford/extras.py)."""
