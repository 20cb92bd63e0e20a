"""One exception tree for afford; the CLI turns any AffordError into one line on stderr and exit code 2.

    AffordError
    ├── InputError            bad user input (counts, options, files)
    │   ├── UnknownModelError   a model spec that resolves to nothing, or to several things
    │   ├── ConfigError         a malformed or truncated config file
    │   └── WorkloadError       negative or zero counts, seq-len past the model's maximum
    ├── TraceError            the model cannot run on the meta device (data-dependent ops, ...)
    └── UnsupportedError      a combination afford does not handle yet
"""

from __future__ import annotations


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
