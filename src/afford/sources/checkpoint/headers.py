"""Reading checkpoint files: safetensors headers (8 + N bytes, never the data), sharded indexes, pickles (only
if trusted, on meta or memory-mapped), model directories, and `sniff` for what a file holds by its first bytes."""

from __future__ import annotations

import json
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

from afford import safeio
from afford.errors import ConfigError, InputError
from afford.sources.checkpoint.info import (
    DTYPE_BITS,
    TRUST_HINT,
    CheckpointInfo,
    NotSafetensors,
    PickleRefused,
    TensorEntry,
)
from afford.sources.names import shorten

# A sharded index lists every tensor name (a large MoE's index holds ~10 MB of names), so it may be larger than a
# config: it may take this many times the AFFORD_MAX_FILE_MB cap (safeio).
INDEX_SIZE_SCALE = 4.0
# The reference implementation refuses headers over 100 MB (safetensors/src/tensor.rs, MAX_HEADER_SIZE).
MAX_HEADER_SIZE = 100_000_000
# torch dtype names -> the safetensors spelling, so pickles and safetensors report dtypes alike.
_TORCH_TO_ST = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "int32": "I32",
    "int16": "I16", "int8": "I8", "uint8": "U8", "uint16": "U16", "uint32": "U32", "uint64": "U64", "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2fnuz": "F8_E5M2FNUZ", "float8_e8m0fnu": "F8_E8M0", "complex64": "C64",
}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# file magics of formats that are not safetensors, for a message that names what the file is
_MAGICS = ((b"GGUF", "a GGUF file (llama.cpp)"), (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras .h5: give it as .h5)"),
           (b"\x93NUMPY", "a NumPy .npy array"))
# keys under which training frameworks nest the weights (PyTorch Lightning, timm, fairseq, DeepSpeed, ...)
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "params", "weights",
                "model_ema", "ema")


# --- safetensors headers ----------------------------------------------------------------------------------

def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _what_else(head: bytes) -> str | None:
    """What a file that is not safetensors is, from its first bytes: 'pickle', 'zip' or a format name."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO opcode, pickle protocols 2..5
        return "pickle"
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return None


def sniff(path: Path) -> str | None:
    """What a regular file holds by its first bytes, whatever its name: 'safetensors', 'zip', 'pickle' (protocol
    2..5) or another weights format's name; None for anything else (a config, text) or a file not readable."""
    try:
        size = safeio.regular_file(path).st_size
        with open(path, "rb") as f:
            head = f.read(9)
    except (InputError, OSError):
        return None
    if len(head) == 9 and head[8:9] == b"{" and 0 < struct.unpack("<Q", head[:8])[0] <= min(MAX_HEADER_SIZE, size - 8):
        return "safetensors"
    return _what_else(head)


