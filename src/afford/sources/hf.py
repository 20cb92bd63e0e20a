"""Hugging Face models from their config alone: the bundled catalog, the local cache, a path, or the hub.

Configs are facts (hidden size, layers, heads...), so a catalog of published config.json files ships with
afford and nothing is downloaded unless the user asks for a hub look-up.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from afford import safeio
from afford.bounds import show
from afford.errors import ConfigError, InputError, TraceError, UnknownModelError
from afford.extras import require
from afford.sources.base import Dims, ModelKind, ModelSpec
from afford.sources.hf_decode import adapter, decode_adapter, output_loss, unpadded_masks
from afford.sources.names import closest, shorten

CATALOG_PACKAGE = "afford.sources"
CATALOG_DIR = "hf_configs"
# Default sequence length when the user gives none: the model's maximum, capped (documented in methodology).
DEFAULT_DECODER_SEQ = 2048
DEFAULT_ENCODER_SEQ = 512
_CROSS_ATTENTION = ("encoder_attn", "EncDecAttention", "crossattention", "cross_attn")


@cache
def catalog() -> dict[str, dict[str, Any]]:
    """The bundled configs by hub id (read once, on first use)."""
    out: dict[str, dict[str, Any]] = {}
    folder = resources.files(CATALOG_PACKAGE).joinpath(CATALOG_DIR)
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text(encoding="utf-8"))
            out[data["id"]] = data
    return out


def catalog_aliases() -> dict[str, str]:
    """Every lowercase name that points at a catalog entry: the hub id, its last part, its aliases."""
    table: dict[str, str] = {}
    for hub_id, data in catalog().items():
        table[hub_id.lower()] = hub_id
        table.setdefault(hub_id.split("/")[-1].lower(), hub_id)
        for alias in data.get("aliases", []):
            table.setdefault(alias.lower(), hub_id)
    return table


def _hf_cache_config(hub_id: str) -> Path | None:
    """config.json of `hub_id` in the local Hugging Face cache, without network access."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    found = try_to_load_from_cache(hub_id, "config.json")
    return Path(found) if isinstance(found, str) else None


def read_config_file(path: Path) -> dict[str, Any]:
    """A config.json as a dict, or a one-line ConfigError naming what is wrong with it."""
    data = safeio.read_json(path)
    if "model_type" not in data:
        raise ConfigError(f"{path} has no 'model_type'; it is not a Hugging Face config.json")
    return data


def _kind(arch: str, model_type: str) -> ModelKind:
    if arch.endswith("ForCausalLM") or (arch.endswith("LMHeadModel") and model_type not in ("t5",)):
        return ModelKind.CAUSAL_LM
    if arch.endswith("ForMaskedLM") or arch.endswith("ForPreTraining"):
        return ModelKind.MASKED_LM
    if arch.endswith("ForConditionalGeneration") or arch.endswith("ForSeq2SeqLM"):
        return ModelKind.SPEECH_SEQ2SEQ if model_type in ("whisper", "speech_to_text") else ModelKind.SEQ2SEQ
    if arch.endswith("ForImageClassification"):
        return ModelKind.IMAGE
    if model_type in ("clip", "siglip", "siglip2"):
        return ModelKind.VISION_TEXT
    return ModelKind.ENCODER


def _config_object(data: dict[str, Any], trust_remote_code: bool, where: str) -> Any:
    transformers = require("transformers")
    CONFIG_MAPPING_NAMES = require("transformers.models.auto.configuration_auto").CONFIG_MAPPING_NAMES

    model_type = data["model_type"]
    if model_type not in CONFIG_MAPPING_NAMES:
        if not trust_remote_code:
            raise InputError(f"{where}: model_type {model_type!r} is not in transformers "
                             f"{transformers.__version__}; its code lives with the model (pass "
                             "--trust-remote-code to run it, only if you trust its author)")
        raise InputError(f"{where}: model_type {model_type!r} needs the model's own code; give the model "
                         "directory (with its .py files) and --trust-remote-code")
    fields = {k: v for k, v in data.items() if k != "model_type"}
    StrictDataclassError = require("huggingface_hub.errors").StrictDataclassError  # typed config fields (v5)

    try:
        return transformers.AutoConfig.for_model(model_type, **fields)
    except (TypeError, ValueError, KeyError, ZeroDivisionError, StrictDataclassError) as exc:
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise ConfigError(f"{where}: config rejected by transformers: {shorten(text, 300)}") from None


