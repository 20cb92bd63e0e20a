"""What the web page may ask of the engine, and how: the model specs and options it accepts (no `module:` spec, no
file, no pickle, no remote code, no Hub look-up), the catalog and the model names it offers, and one worker thread
that runs every assessment under a time limit.

One worker for all traces: the FLOP counter hooks modules process-wide, so two traces must never overlap; a request
for a model already traced re-prices from the trace cache (tracecache.py) in milliseconds.
"""

from __future__ import annotations

import concurrent.futures
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afford.errors import AffordError, InputError

# options a page must not set: they run code from files or the Hub, reach the network or read server files
FORCED_OFF = {"trust_remote_code": False, "trust_pickle": False, "allow_hub": False}
REFUSED = ("trust_remote_code", "trust_pickle", "allow_hub", "hardware_file")
# the file suffixes a spec must not end with (a checkpoint, an export or a config read from the server's disk)
FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".onnx", ".h5", ".hdf5", ".keras", ".json",
                 ".safetensors", ".gguf", ".yaml", ".yml", ".toml", ".py")
MAX_SPEC = 200  # characters of a model spec


class BusyError(AffordError):
    """The server is tracing as many models as it queues: try again in a moment."""


class TimeLimitError(AffordError):
    """An assessment ran past the server's trace time limit."""


@dataclass(frozen=True)
class Limits:
    """The bounds of the server: request body bytes, seconds an assessment may take, requests waiting for it."""

    max_body: int = 64 * 1024
    trace_seconds: float = 120.0
    queue: int = 4

    def __post_init__(self) -> None:
        """An InputError for a limit that is not a positive finite number."""
        import math

        if not (isinstance(self.max_body, int) and 0 < self.max_body <= 1 << 30):
            raise InputError(f"--max-body {self.max_body}: give a number of bytes from 1 to {1 << 30}")
        if not (math.isfinite(self.trace_seconds) and 0 < self.trace_seconds <= 86400):
            raise InputError(f"--trace-seconds {self.trace_seconds:g}: give seconds from 0 to 86400")
        if not (isinstance(self.queue, int) and self.queue >= 1):
            raise InputError(f"queue {self.queue}: give at least 1")


def check_spec(model: Any) -> str:
    """The model spec as the page may send it: a `SOURCE:NAME` or a bare name; an InputError for a `module:` spec
    (it imports code), a path or file (pickles, configs on the server's disk) or anything that is not a string."""
    from afford.sources import registry

    if not isinstance(model, str) or not model.strip():
        raise InputError("model: give a model name, e.g. torchvision:resnet50")
    spec = model.strip()
    if len(spec) > MAX_SPEC:
        raise InputError(f"model: a name of at most {MAX_SPEC} characters")
    prefix, sep, rest = spec.partition(":")
    if sep and prefix.strip().lower() == "module":
        raise InputError("model: module: specs import Python code and are refused from the web page; "
                         "use `afford assess` on the command line")
    known = sep and registry.find(prefix) is not None
    if not known:
        pathlike = spec.startswith((".", "/", "~", "\\")) or "/" in spec or "\\" in spec or (sep and len(prefix) == 1)
        if pathlike or spec.lower().endswith(FILE_SUFFIXES) or Path(spec).exists():
            raise InputError(f"model: {spec[:60]!r} looks like a file; the web page takes model names "
                             "(torchvision:NAME, timm:NAME, hf:ORG/NAME, ...), not files")
    elif rest.lower().endswith(FILE_SUFFIXES) or rest.startswith(("/", ".", "~")):
        raise InputError(f"model: {spec[:60]!r} names a file; the web page takes model names, not files")
    return spec


def check_options(options: Any) -> dict[str, Any]:
    """The job options of a request: a JSON object of JobRequest fields (validated by schema.build); the
    trust and Hub flags forced off, a hardware file refused. Empty values (None, "") are dropped."""
    from afford import schema

    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InputError("options: a JSON object of job options")
    clean = {str(k): v for k, v in options.items() if v is not None and v != ""}
    for key in REFUSED:
        if key in clean and clean[key] not in (False, None):
            raise InputError(f"{key}: not allowed from the web page (it runs code, reads files or reaches the "
                             "network); use the command line")
        clean.pop(key, None)
    for key, value in clean.items():
        if isinstance(value, (dict, list)) and key not in ("freeze", "model_options"):
            raise InputError(f"{key}: give one value, not {type(value).__name__}")
    if isinstance(clean.get("freeze"), list):
        clean["freeze"] = tuple(str(v) for v in clean["freeze"])
    clean.update(FORCED_OFF)
    schema.build("assess", clean, where="options")  # an unknown option is one InputError naming the closest
    return clean


def hardware() -> list[dict[str, Any]]:
    """The catalog's devices as the page lists them: id, name, memory and price."""
    from afford.hardware.catalog import Catalog

    return [{"id": d.id, "name": d.name, "memory_bytes": d.memory_bytes, "price_usd_per_hour": d.price_usd_per_hour}
            for d in Catalog.load().devices.values()]


def model_names(source: str) -> list[str]:
    """Every `SOURCE:NAME` one listable source offers (registry.names); a missing extra is a MissingExtraError."""
    from afford.sources import registry

    return registry.names(source)


def sources() -> list[str]:
    """The sources whose names the page can complete."""
    from afford.sources import registry

    return list(registry.listable())


class Worker:
    """One thread that runs assessments, one at a time, each awaited for at most `limits.trace_seconds`; at most
    `limits.queue` requests wait for it (more are refused with BusyError)."""

    def __init__(self, limits: Limits) -> None:
        """A worker under `limits`; its thread starts with the first assessment."""
        self.limits = limits
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="afford-web-trace")
        self._slots = threading.BoundedSemaphore(limits.queue)

    def assess(self, model: str, options: dict[str, Any]) -> Any:
        """The Assessment of `model` under `options` (both checked by check_spec/check_options); TimeLimitError past
        the limit (the trace then finishes in the background and its result is cached), BusyError when full."""
        import afford

        if not self._slots.acquire(blocking=False):
            raise BusyError(f"the server is busy with {self.limits.queue} requests; try again in a moment")
        try:
            future = self._pool.submit(afford.assess, model, **options)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return future.result(timeout=self.limits.trace_seconds)
        except concurrent.futures.TimeoutError:
            raise TimeLimitError(f"{model}: the assessment took longer than the server's limit of "
                                 f"{self.limits.trace_seconds:g} s (afford web --trace-seconds); it goes on in the "
                                 "background and a retry later may be answered from the cache") from None

    def close(self) -> None:
        """Stop taking work; a running trace finishes in its thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)