def _read_safetensors(path: Path) -> tuple[list[TensorEntry], dict[str, str]]:
    """Tensors and metadata of one safetensors file, reading 8 + N bytes; ConfigError on anything malformed."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            sane = 0 < n <= min(MAX_HEADER_SIZE, size - 8)
            raw = f.read(n) if sane else b""
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not sane or not raw.startswith(b"{"):
        other = _what_else(head)
        if other in ("zip", "pickle"):
            _refuse_pickle(path, _pickle_kind(path, other), zipped=other == "zip")
        if other is not None:
            raise ConfigError(f"{path} is {other}, not safetensors")
        if len(head) < 8:
            raise NotSafetensors(f"{path} is {size} bytes, too short for a safetensors header (8-byte length first)")
        if n > MAX_HEADER_SIZE or n <= 0:
            raise NotSafetensors(f"{path} is not safetensors: its first 8 bytes give a header of {n:,} bytes (the "
                                 f"format allows 1..{MAX_HEADER_SIZE:,})")
        if n > size - 8:
            raise NotSafetensors(f"{path} is truncated or not safetensors: the header claims {n:,} bytes, the file "
                                 f"holds {size:,}")
        raise NotSafetensors(f"{path} is not safetensors: the header does not start with '{{'")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: the safetensors header is not valid JSON ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError(f"{path}: the safetensors header nests too deep to read; not a checkpoint") from None
    if not isinstance(header, dict):
        raise ConfigError(f"{path}: the safetensors header must be a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ConfigError(f"{path}: __metadata__ must map strings to strings")
    spans: list[tuple[int, int, TensorEntry]] = []
    for name, desc in header.items():
        spans.append(_entry(path, name, desc))
    spans.sort(key=lambda s: (s[0], s[1]))
    end = 0
    for begin, stop, entry in spans:
        if begin != end:
            what = "overlaps the tensor before it" if begin < end else f"leaves a gap of {begin - end:,} bytes"
            raise ConfigError(f"{path}: tensor {entry.name!r} starts at byte {begin:,}, which {what} (offsets "
                              "must be contiguous from 0)")
        end = stop
    data = size - 8 - n
    if end > data:
        raise ConfigError(f"{path} is truncated: its header describes {end:,} bytes of tensor data, the file holds "
                          f"{data:,} after the header")
    if end < data:
        raise ConfigError(f"{path}: {data - end:,} bytes follow the last tensor the header describes (corrupt or "
                          "not safetensors)")
    return [s[2] for s in spans], meta


def _entry(path: Path, name: str, desc: Any) -> tuple[int, int, TensorEntry]:
    """One header record checked: a known dtype, a shape of non-negative ints, offsets matching shape x dtype."""
    if not isinstance(desc, dict) or set(desc) - {"dtype", "shape", "data_offsets"}:
        raise ConfigError(f"{path}: tensor {name!r} must have exactly dtype, shape and data_offsets")
    dtype, shape, offsets = desc.get("dtype"), desc.get("shape"), desc.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise ConfigError(f"{path}: tensor {name!r} has unknown dtype {dtype!r} (known: {', '.join(DTYPE_BITS)})")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ConfigError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise ConfigError(f"{path}: tensor {name!r} has invalid data_offsets {offsets!r}")
    entry = TensorEntry(name, dtype, tuple(shape))
    bits = entry.numel * DTYPE_BITS[dtype]
    if bits % 8:
        raise ConfigError(f"{path}: tensor {name!r} ({dtype} x {entry.numel:,}) does not fill whole bytes")
    if offsets[1] - offsets[0] != bits // 8:
        raise ConfigError(f"{path}: tensor {name!r} spans {offsets[1] - offsets[0]:,} bytes, but {dtype} x shape "
                          f"{list(shape)} needs {bits // 8:,}")
    return offsets[0], offsets[1], entry


# --- pickles ----------------------------------------------------------------------------------------------

def _pickle_kind(path: Path, sniffed: str) -> str:
    """'PyTorch zip archive' or 'raw pickle'; a zip without data.pkl is no PyTorch checkpoint."""
    if sniffed != "zip":
        return "raw pickle"
    try:
        with zipfile.ZipFile(path) as z:  # reads the central directory only
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        raise ConfigError(f"{path} looks like a zip archive but its directory cannot be read (truncated?)") from None
    if not any(n.endswith("data.pkl") for n in names):
        raise ConfigError(f"{path} is a zip archive without data.pkl: not a PyTorch checkpoint")
    return "PyTorch zip archive (torch.save)"


def _refuse_pickle(path: Path, kind: str, zipped: bool = False) -> None:
    named = " named .safetensors" if path.name.lower().endswith(".safetensors") else ""
    raise PickleRefused(f"{path} is a pickle{named} ({kind}); {TRUST_HINT}", zipped)


def _tensors_in(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Every tensor in a nest of dicts, lists and tuples, by dotted name."""
    import torch

    if isinstance(obj, torch.Tensor):
        return {prefix or "tensor": obj}
    out: dict[str, Any] = {}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        out.update(_tensors_in(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _state_dict(obj: Any) -> tuple[dict[str, Any], str | None]:
    """The weights of a loaded checkpoint and the key they sat under: a flat state dict, one nested under a
    known key ({"state_dict": ...}, {"model": ...}), else every tensor outside optimizer state."""
    import torch

    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), None
    if isinstance(obj, dict):
        for key in _NESTED_KEYS:
            if key in obj:
                inner, _ = _state_dict(obj[key])
                if inner:
                    return inner, key
        kept = {k: v for k, v in obj.items() if "optim" not in str(k).lower() and "scheduler" not in str(k).lower()}
        return _tensors_in(kept), "*"
    return _tensors_in(obj), "*"


def _load_pickle(path: Path, zipped: bool) -> tuple[list[TensorEntry], dict[str, Any]]:
    """Entries of a trusted pickle, loaded with weights_only=True and no tensor data materialised.

    A zip archive is memory-mapped on the CPU (mmap=True: storages map the file, no byte of data is read), so
    tensors saved under two names from one storage (tied embeddings) share it and count once; a meta load would
    give each its own storage. A legacy (pre-1.6) file cannot be mapped and is loaded onto meta."""
    import pickle

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if zipped:
                obj = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
            else:
                obj = torch.load(path, map_location="meta", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path} holds objects other than tensors and plain containers; torch.load("
                         "weights_only=True) refused it and afford does not unpickle arbitrary objects") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: torch.load cannot read it ({first})") from None
    tensors, key = _state_dict(obj)
    if not tensors:
        raise InputError(f"{path} holds no tensors")
    seen: set[tuple[Any, ...]] = set()
    entries: list[TensorEntry] = []
    shared = 0
    for name, t in tensors.items():
        where = t.untyped_storage().data_ptr() if t.device.type == "cpu" else id(t)
        ident = (where, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if ident in seen:  # tied weights: one storage saved under two names counts once
            shared += 1
            continue
        seen.add(ident)
        dname = str(t.dtype).removeprefix("torch.")
        entries.append(TensorEntry(name, _TORCH_TO_ST.get(dname, dname.upper()), tuple(int(d) for d in t.shape)))
    meta: dict[str, Any] = {"loaded": "memory-mapped, no data read" if zipped else "meta device (legacy format)"}
    if key is not None:
        meta["state_dict_key"] = key
    if shared:
        meta["shared_tensors_counted_once"] = shared
    return entries, meta


# --- files, indexes and directories -----------------------------------------------------------------------

def _file(path: Path) -> dict[str, Any]:
    return {"path": str(path), "bytes": path.stat().st_size}


def _one(path: Path, trust_pickle: bool) -> tuple[list[TensorEntry], dict[str, Any], str]:
    """One weight file, by content: safetensors when its header parses, else a pickle (read only if trusted).
    A file named like a pickle whose bytes are neither safetensors nor a known format is taken as a pickle."""
    safeio.regular_file(path)  # a FIFO or a device named .safetensors would block the read below
    try:
        entries, st_meta = _read_safetensors(path)
        return entries, dict(st_meta), "safetensors"
    except PickleRefused as exc:
        if not trust_pickle:
            raise
        zipped = exc.zipped
    except NotSafetensors:
        if not path.name.lower().endswith(PICKLE_SUFFIXES):
            raise
        if not trust_pickle:
            _refuse_pickle(path, "by its name; its bytes are not safetensors")
        zipped = False
    entries, meta = _load_pickle(path, zipped)
    return entries, meta, "pytorch-pickle"


def _index(path: Path, trust_pickle: bool) -> CheckpointInfo:
    """A sharded checkpoint's index (`*.safetensors.index.json`, `pytorch_model.bin.index.json`): every shard
    read, every weight_map entry found in the shard it names."""
    data = safeio.read_json(path, scale=INDEX_SIZE_SCALE)
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ConfigError(f"{path} has no weight_map of tensor name -> shard file; it is not a sharded index")
    entries: list[TensorEntry] = []
    files = [_file(path)]
    fmt = "pytorch-pickle"
    held: dict[str, set[str]] = {}
    shard_meta: dict[str, Any] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = _inside(path, shard)
        if not shard_path.is_file():
            raise ConfigError(f"{path} names shard {shard}, which is missing")
        got, meta, fmt = _one(shard_path, trust_pickle)
        entries.extend(got)
        files.append(_file(shard_path))
        held[shard] = {e.name for e in got}
        shard_meta = shard_meta or meta
    for name, shard in weight_map.items():
        if name not in held[shard]:
            raise ConfigError(f"{path} maps tensor {name!r} to {shard}, which does not hold it")
    info = CheckpointInfo(str(path), f"{fmt}-sharded", files, entries,
                          metadata={**shard_meta, **(data.get("metadata") or {})})
    names = [e.name for e in entries]
    extra = len(names) - len(set(weight_map))
    if len(set(names)) != len(names):
        info.notes.append(f"{len(names) - len(set(names))} tensor names appear in more than one shard")
    elif extra:
        info.notes.append(f"the shards hold {extra} tensors the index does not list (counted)")
    declared = data.get("metadata") or {}
    for key, found, unit in (("total_size", info.weight_bytes, "bytes"), ("total_parameters", info.params, "params")):
        if isinstance(declared.get(key), int) and declared[key] != found:
            info.notes.append(f"the index's {key} ({declared[key]:,} {unit}) differs from the shards' {found:,}")
    return info


def _inside(index: Path, shard: str) -> Path:
    """The shard file an index names, which must lie in the index's own folder (no absolute path, no '..')."""
    base = index.parent.resolve()
    target = (base / shard).resolve()
    if Path(shard).is_absolute() or not target.is_relative_to(base):
        raise ConfigError(f"{index} names shard {shorten(shard)!r} outside its own folder; shards must lie in the "
                          "index's folder")
    return target


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a model directory, in Hugging Face's order of preference: a safetensors index, the
    safetensors files, a pickle index, pytorch_model.bin. Empty when it holds none."""
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        preferred = [p for p in indexes if p.name == "model.safetensors.index.json"]
        return preferred or indexes
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    found = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if found:
        return found
    for name in ("pytorch_model.bin.index.json", "pytorch_model.bin"):
        if (folder / name).is_file():
            return [folder / name]
    return []


def inspect(path: Path, *, trust_pickle: bool = False) -> CheckpointInfo:
    """What a checkpoint holds: a `.safetensors` file, a sharded index, a pickle (only if trusted) or a model
    directory. Safetensors are read from their headers alone."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        found = weight_files(path)
        if not found:
            raise InputError(f"{path} holds no weight files (*.safetensors, *.safetensors.index.json, "
                             "pytorch_model.bin)")
        if len(found) > 1 and found[0].name.endswith(".index.json"):
            raise InputError(f"{path} holds several indexes ({', '.join(p.name for p in found)}); give one of them")
        if len(found) == 1:
            info = inspect(found[0], trust_pickle=trust_pickle)
            info.path = str(path)
            return info
        parts = [inspect(p, trust_pickle=trust_pickle) for p in found]
        return CheckpointInfo(str(path), parts[0].format, [f for p in parts for f in p.files],
                              [e for p in parts for e in p.entries], metadata=parts[0].metadata,
                              notes=[n for p in parts for n in p.notes])
    if path.name.lower().endswith(".index.json"):
        return _index(path, trust_pickle)
    entries, meta, fmt = _one(path, trust_pickle)
    return CheckpointInfo(str(path), fmt, [_file(path)], entries, metadata=meta)


