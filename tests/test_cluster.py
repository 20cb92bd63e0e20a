"""`afford sweep --scheduler` (issue 15, item 3): the sweep's groups priced on a Dask cluster (afford[dask]) give
the very points local workers give, in the same order; a bad or unreachable scheduler is one line and exit 2.
The cluster here is a real `distributed.LocalCluster` of two worker processes."""

from __future__ import annotations

import json
import operator
import os
import socket
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from afford.cli import app
from afford.decide import cluster as cl
from afford.decide import sweep as sw
from afford.errors import InputError
from hostile.harness import run

distributed = pytest.importorskip("distributed")

TINY = ["torchvision:squeezenet1_0", "torchvision:resnet18"]
BAD = "torchvision:no_such_net"
KW: dict[str, Any] = {"hardware": ["a100-80gb", "t4"], "precision": ["bf16-mixed"], "batch_size": [1],
                      "train_samples": 1000, "infer_samples": 10}


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """A local Dask cluster of two worker processes, one thread each, for this module; closed after it."""
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as c:
        yield c.scheduler_address


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cluster_prices_the_same_points_as_one_process(address: str) -> None:
    """Two models (one that fails) on two devices: the cluster's rows equal a jobs=1 sweep's, figure for figure."""
    here = sw.sweep([*TINY, BAD], jobs=1, **KW).to_dict()
    there = sw.sweep([*TINY, BAD], jobs=1, scheduler=address, **KW).to_dict()
    assert there["rows"] == here["rows"] and there["errors"] == here["errors"] == 2
    assert len(here["rows"]) == 6 and all(r["params"] and r["train_seconds"] for r in here["rows"][:4])
    assert there["notes"] == [f"priced on the Dask cluster at {address} (2 workers)"] and here["notes"] == []


def test_run_on_keeps_input_order_and_runs_on_the_workers(address: str) -> None:
    """Results come back in the input order, computed in the workers' processes, not this one."""
    assert cl.run_on(address, operator.neg, list(range(20)))[0] == [-i for i in range(20)]
    pids, _ = cl.run_on(address, os.readlink, ["/proc/self"] * 4)
    assert str(os.getpid()) not in pids and len(set(pids)) >= 1


def test_local_scheduler_starts_and_closes_its_own_cluster() -> None:
    """`local`: a LocalCluster of at most `jobs` worker processes (never more than the items), closed after."""
    out, note = cl.run_on(cl.LOCAL, operator.neg, [3, 1, 2], jobs=8)
    assert out == [-3, -1, -2] and note == "priced on a local Dask cluster of 3 worker processes"


def test_cli_sweep_on_the_cluster(address: str) -> None:
    """`afford sweep ... --scheduler ADDRESS --json` through typer: the rows of a local run, and the note."""
    from afford import tracecache

    args = ["sweep", TINY[0], "--hardware", "a100-80gb,t4", "--train-samples", "1000", "--json"]
    runner = CliRunner()
    # this process's in-memory traces may come from tests before this one on the same xdist worker (once, a local
    # price 1 us a step above the workers'); start both sides from the same state: a fresh trace or the disk cache
    tracecache.clear()
    local = runner.invoke(app, [*args, "--jobs", "1"])
    remote = runner.invoke(app, [*args, "--scheduler", address])
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert b["rows"] == a["rows"] and [r["hardware"] for r in b["rows"]] == ["a100-80gb", "t4"]
    assert b["notes"] and address in b["notes"][0]


def test_unreachable_scheduler_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port: one line and exit 2 after the (shortened) connect timeout, from the CLI and from Python."""
    monkeypatch.setattr(cl, "CONNECT_TIMEOUT_S", 1.0)
    target = f"tcp://127.0.0.1:{_closed_port()}"
    r = run(["sweep", TINY[0], "--scheduler", target])
    assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "Dask scheduler" in r.stderr and target in r.stderr
    with pytest.raises(InputError, match="Dask scheduler"):
        sw.sweep([TINY[0]], scheduler=target)


def test_a_port_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener that accepts and never speaks (a Dask Client alone would wait on it forever): one InputError."""
    monkeypatch.setattr(cl, "CONNECT_TIMEOUT_S", 1.0)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held: list[socket.socket] = []

    def accept() -> None:
        """Accept connections and keep them open, silent."""
        try:
            while True:
                held.append(server.accept()[0])
        except OSError:
            return

    threading.Thread(target=accept, daemon=True).start()
    try:
        with pytest.raises(InputError, match=r"no Dask scheduler answered at .* within 1 s"):
            cl.reach(f"tcp://127.0.0.1:{server.getsockname()[1]}")
    finally:
        server.close()
        for conn in held:
            conn.close()


def test_a_scheduler_without_workers_is_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduler no worker has joined: an InputError saying to start `dask worker`, not a wait forever."""
    monkeypatch.setattr(cl, "CONNECT_TIMEOUT_S", 1.0)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as empty:
        with pytest.raises(InputError, match="has no workers: start some with `dask worker"):
            cl.run_on(empty.scheduler_address, operator.neg, [1, 2])


@pytest.mark.parametrize("bad", ["foo://host:8786", "tcp://host", "", "tcp://[::1"])
def test_bad_addresses_are_refused_before_any_trace(bad: str) -> None:
    """A malformed address or unknown scheme: one InputError naming --scheduler, before anything is contacted."""
    with pytest.raises(InputError, match="is not a Dask scheduler address"):
        sw.sweep([BAD], scheduler=bad)


def test_a_worker_that_cannot_import_the_function_is_one_error(address: str) -> None:
    """A function the workers cannot import (as on a worker without afford): one InputError saying what to
    install, not a remote traceback."""
    module = types.ModuleType("afford_only_here")
    module.__file__ = "/nowhere/afford_only_here.py"  # importable by reference, not pickled by value

    def negate(x: int) -> int:
        """A function of a module that exists only in this process."""
        return -x

    negate.__module__, negate.__qualname__ = module.__name__, "negate"
    module.negate = negate  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        with pytest.raises(InputError, match=r"a Dask worker cannot import .*afford_only_here.*install afford"):
            cl.run_on(address, negate, [1])
    finally:
        del sys.modules[module.__name__]
