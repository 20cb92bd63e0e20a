"""An in-process cache of traced assessments: a repeated assessment of the same model and traced job (on other
hardware, with other totals, budgets or prices) re-prices the trace instead of tracing again.

The key is everything that changes the traced graph or the notes made with it: the model spec string (and, for
a path, its size and modification time), the trust and source options, and the workload's batch, shapes,
precision, freeze patterns, generation lengths and which of its totals are given. Model objects
(`nn.Module`) and `example_inputs` are never cached: they can change in place.

Two levels: the traced Assessments of this process (MAX_ENTRIES, least recently used first out), and the traced
data on disk across runs (tracedisk.py: SQLite beside the store, JSON payloads, bounded). A disk hit attaches
the spec resolved again (no build, no trace), so the planner can still build variants: for a source the key and
the stamp decide (torchvision, timm, recsys, diffusers, a bundled hf config) its plain fields come from disk and
its code is resolved on first use (`_LazySpec`: importing torchvision alone costs seconds); for the others
(paths, the HF cache) it is resolved at once and must match the one traced (`spec_fingerprint`), else the job is
traced again. Jobs whose graph comes from code the key cannot see (`module:`, remote code, pickles) stay in
the process. `AFFORD_NO_CACHE=1`, or `key(..., cache=False)`, turns both levels off for a job.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from afford import tracedisk
from afford.assess import Assessment
from afford.counting.profile import PhaseProfile
from afford.sources import ModelKind, ModelSpec, resolve
from afford.tracecodec import Traced
from afford.workload import Workload

HASHED_BYTES = 1 << 20  # model files up to this size are keyed by their content too
MAX_ENTRIES = 32  # traces kept; the least recently used goes first



class Key(NamedTuple):
    """What identifies a traced job (a tuple: hashable, compared field by field)."""

    model: str
    files: tuple[Any, ...]  # the model path's facts (tracecache._file_facts), () for a name
    options: tuple[tuple[str, Any], ...]  # --model-option, sorted
    flags: tuple[bool, ...]  # trust_remote_code, allow_hub, trust_pickle
    shape: tuple[Any, ...]  # the workload's traced shape
    limits: tuple[tuple[str, str], ...]  # AFFORD_MAX_* caps


_entries: OrderedDict[tuple[Any, ...], tuple[Assessment, tuple[str, ...]]] = OrderedDict()


def _file_facts(model: str) -> tuple[Any, ...]:
    """Size, modification time and (for small files) content hash of a model path and of a folder's config.json:
    an edited file is a new key."""
    path = Path(model).expanduser()
    try:
        if not path.exists():
            return ()
        facts: list[Any] = [str(path.resolve())]
        for p in (path, path / "config.json") if path.is_dir() else (path,):
            if p.is_file():
                st = p.stat()
                facts += [st.st_size, st.st_mtime_ns]
                if st.st_size <= HASHED_BYTES:  # configs: their content, whatever the clock's resolution
                    facts.append(hashlib.sha256(p.read_bytes()).hexdigest())
        return tuple(facts)
    except OSError:
        return ()


def key(model: Any, workload: Workload, *, options: dict[str, Any] | None, flags: tuple[bool, ...],
        example_inputs: Any, cache: bool = True) -> Key | None:
    """The cache key of a traced job, or None when it must not be cached (`cache=False`: `--no-cache`)."""
    if not cache or os.environ.get("AFFORD_NO_CACHE") or not isinstance(model, str) or example_inputs is not None:
        return None
    w = workload
    shape = (w.batch_size, w.seq_len, w.image_size, w.precision, w.optimizer, w.freeze, w.allow_longer, w.task,
             w.prompt_tokens, w.generate_tokens, w.wants_training, w.infer_samples is not None,
             w.train_tokens is not None, w.amp_training)
    limits = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AFFORD_MAX_")))  # op/file caps
    return Key(model.strip(), _file_facts(model.strip()), tuple(sorted((options or {}).items())), tuple(flags),
               shape, limits)


def _plain(value: Any) -> str:
    """JSON for the enums of a key or a spec's metadata; anything else has no stable text and is refused."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.value}"
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no stable text")


def _digest(value: Any) -> str | None:
    """A stable hash of plain data, or None when part of it has no stable text (then no disk level)."""
    try:
        text = json.dumps(value, sort_keys=True, default=_plain)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def spec_fingerprint(spec: ModelSpec) -> str | None:
    """A hash of what a resolved spec says about the model (name, kind, sizes, metadata), or None."""
    return _digest([spec.name, spec.source, spec.kind, spec.native_image_size, spec.max_seq_len,
                    spec.default_seq_len, spec.metadata])


def get(k: tuple[Any, ...] | None, workload: Workload, depth: int) -> Assessment | None:
    """A fresh Assessment over the cached trace for this job (no estimate or verdict yet), or None: from this
    process's traces, else from disk (the spec resolved again and attached)."""
    if k is None:
        return None
    if k not in _entries:
        if not isinstance(k, Key) or not _from_disk(k, workload):
            return None
    _entries.move_to_end(k)
    traced, notes = _entries[k]
    return replace(traced, workload=workload, depth=depth, notes=list(notes), estimate=None, decision=None,
                   inference_memory=None)