def _model_class(cfg: Any, kind_hint: str | None) -> Any:
    transformers = require("transformers")

    archs = getattr(cfg, "architectures", None) or []
    for arch in archs:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            if kind_hint == "seq2seq" and arch.endswith("Model") and getattr(cfg, "is_encoder_decoder", False):
                # a bare encoder-decoder (facebook/bart-base lists BartModel) has no LM head; a seq2seq job runs
                # the generation class, as transformers' AutoModelForSeq2SeqLM does for that config
                try:
                    return transformers.AutoModelForSeq2SeqLM._model_mapping[type(cfg)]
                except KeyError:
                    pass
            return cls
    auto: Any = {"causal-lm": transformers.AutoModelForCausalLM, "masked-lm": transformers.AutoModelForMaskedLM,
                 "seq2seq": transformers.AutoModelForSeq2SeqLM}.get(kind_hint or "", transformers.AutoModel)
    return auto._model_mapping[type(cfg)]


def _shape_facts(cfg: Any) -> dict[str, int]:
    """Layer count and hidden size of the (text) model, for tensor-parallel communication, and its attention and
    key/value heads (GGUF's per-tensor choices depend on their ratio)."""
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    facts: dict[str, int] = {}
    for key, attrs in (("num_layers", ("num_hidden_layers", "n_layer", "num_layers", "n_layers")),
                       ("hidden_size", ("hidden_size", "n_embd", "d_model")),
                       ("num_heads", ("num_attention_heads", "n_head", "num_heads")),
                       ("num_kv_heads", ("num_key_value_heads", "multi_query_group_num", "num_kv_heads"))):
        for attr in attrs:
            value = getattr(text_cfg, attr, None)
            if isinstance(value, int) and value > 0:
                facts[key] = value
                break
    return facts


def _is_moe(cfg: Any) -> bool:
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return any(getattr(text_cfg, a, None) for a in ("num_local_experts", "num_experts", "n_routed_experts"))


def _layer_index(path: str) -> int | None:
    m = re.search(r"\.(?:layers|layer|h|blocks|block)\.(\d+)(?:\.|$)", path)
    return int(m.group(1)) if m else None


def _window_fn(cfg: Any) -> Callable[[str], int | None]:
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    window = getattr(text_cfg, "sliding_window", None)
    if not window:
        return lambda path: None
    layer_types = getattr(text_cfg, "layer_types", None)
    if layer_types:
        def per_layer(path: str) -> int | None:
            i = _layer_index(path)
            if i is None or i >= len(layer_types):
                return None
            return int(window) if "sliding" in str(layer_types[i]) else None
        return per_layer
    if getattr(text_cfg, "use_sliding_window", True) is False:
        return lambda path: None
    return lambda path: int(window)


def _causal_fn(kind: ModelKind) -> Callable[[str], bool]:
    if kind is ModelKind.CAUSAL_LM:
        return lambda path: True
    if kind in (ModelKind.SEQ2SEQ, ModelKind.SPEECH_SEQ2SEQ):
        return lambda path: "decoder" in path and not any(c in path for c in _CROSS_ATTENTION)
    return lambda path: False


