"""A checkpoint with a config.json beside it: the Hugging Face assessment of that config, with the checkpoint's
tensors compared against the model the config builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afford.errors import AffordError, ConfigError, InputError
from afford.sources.base import ModelSpec
from afford.sources.checkpoint.headers import inspect
from afford.sources.checkpoint.info import CheckpointInfo, NoArchitecture, PickleRefused


def resolve_path(path: Path, *, trust_pickle: bool, trust_remote_code: bool) -> ModelSpec:
    """A checkpoint with a config.json beside it: the Hugging Face assessment of that config, the checkpoint's
    counts in metadata and compared with the built model's. Without one: NoArchitecture, carrying the counts."""
    from afford.sources import hf

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    config = folder / "config.json"
    if not config.is_file():
        raise NoArchitecture(inspect(path, trust_pickle=trust_pickle))
    try:
        hf.read_config_file(config)
    except ConfigError as exc:
        raise NoArchitecture(inspect(path, trust_pickle=trust_pickle), f"the config.json beside it is not "
                             f"usable: {exc}") from None
    skipped: str | None = None
    info: CheckpointInfo | None = None
    try:
        info = inspect(path, trust_pickle=trust_pickle)
    except PickleRefused as exc:
        if not path.is_dir():
            raise InputError(f"{exc}; or give {folder} (or its config.json) to assess the config alone") from None
        skipped = f"weights not counted: {exc}"
    spec = hf.resolve_path(folder, trust_remote_code=trust_remote_code)
    spec.name = str(path)
    notes: list[str] = list(spec.metadata.get("notes", []))
    if info is None:
        spec.metadata["checkpoint"] = {"path": str(path), "skipped": skipped}
        notes.append(f"checkpoint {skipped}")
    else:
        spec.metadata["checkpoint"] = info.to_dict()
        comparison = compare(spec, info)
        spec.metadata["checkpoint_vs_config"] = comparison
        notes.append(comparison["note"])
        notes.extend(f"checkpoint: {n}" for n in info.notes)
    spec.metadata["notes"] = notes
    return spec


def _align(model_names: set[str], ck_names: list[str]) -> dict[str, str]:
    """Checkpoint name -> model name, trying the names as they are, with the model's top-level prefix added
    (a base-model checkpoint under a task head) and with the checkpoint's first component dropped."""
    prefixes = {""} | {n.split(".", 1)[0] + "." for n in model_names if "." in n}
    best: dict[str, str] = {}
    for prefix in sorted(prefixes):
        for strip in (False, True):
            mapping = {}
            for name in ck_names:
                base = name.split(".", 1)[1] if strip and "." in name else name
                if prefix + base in model_names:
                    mapping[name] = prefix + base
            if len(mapping) > len(best):
                best = mapping
    return best


def compare(spec: ModelSpec, info: CheckpointInfo) -> dict[str, Any]:
    """The checkpoint's tensors against the model the config builds (on meta): matched, tied, missing, extra."""
    import torch

    from afford.units import count

    try:
        module = spec.build(torch.float32, spec.dims(None, None))
    except AffordError as exc:
        return {"checkpoint_params": info.params, "config_params": None,
                "note": f"checkpoint holds {info.params:,} parameters; the config could not be built to compare "
                        f"({exc})"}
    config_params = sum(p.numel() for p in module.parameters())
    state = module.state_dict(keep_vars=True)
    param_ids = {id(p) for p in module.parameters()}
    buffers = sum(t.numel() for t in state.values() if id(t) not in param_ids) if state else 0
    mapping = _align(set(state), [e.name for e in info.entries])
    covered = {id(state[m]) for m in mapping.values()}
    tied = sorted(n for n in state if n not in mapping.values() and id(state[n]) in covered)
    missing = sorted(n for n in state if n not in mapping.values() and id(state[n]) not in covered)
    unexpected = [e for e in info.entries if e.name not in mapping]
    reshaped = [e.name for e in info.entries if e.name in mapping and tuple(state[mapping[e.name]].shape) != e.shape]
    missing_params = sum(state[n].numel() for n in missing)
    out: dict[str, Any] = {
        "checkpoint_params": info.params, "config_params": config_params, "config_buffer_elements": buffers,
        "difference": info.params - config_params, "matched_tensors": len(mapping),
        "tied_not_stored": tied, "missing": missing[:20], "missing_count": len(missing),
        "missing_params": missing_params, "unexpected": [e.name for e in unexpected][:20],
        "unexpected_count": len(unexpected), "unexpected_params": sum(e.numel for e in unexpected),
        "shape_mismatches": reshaped[:20],
    }
    head = (f"checkpoint holds {info.params:,} parameters, the config builds {config_params:,}")
    tied_txt = (f"; {', '.join(tied[:3])} {'is' if len(tied) == 1 else 'are'} tied to a stored tensor (tied "
                "embeddings are stored once)") if tied else ""
    if info.params == config_params and not missing and not unexpected and not reshaped:
        out["note"] = f"{head}: they agree{tied_txt}"
        return out
    parts = []
    if missing:
        parts.append(f"{len(missing)} model tensors absent from the checkpoint ({', '.join(missing[:3])}: "
                     f"{count(missing_params)})")
    if unexpected:
        names = ", ".join(e.name for e in unexpected[:3])
        parts.append(f"{len(unexpected)} checkpoint tensors the model lacks ({names}: "
                     f"{count(out['unexpected_params'])})")
    if reshaped:
        parts.append(f"{len(reshaped)} tensors differ in shape ({', '.join(reshaped[:3])})")
    if not parts and buffers and info.params == config_params + buffers:
        parts.append(f"the checkpoint also stores {buffers:,} buffer elements (running statistics, position ids)")
    out["note"] = (f"{head} ({info.params - config_params:+,}): " + "; ".join(parts or ["tensors differ"])
                   + (tied_txt or "; tied embeddings stored twice (or once) explain a gap of one embedding matrix")
                   + "; the assessment counts the model the config builds")
    return out

