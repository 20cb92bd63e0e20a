"""Recommender systems built in (`recsys:dlrm`, `recsys:dlrm-dcnv2-mlperf`, `recsys:two-tower`), in plain PyTorch
and sized by `--model-option KEY=VALUE`; defaults and their sources are in recsys_presets.json, derivations in
docs/recsys.md.

Tables are `nn.EmbeddingBag(mode="sum", sparse=True)`: a training step's table gradient holds the rows the batch
looked up (PyTorch's sparse gradient: values and indices), never a table-sized tensor. TorchRec/FBGEMM fuse the
optimizer into backward and keep not even that, so the measured gradient is an upper bound; `-O sparse=false`
gives PyTorch's dense table gradients instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from afford.errors import InputError, UnknownModelError
from afford.sources.base import Dims, ModelKind, ModelSpec
from afford.sources.building import build_on_meta
from afford.sources.names import closest, shorten
from afford.sources.options import take

# the type of every option a preset may set; the defaults come from the preset
TYPES: dict[str, type] = {
    "tables": int, "rows": tuple, "dim": int, "dense": int, "bottom": tuple, "top": tuple, "hot": tuple,
    "interaction": str, "cross_layers": int, "low_rank": int, "sparse": bool,
    "user_tables": int, "item_tables": int, "tower": tuple, "loss": str, "negatives": int,
}
# A sanity bound on table parameters: 100x the largest published recommender (Mudigere et al. 2022, "Software-
# Hardware Co-design for Fast and Scalable Training of Deep Learning Recommendation Models", 12 trillion).
MAX_TABLE_PARAMS = 10**15

SPARSE_NOTE = ("embedding tables train with sparse gradients (nn.EmbeddingBag sparse=True): gradient memory and "
               "traffic count the rows a batch looks up, not the tables; TorchRec/FBGEMM fuse the optimizer into "
               "backward and hold even less (-O sparse=false for dense table gradients)")

LAYOUT_NOTE = ("afford's layouts treat embedding tables as dense parameters (dp replicates them, zero/fsdp shard and "
               "all-gather them every step); TorchRec shards tables model-parallel and exchanges pooled embeddings "
               "with all-to-all, which afford does not model yet (docs/recsys.md)")


@cache
def presets() -> dict[str, dict[str, Any]]:
    """recsys_presets.json: each preset's family, sources and default options."""
    text = resources.files("afford.sources").joinpath("recsys_presets.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def list_names() -> list[str]:
    return sorted(presets())


def schema(name: str) -> dict[str, tuple[type, Any]]:
    """The option schema of a preset: {key: (type, default)}."""
    return {k: (TYPES[k], tuple(v) if isinstance(v, list) else v) for k, v in presets()[name]["options"].items()}


# ---- models ---------------------------------------------------------------------------------------------------


def mlp(width: int, widths: Sequence[int], last_relu: bool) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (and after the last one if `last_relu`)."""
    layers: list[nn.Module] = []
    for i, w in enumerate(widths):
        layers.append(nn.Linear(width, w))
        width = w
        if last_relu or i < len(widths) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def tables(rows: Sequence[int], dim: int, sparse: bool) -> nn.ModuleList:
    """One sum-pooled embedding bag per sparse feature (TorchRec's EmbeddingBagCollection, one table each)."""
    return nn.ModuleList(nn.EmbeddingBag(r, dim, mode="sum", sparse=sparse) for r in rows)


class DotInteraction(nn.Module):
    """DLRM's interaction: the dot product of every pair of the F + 1 vectors (bottom-MLP output and F pooled
    embeddings), upper triangle without the diagonal, after the dense vector (Naumov et al. 2019, sec. 2;
    TorchRec InteractionArch)."""

    def __init__(self, vectors: int) -> None:
        super().__init__()
        pairs = torch.triu_indices(vectors, vectors, offset=1)
        self.pair_rows: torch.Tensor
        self.pair_cols: torch.Tensor
        self.register_buffer("pair_rows", pairs[0], persistent=False)
        self.register_buffer("pair_cols", pairs[1], persistent=False)

    def forward(self, dense: torch.Tensor, pooled: list[torch.Tensor]) -> torch.Tensor:
        combined = torch.stack([dense, *pooled], dim=1)  # (B, F + 1, D)
        gram = torch.bmm(combined, combined.transpose(1, 2))
        return torch.cat([dense, gram[:, self.pair_rows, self.pair_cols]], dim=1)


class CrossInteraction(nn.Module):
    """DCNv2's low-rank cross network over the concatenated F + 1 vectors:
    x_{l+1} = x_0 * (W_l (V_l x_l) + b_l) + x_l (Wang et al. 2021, eq. 2 with the low-rank W = U V of sec. 3.2;
    TorchRec LowRankCrossNet: V_l is rank x width, W_l width x rank, b_l width)."""

    def __init__(self, width: int, layers: int, rank: int) -> None:
        super().__init__()
        self.down = nn.ModuleList(nn.Linear(width, rank, bias=False) for _ in range(layers))
        self.up = nn.ModuleList(nn.Linear(rank, width) for _ in range(layers))

    def forward(self, dense: torch.Tensor, pooled: list[torch.Tensor]) -> torch.Tensor:
        x0 = x = torch.cat([dense, *pooled], dim=1)
        for down, up in zip(self.down, self.up, strict=True):
            x = x0 * up(down(x)) + x
        return x


class DLRM(nn.Module):
    """Embedding bags, a bottom MLP over the dense features, a dot or DCNv2 interaction and a top MLP to one
    click logit per impression."""

    def __init__(self, rows: Sequence[int], dim: int, dense: int, bottom: Sequence[int], top: Sequence[int],
                 interaction: str, cross_layers: int, low_rank: int, sparse: bool) -> None:
        super().__init__()
        self.embeddings = tables(rows, dim, sparse)
        self.bottom = mlp(dense, bottom, last_relu=True)
        vectors = len(rows) + 1
        self.interaction: nn.Module
        if interaction == "dot":
            self.interaction = DotInteraction(vectors)
            width = dim + vectors * (vectors - 1) // 2
        else:
            self.interaction = CrossInteraction(vectors * dim, cross_layers, low_rank)
            width = vectors * dim
        self.top = mlp(width, top, last_relu=False)

    def forward(self, dense: torch.Tensor, indices: tuple[torch.Tensor, ...],
                offsets: tuple[torch.Tensor, ...]) -> torch.Tensor:
        pooled = [table(i, o) for table, i, o in zip(self.embeddings, indices, offsets, strict=True)]
        return self.top(self.interaction(self.bottom(dense), pooled))


class Tower(nn.Module):
    """One side of a two-tower model: pooled embeddings and dense features through an MLP, L2-normalised."""

    def __init__(self, rows: Sequence[int], dim: int, dense: int, widths: Sequence[int], sparse: bool) -> None:
        super().__init__()
        self.embeddings = tables(rows, dim, sparse)
        self.mlp = mlp(len(rows) * dim + dense, widths, last_relu=False)

    def forward(self, dense: torch.Tensor | None, indices: tuple[torch.Tensor, ...],
                offsets: tuple[torch.Tensor, ...]) -> torch.Tensor:
        parts = [table(i, o) for table, i, o in zip(self.embeddings, indices, offsets, strict=True)]
        if dense is not None:
            parts.append(dense)
        return F.normalize(self.mlp(torch.cat(parts, dim=1)), dim=-1)


class TwoTower(nn.Module):
    """User and item towers; forward returns (score per pair, user embeddings, item embeddings[, negatives'])."""

    def __init__(self, user_rows: Sequence[int], item_rows: Sequence[int], dim: int, dense: int,
                 tower: Sequence[int], sparse: bool) -> None:
        super().__init__()
        self.user = Tower(user_rows, dim, dense, tower, sparse)
        self.item = Tower(item_rows, dim, dense, tower, sparse)

    def forward(self, user_indices: tuple[torch.Tensor, ...], user_offsets: tuple[torch.Tensor, ...],
                item_indices: tuple[torch.Tensor, ...], item_offsets: tuple[torch.Tensor, ...],
                user_dense: torch.Tensor | None = None, item_dense: torch.Tensor | None = None,
                neg_indices: tuple[torch.Tensor, ...] | None = None,
                neg_offsets: tuple[torch.Tensor, ...] | None = None,
                neg_dense: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        u = self.user(user_dense, user_indices, user_offsets)
        i = self.item(item_dense, item_indices, item_offsets)
        score = torch.bmm(u.unsqueeze(1), i.unsqueeze(2)).flatten()  # a matmul, so its 2d FLOPs count
        if neg_indices is None or neg_offsets is None:
            return score, u, i
        return score, u, i, self.item(neg_dense, neg_indices, neg_offsets)


# ---- options ----------------------------------------------------------------------------------------------------


def _per_table(values: tuple[int, ...], count: int, key: str, source: str) -> list[int]:
    """One number for every table, or exactly one per table."""
    if len(values) == 1:
        return [values[0]] * count
    if len(values) != count:
        raise InputError(f"{source}: {key} has {len(values)} values for {count} tables; give one number or {count}")
    return list(values)


def _positive(source: str, **values: int | Sequence[int]) -> None:
    for key, value in values.items():
        items = list(value) if isinstance(value, Sequence) else [value]
        if not items or any(v < 1 for v in items):
            raise InputError(f"{source}: {key} must be positive (got {value!r})")


def _table_count(opts: dict[str, Any], given: Mapping[str, Any], key: str, lists: Sequence[str]) -> int:
    """The table count: as given, else the length of the per-table lists the user gave (rows, hot)."""
    if key in given:
        return int(opts[key])
    lengths = {len(opts[k]) for k in lists if k in given and len(opts[k]) > 1}
    return lengths.pop() if len(lengths) == 1 else int(opts[key])


def _choice(source: str, key: str, value: str, valid: Sequence[str]) -> str:
    value = str(value).strip().lower()
    if value not in valid:
        raise InputError(f"{source}: {key}={value!r} is not one of {', '.join(valid)}")
    return value


def dlrm_config(opts: dict[str, Any], given: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Checked DLRM sizes: per-table rows and multi-hot sizes, MLP widths that fit the interaction."""
    count = _table_count(opts, given, "tables", ("rows", "hot"))
    _positive(source, tables=count, dim=opts["dim"], dense=opts["dense"], bottom=opts["bottom"], top=opts["top"],
              cross_layers=opts["cross_layers"], low_rank=opts["low_rank"])
    rows = _per_table(opts["rows"], count, "rows", source)
    hot = _per_table(opts["hot"], count, "hot", source)
    _positive(source, rows=rows, hot=hot)
    interaction = _choice(source, "interaction", opts["interaction"], ("dot", "dcn"))
    if opts["bottom"][-1] != opts["dim"]:
        raise InputError(f"{source}: the bottom MLP must end at dim={opts['dim']} to meet the embeddings "
                         f"(bottom={','.join(map(str, opts['bottom']))})")
    if opts["top"][-1] != 1:
        raise InputError(f"{source}: the top MLP must end at 1 (one click logit), got top="
                         f"{','.join(map(str, opts['top']))}")
    if sum(rows) * opts["dim"] > MAX_TABLE_PARAMS:
        raise InputError(f"{source}: {sum(rows) * opts['dim']:.3g} table parameters is beyond any published "
                         f"recommender; check rows and dim")
    return {"rows": rows, "hot": hot, "dim": opts["dim"], "dense": opts["dense"], "bottom": list(opts["bottom"]),
            "top": list(opts["top"]), "interaction": interaction, "cross_layers": opts["cross_layers"],
            "low_rank": opts["low_rank"], "sparse": opts["sparse"]}


def two_tower_config(opts: dict[str, Any], given: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Checked two-tower sizes: user tables first, then item tables, in `rows` and `hot`."""
    users, items = int(opts["user_tables"]), int(opts["item_tables"])
    _positive(source, user_tables=users, item_tables=items, dim=opts["dim"], tower=opts["tower"])
    if opts["dense"] < 0:
        raise InputError(f"{source}: dense must be 0 or more (got {opts['dense']})")
    rows = _per_table(opts["rows"], users + items, "rows", source)
    hot = _per_table(opts["hot"], users + items, "hot", source)
    _positive(source, rows=rows, hot=hot)
    loss = _choice(source, "loss", opts["loss"], ("in-batch", "sampled"))
    if loss == "sampled":
        _positive(source, negatives=opts["negatives"])
    elif "negatives" in given:
        raise InputError(f"{source}: negatives applies to loss=sampled (in-batch softmax uses the batch's items)")
    if sum(rows) * opts["dim"] > MAX_TABLE_PARAMS:
        raise InputError(f"{source}: {sum(rows) * opts['dim']:.3g} table parameters is beyond any published "
                         f"recommender; check rows and dim")
    return {"user_rows": rows[:users], "item_rows": rows[users:], "user_hot": hot[:users], "item_hot": hot[users:],
            "dim": opts["dim"], "dense": opts["dense"], "tower": list(opts["tower"]), "loss": loss,
            "negatives": opts["negatives"] if loss == "sampled" else 0, "sparse": opts["sparse"]}


# ---- inputs and losses -------------------------------------------------------------------------------------------


def bags(batch: int, hot: Sequence[int]) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Per table, the flat indices of `batch` bags of `hot` lookups each and the bags' offsets."""
    indices = tuple(torch.empty(batch * h, dtype=torch.long, device="meta") for h in hot)
    offsets = tuple(torch.empty(batch, dtype=torch.long, device="meta") for _ in hot)
    return indices, offsets


def click_loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """Binary cross-entropy of the click logit against the `_target` labels (one per impression)."""
    return F.binary_cross_entropy_with_logits(output, inputs["_target"])


def softmax_loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """In-batch softmax (each user's item is the positive, the batch's other items its negatives; Yi et al. 2019)
    or, with negatives, a sampled softmax over the positive and the shared negatives."""
    if len(output) == 4:
        score, u, _, negatives = output
        logits = torch.cat([score.unsqueeze(1), u @ negatives.T], dim=1)
    else:
        _, u, i = output
        logits = u @ i.T
    return F.cross_entropy(logits, inputs["_target"])


# ---- specs -------------------------------------------------------------------------------------------------------


def _dlrm_spec(name: str, cfg: dict[str, Any], meta: dict[str, Any]) -> ModelSpec:
    def build(dtype: torch.dtype, dims: Dims, device: str = "meta") -> nn.Module:
        return build_on_meta(lambda: DLRM(cfg["rows"], cfg["dim"], cfg["dense"], cfg["bottom"], cfg["top"],
                                          cfg["interaction"], cfg["cross_layers"], cfg["low_rank"], cfg["sparse"]),
                             dtype, device)

    def make_inputs(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
        indices, offsets = bags(batch, cfg["hot"])
        out: dict[str, Any] = {"dense": torch.empty(batch, cfg["dense"], device="meta"), "indices": indices,
                               "offsets": offsets}
        if train:
            out["_target"] = torch.empty(batch, 1, device="meta")
        return out

    return ModelSpec(name=name, source="recsys", kind=ModelKind.RECSYS, build=build, make_inputs=make_inputs,
                     loss=click_loss, metadata=meta)


def _two_tower_spec(name: str, cfg: dict[str, Any], meta: dict[str, Any]) -> ModelSpec:
    def build(dtype: torch.dtype, dims: Dims, device: str = "meta") -> nn.Module:
        return build_on_meta(lambda: TwoTower(cfg["user_rows"], cfg["item_rows"], cfg["dim"], cfg["dense"],
                                              cfg["tower"], cfg["sparse"]), dtype, device)

    def side(prefix: str, batch: int, hot: Sequence[int]) -> dict[str, Any]:
        indices, offsets = bags(batch, hot)
        out: dict[str, Any] = {f"{prefix}_indices": indices, f"{prefix}_offsets": offsets}
        if cfg["dense"]:
            out[f"{prefix}_dense"] = torch.empty(batch, cfg["dense"], device="meta")
        return out

    def make_inputs(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
        out = {**side("user", batch, cfg["user_hot"]), **side("item", batch, cfg["item_hot"])}
        if train:
            if cfg["negatives"]:
                out.update(side("neg", cfg["negatives"], cfg["item_hot"]))
            out["_target"] = torch.empty(batch, dtype=torch.long, device="meta")
        return out

    return ModelSpec(name=name, source="recsys", kind=ModelKind.RECSYS, build=build, make_inputs=make_inputs,
                     loss=softmax_loss, metadata=meta)


def resolve(name: str, options: Mapping[str, Any]) -> ModelSpec:
    """The ModelSpec of built-in recommender `name`, sized by `options` (`--model-option KEY=VALUE`; from Python a
    list may stand for a comma list)."""
    options = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in (options or {}).items()}
    key = name.strip().lower()
    if key not in presets():
        raise UnknownModelError(f"unknown recommender recsys:{shorten(name)}; closest: "
                                f"{', '.join('recsys:' + n for n in closest(key, list_names()))}")
    preset = presets()[key]
    source = f"recsys:{key}"
    opts = take(options, schema(key), source)
    meta: dict[str, Any] = {"description": preset["description"], "preset_source": preset["source"],
                            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()},
                            "notes": ([SPARSE_NOTE] if opts.get("sparse") else []) + [LAYOUT_NOTE]}
    for extra in ("train_samples", "global_batch_size", "reference_gpus", "reference_optimizer",
                  "published_checkpoint_gib", "published_checkpoint_source"):
        if extra in preset:
            meta[extra] = preset[extra]
    if preset["family"] == "dlrm":
        cfg = dlrm_config(opts, options, source)
        meta["options"]["tables"] = len(cfg["rows"])
        meta["embedding_rows"] = sum(cfg["rows"])
        meta["lookups_per_sample"] = sum(cfg["hot"])
        return _dlrm_spec(source, cfg, meta)
    cfg = two_tower_config(opts, options, source)
    meta["embedding_rows"] = sum(cfg["user_rows"]) + sum(cfg["item_rows"])
    meta["lookups_per_sample"] = sum(cfg["user_hot"]) + sum(cfg["item_hot"])
    return _two_tower_spec(source, cfg, meta)