def _from_disk(k: Key, workload: Workload) -> bool:
    """Load the job's trace from disk into this process's level; False when there is none (or it is stale)."""
    row_key = _digest(list(k)) if _on_disk(k) else None
    hit = tracedisk.load(row_key) if row_key else None
    if hit is None:
        return False
    traced, spec_text = hit
    try:
        kept = json.loads(spec_text)
        fingerprint, plain = kept["fingerprint"], kept["plain"]
    except (ValueError, TypeError, KeyError):
        return False
    spec: ModelSpec | None = _LazySpec.make(k, plain, fingerprint) if isinstance(plain, dict) else None
    if spec is None:
        spec = _resolve(k)
        if spec_fingerprint(spec) != fingerprint:  # the spec resolves to another model now (e.g. a hub revision)
            return False
    trace = replace(traced.trace, forward=traced.trace.infer) if traced.forward_is_infer else traced.trace
    result = Assessment(spec=spec, workload=workload, dims=traced.dims, trace=trace, memory=traced.memory,
                        module_params=traced.module_params)
    _remember(k, result, tuple(traced.notes))
    return True


def _on_disk(k: Key) -> bool:
    """Whether a job may be kept across runs: not when the graph comes from code the key cannot see change
    (`module:` specs, remote code, pickled checkpoints, whose classes live in the user's modules)."""
    if len(k.flags) != 4:  # (trust_remote_code, allow_hub, trust_pickle, forward_only): api.assess
        return False
    trust_remote_code, _, trust_pickle, _ = k.flags
    return not (trust_remote_code or trust_pickle or k.model.startswith("module:"))


def _resolve(k: Key) -> ModelSpec:
    """Resolve the key's model spec as the pipeline does (no example inputs: those are never cached)."""
    trust_remote_code, allow_hub, trust_pickle = k.flags[:3]
    return resolve(k.model, trust_remote_code=trust_remote_code, allow_hub=allow_hub,
                   options=dict(k.options) or None, trust_pickle=trust_pickle)


_PLAIN = ("name", "source", "kind", "native_image_size", "max_seq_len", "default_seq_len", "metadata")
_CODE = ("build", "make_inputs", "loss", "causal_for", "window_for", "decode", "context")
_PINNED = ("torchvision", "timm", "recsys", "diffusers")  # prefixes resolved from afford's code and libraries only


def _plain_spec(k: Key, spec: ModelSpec) -> dict[str, Any] | None:
    """A spec's plain fields, when the key and the stamp alone decide them (a source whose models come from
    afford's data or a library's registry, a bundled hf config) and JSON keeps them exactly; else None."""
    prefix, _, rest = k.model.partition(":")
    if prefix == "hf":
        from afford.sources.hf import catalog_aliases

        pinned = rest.lower() in catalog_aliases()
    else:
        pinned = prefix in _PINNED
    plain = {name: getattr(spec, name) for name in _PLAIN}
    plain["kind"] = spec.kind.value
    try:
        same = pinned and json.loads(json.dumps(plain)) == plain
    except (TypeError, ValueError):
        return None
    return plain if same else None


class _LazySpec(ModelSpec):
    """A spec read back from disk: its plain fields at once, its code (build, inputs, loss, decode, context)
    resolved on first use, so a disk hit that only re-prices never imports the model's library; the planner
    building a variant resolves it then."""

    @classmethod
    def make(cls, k: Key, plain: dict[str, Any], fingerprint: str) -> ModelSpec | None:
        """The lazy spec of a key from its kept plain fields, or None when they do not fit a spec."""
        if set(plain) != set(_PLAIN):
            return None
        spec = cls.__new__(cls)
        try:
            spec.__dict__.update(plain, kind=ModelKind(plain["kind"]), _key=k)
        except ValueError:
            return None
        return spec if spec_fingerprint(spec) == fingerprint else None

    def __getattr__(self, name: str) -> Any:
        """Only called for what is not set yet: the code fields, resolved once."""
        if name not in _CODE or "_key" not in self.__dict__:
            raise AttributeError(name)
        real = _resolve(self.__dict__.pop("_key"))
        self.__dict__.update({field: getattr(real, field) for field in _CODE})
        return self.__dict__[name]


def _remember(k: tuple[Any, ...], result: Assessment, notes: tuple[str, ...]) -> None:
    """Keep a traced Assessment in this process's level, the least recently used out beyond MAX_ENTRIES."""
    _entries[k] = (replace(result, notes=[], estimate=None, decision=None), notes)
    _entries.move_to_end(k)
    while len(_entries) > MAX_ENTRIES:
        _entries.popitem(last=False)


def put(k: tuple[Any, ...] | None, result: Assessment) -> None:
    """Keep a traced Assessment (before pricing) under its key, in this process and on disk."""
    if k is None:
        return
    _remember(k, result, tuple(result.notes))
    row_key = _digest(list(k)) if isinstance(k, Key) and _on_disk(k) else None
    fingerprint = spec_fingerprint(result.spec)
    if row_key is None or fingerprint is None or not isinstance(k, Key):
        return
    spec_text = json.dumps({"fingerprint": fingerprint, "plain": _plain_spec(k, result.spec)})
    t = result.trace
    once = t.forward is t.infer  # forward-only (or frozen) traces share the phase: stored once, shared again
    kept = replace(t, forward=PhaseProfile(name="forward")) if once else t
    tracedisk.save(row_key, Traced(dims=result.dims, trace=kept, memory=result.memory,
                                   module_params=result.module_params, notes=list(result.notes),
                                   forward_is_infer=once), spec_text)


def clear(disk: bool = True) -> None:
    """Forget every cached trace: this process's, and (`disk`) those kept on disk."""
    _entries.clear()
    if disk:
        tracedisk.clear()
