"""Built-in recommenders (recsys:dlrm, recsys:dlrm-dcnv2-mlperf, recsys:two-tower) against hand derivations and
the MLPerf reference's published figures; sparse embedding gradients, Adagrad state and lookup bytes."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import afford
from afford.cli import app
from afford.counting.engine import Counter, LiveBytes, tensor_bytes
from afford.counting.profile import PhaseProfile
from afford.errors import InputError, UnknownModelError
from afford.estimate.memory import gradient_share, optimizer_state_bytes
from afford.estimate.timing import Efficiency, phase_seconds
from afford.hardware.catalog import Catalog
from afford.sources import ModelKind, resolve
from afford.workload import Optimizer, Precision, Workload, parse_enum

runner = CliRunner()

# MLPerf Training DLRM-DCNv2 reference (mlcommons/training recommendation_v2/torchrec_dlrm/README.MD, Step 3/4)
MLPERF_ROWS = [40000000, 39060, 17295, 7424, 20265, 3, 7122, 1543, 63, 40000000, 3067956, 405282, 10, 2209, 11938,
               155, 4, 976, 14, 40000000, 40000000, 40000000, 590152, 12973, 108, 36]
MLPERF_HOT = [3, 2, 1, 2, 6, 1, 1, 1, 1, 7, 3, 8, 1, 6, 9, 5, 1, 1, 1, 12, 100, 27, 10, 3, 1, 1]


def linear_params(widths: list[int]) -> int:
    """Weights and biases of Linear layers width[0] -> width[1] -> ...: sum of in * out + out."""
    return sum(i * o + o for i, o in itertools.pairwise(widths))


def linear_flops(widths: list[int]) -> int:
    """2 * in * out FLOPs per sample and layer (PyTorch's addmm formula, bias not counted)."""
    return sum(2 * i * o for i, o in itertools.pairwise(widths))


def dcn_params(width: int, layers: int, rank: int) -> int:
    """DCNv2 low-rank cross layer: V (rank x width) + W (width x rank) + b (width) per layer."""
    return layers * (2 * width * rank + width)


@pytest.fixture(scope="module")
def mlperf() -> Any:
    """The MLPerf preset at a small batch with row-wise Adagrad, on an H100 (the estimate is not used here)."""
    return afford.assess("recsys:dlrm-dcnv2-mlperf", train_samples=1000, batch_size=16,
                         optimizer="rowwise-adagrad", hardware="h100-sxm")


@pytest.fixture(scope="module")
def dlrm() -> Any:
    return afford.assess("recsys:dlrm", train_samples=1000, batch_size=4, optimizer="adagrad")


# ---- parameters ---------------------------------------------------------------------------------------------------


def test_dlrm_defaults_params_equal_hand_derivation(dlrm: Any) -> None:
    # TorchRec DLRM example defaults: 26 tables x 100,000 rows x 64, bottom 13-512-256-64, dot interaction over
    # 27 vectors (27 * 26 / 2 = 351 pairs), top (64 + 351)-512-512-256-1
    tables = 26 * 100_000 * 64
    expected = tables + linear_params([13, 512, 256, 64]) + linear_params([64 + 351, 512, 512, 256, 1])
    assert dlrm.trace.params == expected == 167_162_177
    assert dlrm.spec.kind is ModelKind.RECSYS


def test_custom_options_params_and_flops() -> None:
    # 3 tables (inferred from the rows list), dim 16, bottom 7-32-16, dot over 4 vectors (6 pairs), top 22-64-1
    a = afford.assess("recsys:dlrm", train_samples=10, batch_size=2,
                      model_options={"rows": "1000,2000,3000", "dim": "16", "dense": "7", "bottom": "32,16",
                                     "top": "64,1", "hot": "2,1,4"})
    expected = (1000 + 2000 + 3000) * 16 + linear_params([7, 32, 16]) + linear_params([16 + 6, 64, 1])
    assert a.trace.params == expected
    # forward: bottom + bmm of (4 x 16) by (16 x 4) = 2 * 4 * 4 * 16 + top
    assert a.forward_flops == linear_flops([7, 32, 16]) + 2 * 4 * 4 * 16 + linear_flops([22, 64, 1])


def test_mlperf_preset_params_and_published_size(mlperf: Any) -> None:
    assert sum(MLPERF_ROWS) == 204_184_588
    tables = sum(MLPERF_ROWS) * 128
    # DCNv2 over 27 vectors of 128 = 3456 wide, 3 layers of rank 512; top 3456-1024-1024-512-256-1
    dense = (linear_params([13, 512, 256, 128]) + dcn_params(3456, 3, 512)
             + linear_params([3456, 1024, 1024, 512, 256, 1]))
    assert dense == 171_392 + 10_627_200 + 5_245_953
    assert mlperf.trace.params == tables + dense == 26_151_671_809
    # mlcommons/inference recommendation/dlrm_v2/pytorch/README.md: the fp32 checkpoint is 97.31 "GB" by du
    # (binary units); the fp32 tables alone are 26,135,627,264 x 4 B = 97.36 GiB
    assert abs(mlperf.trace.weights_bytes / 2**30 - 97.31) / 97.31 < 0.002


# ---- FLOPs --------------------------------------------------------------------------------------------------------


def test_forward_flops_per_sample_equal_hand_derivation(dlrm: Any, mlperf: Any) -> None:
    dot = 2 * 27 * 27 * 64  # bmm of the 27 x 64 vectors with their transpose
    hand = linear_flops([13, 512, 256, 64]) + dot + linear_flops([415, 512, 512, 256, 1])
    assert abs(dlrm.forward_flops - hand) / hand < 0.01
    cross = 3 * (2 * 3456 * 512 + 2 * 512 * 3456)  # per layer: V x (3456 -> 512), then W (512 -> 3456)
    hand = linear_flops([13, 512, 256, 128]) + cross + linear_flops([3456, 1024, 1024, 512, 256, 1])
    assert hand == 32_060_928
    assert abs(mlperf.forward_flops - hand) / hand < 0.01
    # backward: input and weight gradients, 2 x forward, less the dense input's gradient (2 * 13 * 512)
    assert mlperf.backward_flops == 2 * hand - 2 * 13 * 512


def test_two_tower_flops_in_batch_and_sampled() -> None:
    batch, d = 4, 128
    tower = linear_flops([4 * 64 + 16, 512, 256, 128])  # 4 tables x 64 + 16 dense features, 512-256-128
    a = afford.assess("recsys:two-tower", train_samples=10, batch_size=batch)
    assert a.forward_flops == 2 * tower + 2 * d  # both towers and the score u . i
    assert a.train_forward_flops == 2 * tower + 2 * d + 2 * batch * d  # + in-batch logits u @ I^T, per sample
    b = afford.assess("recsys:two-tower", train_samples=10, batch_size=batch,
                      model_options={"loss": "sampled", "negatives": "64"})
    # 64 shared negatives through the item tower, per sample 64 / batch of them, and u @ N^T
    assert b.train_forward_flops == 2 * tower + 2 * d + tower * 64 // batch + 2 * 64 * d


# ---- memory: sparse gradients and optimizer state ------------------------------------------------------------------


def test_sparse_table_gradients_hold_the_rows_looked_up() -> None:
    opts = {"rows": "100000", "tables": "3", "dim": "16", "dense": "4", "bottom": "8,16", "top": "8,1", "hot": "5"}
    batch = 8
    sparse = afford.assess("recsys:dlrm", train_samples=10, batch_size=batch, model_options=opts, optimizer="sgd")
    dense_opts = {**opts, "sparse": "false"}
    dense = afford.assess("recsys:dlrm", train_samples=10, batch_size=batch, model_options=dense_opts,
                          optimizer="sgd")
    mlp = linear_params([4, 8, 16]) + linear_params([16 + 6, 8, 1])
    # sparse: one fp32 row of 16 and one int64 index per lookup (3 tables x 5 lookups per sample)
    assert sparse.memory.gradients_bytes == 4 * mlp + batch * 3 * 5 * (16 * 4 + 8)
    # PyTorch's dense embedding gradient is the whole table
    assert dense.memory.gradients_bytes == 4 * (mlp + 3 * 100_000 * 16)
    assert gradient_share(dense.trace) == 1.0
    assert gradient_share(sparse.trace) < 0.01
    assert "sparse gradients" in " ".join(sparse.notes)


def test_rowwise_adagrad_vs_adagrad_state_on_the_preset(mlperf: Any) -> None:
    dense = mlperf.trace.params - sum(MLPERF_ROWS) * 128
    # FBGEMM EXACT_ROWWISE_ADAGRAD: one fp32 per table row; dense parameters keep torch.optim.Adagrad's full sum
    assert mlperf.memory.optimizer_bytes == 4 * sum(MLPERF_ROWS) + 4 * dense == 880_916_532
    full = optimizer_state_bytes(mlperf.trace.param_shapes, Optimizer.ADAGRAD, Precision.FP32,
                                 mlperf.trace.embedding_params)
    assert full == 4 * mlperf.trace.params == 104_606_687_236
    assert len(mlperf.trace.embedding_params) == 26


def test_adagrad_state_rules_per_shape() -> None:
    shapes = [((1000, 64), True), ((64, 32), True), ((32,), True), ((500, 8), False)]
    assert optimizer_state_bytes(shapes, Optimizer.ADAGRAD, Precision.FP32, [0]) == 4 * (64_000 + 2048 + 32)
    assert optimizer_state_bytes(shapes, Optimizer.ADAGRAD, Precision.BF16, [0]) == 2 * (64_000 + 2048 + 32)
    # row-wise: 1000 fp32 row sums for the table (fp32 even in pure bf16), full Adagrad elsewhere; frozen: none
    assert optimizer_state_bytes(shapes, Optimizer.ROWWISE_ADAGRAD, Precision.FP32, [0]) == 4 * (1000 + 2048 + 32)
    assert optimizer_state_bytes(shapes, Optimizer.ROWWISE_ADAGRAD, Precision.BF16, [0]) == 4 * 1000 + 2 * 2080
    assert parse_enum(Optimizer, "rowwise_adagrad", "optimizer") is Optimizer.ROWWISE_ADAGRAD
    assert Workload(optimizer=Optimizer.ADAGRAD).optimizer.value == "adagrad"


# ---- time: lookups are priced by the rows they touch --------------------------------------------------------------


def _events(module: nn.Module, run: Any) -> PhaseProfile:
    counter = Counter(LiveBytes(set()))
    with counter:
        phase = counter.start_phase("forward")
        run(module)
        counter.finish_phase()
    return phase


def test_lookup_op_bytes_are_rows_touched_not_the_table() -> None:
    with torch.device("meta"):
        bag = nn.EmbeddingBag(1_000_000, 32, mode="sum", sparse=True)
        emb = nn.Embedding(1_000_000, 32)
    b, hot = 8, 5
    idx = torch.empty(b * hot, dtype=torch.long, device="meta")
    off = torch.empty(b, dtype=torch.long, device="meta")
    phase = _events(bag, lambda m: m(idx, off))
    # rows read + indices + offsets + pooled output + offset2bag (one per index) + bag sizes (one per bag)
    hand = b * hot * 32 * 4 + b * hot * 8 + b * 8 + b * 32 * 4 + b * hot * 8 + b * 8
    assert phase.by_op["_embedding_bag"].bytes == hand
    phase = _events(emb, lambda m: m(idx))
    assert phase.by_op["embedding"].bytes == b * hot * 32 * 4 + b * hot * 8 + b * hot * 32 * 4
    # a sparse COO gradient holds its values and indices, not its dense size
    grad = torch.sparse_coo_tensor(torch.zeros(1, 40, dtype=torch.long), torch.zeros(40, 32), (1_000_000, 32),
                                   check_invariants=False)
    assert tensor_bytes(grad) == 40 * 32 * 4 + 40 * 8


def test_lookup_time_is_bytes_touched_over_achieved_bandwidth(mlperf: Any) -> None:
    b, dim = mlperf.trace.batch_size, 128
    lookups = sum(MLPERF_HOT)
    # per table: rows read b * hot * dim * 4 (at most the whole table: the 3-, 4-, 10- and 14-row tables are
    # smaller than a batch's lookups), indices and offset2bag b * hot * 8 each, offsets and bag sizes b * 8 each,
    # pooled output b * dim * 4
    rows = sum(min(r, b * h) for r, h in zip(MLPERF_ROWS, MLPERF_HOT, strict=True))
    assert rows == b * lookups - (16 - 3) - (16 - 4) - (16 - 10) - (16 - 14)
    hand = rows * dim * 4 + 2 * b * lookups * 8 + 26 * (2 * b * 8 + b * dim * 4)
    ops = {k: v for k, v in mlperf.trace.forward.events.items() if k[0] == "_embedding_bag"}
    assert sum(k[2] * calls for k, calls in ops.items()) == hand
    h100 = Catalog.load().get("h100-sxm")
    eff = Efficiency.for_device(h100)
    seconds, busy = phase_seconds(PhaseProfile(name="lookups", events=ops), h100, eff, "fp32")
    expected = hand / (h100.memory_bandwidth_gb_s * 1e9 * eff.bandwidth)
    assert seconds == pytest.approx(expected, rel=1e-9) and busy == 0.0
    # pricing the whole tables instead would read 97 GiB, about 52,000 times more, per batch of 16
    assert mlperf.trace.weights_bytes / hand > 5e4
    # backward of the sparse bags writes the touched rows (values + indices) and reads the pooled gradient
    back = sum(k[2] * c for k, c in mlperf.trace.backward.events.items() if k[0] == "_embedding_bag_backward")
    assert back < 2 * hand


# ---- end to end --------------------------------------------------------------------------------------------------


def test_cli_mlperf_end_to_end() -> None:
    args = ["assess", "recsys:dlrm-dcnv2-mlperf", "--train-samples", "4195197692", "--batch-size", "65536",
            "--optimizer", "rowwise-adagrad", "--hardware", "h100-sxm", "--count", "8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "recsys:dlrm-dcnv2-mlperf" in result.output
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert data["model"]["params"] == 26_151_671_809
    assert data["memory"]["optimizer_bytes"] == 880_916_532
    # sparse gradients: dense MLP/cross parameters plus 65536 x 214 looked-up rows of 128 fp32 and their indices
    dense = 26_151_671_809 - sum(MLPERF_ROWS) * 128
    assert data["memory"]["gradients_bytes"] == 4 * dense + 65536 * sum(MLPERF_HOT) * (128 * 4 + 8)
    # data parallel replicates 97 GiB of tables: more than an 80 GB H100 holds (TorchRec shards them instead)
    assert data["memory"]["fits"] is False
    assert data["time"]["train_steps"] == -(-4195197692 // (65536 * 8))


def test_cli_rows_override_on_dlrm() -> None:
    result = runner.invoke(app, ["assess", "recsys:dlrm", "-O", "rows=1000", "--train-samples", "10", "--json"])
    assert result.exit_code == 0, result.output
    params = json.loads(result.stdout)["model"]["params"]
    assert params == 26 * 1000 * 64 + linear_params([13, 512, 256, 64]) + linear_params([415, 512, 512, 256, 1])


@pytest.mark.parametrize(("options", "expect"), [
    (["-O", "rowz=3"], "valid options: bottom, cross_layers"),
    (["-O", "rows=1,2,3", "-O", "tables=4"], "rows has 3 values for 4 tables"),
    (["-O", "bottom=512,256,32"], "must end at dim=64"),
    (["-O", "interaction=attention"], "not one of dot, dcn"),
    (["-O", "dim=0"], "dim must be positive"),
    (["-O", "rows=many"], "must be tuple"),
])
def test_bad_option_is_one_line_exit_2(options: list[str], expect: str) -> None:
    result = runner.invoke(app, ["assess", "recsys:dlrm", *options, "--train-samples", "10"])
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "\n" not in text and "Traceback" not in text
    assert expect in text


def test_unknown_names_and_two_tower_options() -> None:
    with pytest.raises(UnknownModelError, match="closest: recsys:dlrm"):
        resolve("recsys:dlrn")
    with pytest.raises(InputError, match="negatives applies to loss=sampled"):
        resolve("recsys:two-tower", options={"negatives": "10"})
    with pytest.raises(InputError, match="rows has 2 values for 8 tables"):
        resolve("recsys:two-tower", options={"rows": "5,6"})


def test_plan_for_a_recommender_beyond_20b_params_uses_no_tensor_parallelism() -> None:
    # tensor/pipeline splits need a transformer's layer count; the planner used to try tp=8 here and crash
    from afford.decide.run import plan

    result = plan("recsys:dlrm-dcnv2-mlperf", train_samples=4195197692, batch_size=8192, precision="fp32",
                  optimizer="rowwise-adagrad", budget_usd=500, hardware="h100-sxm", count=8)
    data = result.to_dict()
    assert data["verdict"]["status"] in ("affordable", "affordable with changes", "not affordable")
    assert all(p["strategy"]["tp"] == 1 and p["strategy"]["pp"] == 1 for p in data["plans"])


def test_budget_verdict_plans_the_sized_model_not_the_default() -> None:
    """assess(..., budget) plans the spec as sized by --model-option (26 tables x 1000 rows x 64 here)."""
    from afford.api import assess

    a = assess("recsys:dlrm", model_options={"rows": "1000"}, train_samples=10_000, batch_size=64, budget_usd=10)
    assert a.decision is not None
    assert a.decision.model["params"] == a.trace.params
    assert a.trace.params < 26 * 1000 * 64 + 2_000_000  # tables of 1000 rows, not the default 100,000