def _max_positions(cfg: Any, kind: ModelKind) -> int | None:
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    if kind is ModelKind.SPEECH_SEQ2SEQ:
        return getattr(cfg, "max_target_positions", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
        value = getattr(text_cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _inputs(cfg: Any, kind: ModelKind) -> Callable[[int, Dims, bool], dict[str, Any]]:
    def ids(batch: int, length: int) -> torch.Tensor:
        return torch.zeros(batch, length, dtype=torch.long, device="meta")

    def make(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
        seq = dims.seq_len or 128
        out: dict[str, Any] = {}
        if kind is ModelKind.IMAGE:
            size: int = dims.image_size or int(getattr(cfg, "image_size", 224) or 224)
            out["pixel_values"] = torch.empty(batch, getattr(cfg, "num_channels", 3), size, size, device="meta")
            if train:
                out["labels"] = torch.zeros(batch, dtype=torch.long, device="meta")
            return out
        if kind is ModelKind.VISION_TEXT:
            vision = cfg.vision_config
            size = dims.image_size or vision.image_size
            out["pixel_values"] = torch.empty(batch, getattr(vision, "num_channels", 3), size, size, device="meta")
            out["input_ids"] = ids(batch, seq)
            if train:
                out["return_loss"] = True
            return out
        if kind is ModelKind.SPEECH_SEQ2SEQ:
            frames = 2 * getattr(cfg, "max_source_positions", 1500)
            out["input_features"] = torch.empty(batch, cfg.num_mel_bins, frames, device="meta")
            out["decoder_input_ids"] = ids(batch, seq)
            if train:
                out["labels"] = ids(batch, seq)
            return out
        out["input_ids"] = ids(batch, seq)
        if kind is ModelKind.SEQ2SEQ:
            out["decoder_input_ids"] = ids(batch, seq)
        if train and kind in (ModelKind.CAUSAL_LM, ModelKind.MASKED_LM, ModelKind.SEQ2SEQ):
            out["labels"] = ids(batch, seq)
        return out

    return make


# Architecture sizes a config may give, by field name (at any depth: text_config, vision_config, encoder...),
# with their bounds: positive integers, far above any published model (the largest bundled configs have 126
# layers, hidden 16384, vocabulary 256000), low enough that building and tracing on meta stays quick.
# Expert counts may be 0 (no experts). None means "derive it" (GPT-2's n_inner) and is left to transformers.
_LAYERS, _HIDDEN, _HEADS, _VOCAB, _FFN, _POSITIONS, _EXPERTS = (1000, 1_000_000, 65_536, 10_000_000, 10_000_000,
                                                                100_000_000, 10_000)
SIZE_BOUNDS: dict[str, tuple[int, int]] = {
    **{k: (1, _LAYERS) for k in ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "encoder_layers",
                                 "decoder_layers", "num_decoder_layers")},
    **{k: (1, _HIDDEN) for k in ("hidden_size", "n_embd", "d_model")},
    **{k: (1, _HEADS) for k in ("num_attention_heads", "n_head", "num_heads", "encoder_attention_heads",
                                "decoder_attention_heads", "num_key_value_heads", "head_dim", "d_kv")},
    "vocab_size": (1, _VOCAB),
    **{k: (1, _FFN) for k in ("intermediate_size", "n_inner", "d_ff", "ffn_dim", "encoder_ffn_dim",
                              "decoder_ffn_dim", "moe_intermediate_size")},
    **{k: (1, _POSITIONS) for k in ("max_position_embeddings", "n_positions", "n_ctx", "max_source_positions",
                                    "max_target_positions")},
    **{k: (0, _EXPERTS) for k in ("num_local_experts", "num_experts", "n_routed_experts", "num_experts_per_tok",
                                  "n_shared_experts")},
}


def check_sizes(data: dict[str, Any], where: str, prefix: str = "") -> None:
    """Refuse, before anything is built, a config whose architecture sizes are not integers within
    SIZE_BOUNDS (a list, as some configs give per layer, is checked element by element); one-line ConfigError
    naming the field and its bound."""
    for key, value in data.items():
        bound = SIZE_BOUNDS.get(str(key))
        if bound is None and isinstance(value, dict):
            check_sizes(value, where, f"{prefix}{key}.")
        if bound is None or value is None:
            continue
        low, high = bound
        values = value if isinstance(value, list) and value else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in values):
            what = f"a positive integer of at most {high:,}" if low == 1 else f"an integer from 0 to {high:,}"
            raise ConfigError(f"{where}: config field {prefix}{key} must be {what}, got {show(value)}")


def spec_from_config(data: dict[str, Any], name: str, *, trust_remote_code: bool = False,
                     metadata: dict[str, Any] | None = None, task: str | None = None) -> ModelSpec:
    """A ModelSpec from a config.json dict (its architecture sizes checked first: `check_sizes`)."""
    check_sizes(data, name)
    cfg = _config_object(data, trust_remote_code, name)
    cls = _model_class(cfg, task)
    kind = _kind(cls.__name__, cfg.model_type)
    max_pos = _max_positions(cfg, kind)
    default_cap = DEFAULT_DECODER_SEQ if kind is ModelKind.CAUSAL_LM else DEFAULT_ENCODER_SEQ
    default_seq: int | None = min(max_pos, default_cap) if max_pos else default_cap
    if kind is ModelKind.IMAGE:
        default_seq = max_pos = None
    if kind is ModelKind.VISION_TEXT:
        default_seq = cfg.text_config.max_position_embeddings
        max_pos = default_seq

    def build(dtype: torch.dtype, dims: Dims, device: str = "meta") -> nn.Module:
        transformers = require("transformers")

        transformers.logging.set_verbosity_error()
        kwargs: dict[str, Any] = {"dtype": dtype}
        attempts: list[dict[str, str]] = [{"attn_implementation": "sdpa"}, {"attn_implementation": "eager"}, {}]
        if _is_moe(cfg):
            # transformers' default expert loop reads routing values (data-dependent); grouped_mm does not
            attempts.insert(0, {"attn_implementation": "sdpa", "experts_implementation": "grouped_mm"})
        last: Exception | None = None
        for extra in attempts:
            try:
                with torch.device(device):
                    return cls._from_config(copy.deepcopy(cfg), **kwargs, **extra)
            except (ValueError, TypeError, ImportError) as exc:
                last = exc
        raise TraceError(f"{name}: transformers cannot build {cls.__name__} from this config: {last}")

    image = None
    if kind is ModelKind.IMAGE:
        image = getattr(cfg, "image_size", 224)
    elif kind is ModelKind.VISION_TEXT:
        image = cfg.vision_config.image_size
    return ModelSpec(name=name, source="hf", kind=kind, build=build, make_inputs=_inputs(cfg, kind), loss=output_loss,
                     native_image_size=image, max_seq_len=max_pos, default_seq_len=default_seq,
                     causal_for=_causal_fn(kind), window_for=_window_fn(cfg),
                     decode=adapter(cls, cfg, kind), context=unpadded_masks,
                     metadata={"model_type": cfg.model_type, "architecture": cls.__name__, **_shape_facts(cfg),
                               **_encoder_facts(cfg, kind), **(metadata or {}),
                               "notes": [*(metadata or {}).get("notes", ()), *_auto_map_note(data)]})


def _auto_map_note(data: dict[str, Any]) -> list[str]:
    """A config with a stock model_type that also maps to its repository's own code (`auto_map`): say that the
    code was not run and transformers' stock architecture was counted in its place."""
    auto_map = data.get("auto_map")
    if not auto_map:
        return []
    code = ", ".join(map(str, auto_map.values())) if isinstance(auto_map, dict) else repr(auto_map)
    return [f"the config maps to the repository's own code (auto_map: {shorten(code)}), which was not run: "
            f"transformers' stock {shorten(str(data['model_type']))!r} architecture was counted instead (give the "
            "model directory with its .py files and --trust-remote-code to run that code, only if you trust its "
            "author)"]


def _encoder_facts(cfg: Any, kind: ModelKind) -> dict[str, int]:
    """Encoder positions of a speech encoder-decoder: fixed by the model (Whisper: 30 s of audio, 1500)."""
    if kind is ModelKind.SPEECH_SEQ2SEQ and isinstance(getattr(cfg, "max_source_positions", None), int):
        return {"encoder_positions": int(cfg.max_source_positions)}
    return {}


# A Hugging Face repo id: [ORG/]NAME, each part letters, digits, '_', '-' and '.', starting and ending with a letter,
# digit or '_', at most 96 characters (huggingface_hub's validate_repo_id); '..' and '--' are refused as it does.
_HUB_ID = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?(?:/[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}"
                     r"[A-Za-z0-9_])?)?")


def _check_hub_id(hub_id: str) -> None:
    """Refuse what cannot be a hub id (a path such as ../../etc/passwd, spaces, a URL) before any look-up."""
    if not _HUB_ID.fullmatch(hub_id) or ".." in hub_id or "--" in hub_id:
        raise UnknownModelError(f"hf:{shorten(hub_id)} is not a Hugging Face model id: give hf:ORG/NAME (letters, "
                                "digits, '_', '-' and '.'; no '..' or '--'), or a local path without hf:")


def resolve_hub_id(hub_id: str, *, trust_remote_code: bool = False, allow_hub: bool = False) -> ModelSpec:
    """Catalog first, then the local HF cache, then (only if asked) the hub."""
    table = catalog_aliases()
    key = table.get(hub_id.lower())
    if key is not None:
        entry = catalog()[key]
        meta = {k: entry.get(k) for k in ("published_params", "params_source", "source")}
        return spec_from_config(entry["config"], f"hf:{key}", trust_remote_code=trust_remote_code,
                                metadata=meta, task=entry.get("task"))
    _check_hub_id(hub_id)
    cached = _hf_cache_config(hub_id)
    if cached is not None:
        return spec_from_config(read_config_file(cached), f"hf:{hub_id}", trust_remote_code=trust_remote_code,
                                metadata={"source": str(cached)})
    if allow_hub and not os.environ.get("HF_HUB_OFFLINE"):
        try:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(hub_id, "config.json")
        except Exception as exc:  # noqa: BLE001 - network and auth failures become one line
            raise UnknownModelError(f"hf:{hub_id}: hub look-up failed: {type(exc).__name__}") from None
        return spec_from_config(read_config_file(Path(path)), f"hf:{hub_id}", trust_remote_code=trust_remote_code,
                                metadata={"source": f"https://huggingface.co/{hub_id}"})
    suggestions = closest(hub_id, list(catalog()))
    raise UnknownModelError(f"hf:{shorten(hub_id)} is not in the bundled catalog or the local Hugging Face cache "
                            f"(pass --hub to look it up online); closest: {', '.join(suggestions)}")


def resolve_path(path: Path, *, trust_remote_code: bool = False) -> ModelSpec:
    """A config.json file, or a model directory holding one."""
    config_path = path / "config.json" if path.is_dir() else path
    if not config_path.exists():
        raise ConfigError(f"{path}: no config.json found")
    data = read_config_file(config_path)
    if trust_remote_code and (data["model_type"] not in _known_types() or data.get("auto_map")):
        return _remote_code_spec(config_path.parent, data)
    return spec_from_config(data, str(path), trust_remote_code=trust_remote_code, metadata={"source": str(path)})


def _known_types() -> set[str]:
    CONFIG_MAPPING_NAMES = require("transformers.models.auto.configuration_auto").CONFIG_MAPPING_NAMES

    return set(CONFIG_MAPPING_NAMES)


def _remote_code_spec(folder: Path, data: dict[str, Any]) -> ModelSpec:
    transformers = require("transformers")

    check_sizes(data, str(folder))

    try:
        cfg = transformers.AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
    except Exception as exc:  # noqa: BLE001 - the model's own code may fail in any way
        raise ConfigError(f"{folder}: its remote code failed to load the config: {exc}") from None
    kind = ModelKind.CAUSAL_LM if "causal" in str(getattr(cfg, "auto_map", {})).lower() else ModelKind.ENCODER

    def build(dtype: torch.dtype, dims: Dims, device: str = "meta") -> nn.Module:
        auto = transformers.AutoModelForCausalLM if kind is ModelKind.CAUSAL_LM else transformers.AutoModel
        try:
            with torch.device(device):
                return auto.from_config(cfg, trust_remote_code=True, dtype=dtype)
        except Exception as exc:  # noqa: BLE001 - the model's own code may fail in any way (a missing .py file)
            raise ConfigError(f"{folder}: its remote code failed to build the model: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None

    max_pos = _max_positions(cfg, kind)
    return ModelSpec(name=str(folder), source="hf", kind=kind, build=build, make_inputs=_inputs(cfg, kind),
                     loss=output_loss, max_seq_len=max_pos, default_seq_len=min(max_pos or 2048, 2048),
                     causal_for=_causal_fn(kind), window_for=_window_fn(cfg),
                     decode=decode_adapter(None) if kind is ModelKind.CAUSAL_LM else None,
                     metadata={"model_type": data["model_type"], "remote_code": True})
