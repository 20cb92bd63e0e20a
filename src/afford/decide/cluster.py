"""`afford sweep --scheduler ADDRESS`: the sweep's groups priced on a Dask cluster instead of local processes.

A plain `Client.map` + `Client.gather` of the very worker function the local pool runs (`sweep.price_group`), so a
cluster prices exactly what local workers price, in the input order. Dask (`afford[dask]`) is imported here only,
and only when a scheduler is asked for; `local` starts an in-process `LocalCluster` of `jobs` worker processes to
try it out. Dask schedules; afford keeps no scheduler of its own. Every worker needs afford and the same extras.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from afford.decide.tasks import run_task
from afford.errors import InputError, TraceError, flag, opt

T = TypeVar("T")
R = TypeVar("R")

LOCAL = "local"  # --scheduler local: a LocalCluster started here, for trying the path out on one machine
CONNECT_TIMEOUT_S = 10.0  # reaching the scheduler, and waiting for its first worker
WHAT = "a sweep on a Dask cluster (--scheduler)"


def need_distributed() -> Any:
    """The `distributed` module; without it one MissingExtraError naming `pip install 'afford[dask]'`."""
    from afford.extras import require

    return require("distributed", WHAT, extra="dask")


def check_address(address: str) -> str:
    """`address` stripped when it is `local` or a well-formed Dask address (`tcp://host:8786`, `host:8786`);
    else one InputError; the dask extra is checked too. Nothing is contacted yet."""
    text = str(address).strip()
    need_distributed()
    if text == LOCAL:
        return text
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, loc = parse_address(text if text else ":")
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(loc)
        from distributed.comm.registry import get_backend

        get_backend(scheme)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{opt('scheduler')} {text!r} is not a Dask scheduler address (give tcp://host:8786, or "
                         f"'local'): {_first_line(exc)}") from None
    return text


def _first_line(exc: BaseException) -> str:
    """An exception's message as one short line (its type when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


async def _identity(address: str, timeout: float) -> dict[str, Any]:
    """The scheduler's identity, asked once over Dask's own RPC (honours Dask's TLS configuration)."""
    from distributed.core import rpc
    from distributed.security import Security

    args = Security().get_connection_args("client")
    async with rpc(address, timeout=timeout, connection_args=args) as remote:
        return dict(await remote.identity())


def reach(address: str, timeout: float | None = None) -> None:
    """Check within `timeout` seconds that a Dask scheduler answers at `address` (a Client would wait forever on a
    port that accepts but never answers); else one InputError."""
    wait = CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        ident = asyncio.run(asyncio.wait_for(_identity(address, wait), wait + 1))
    except TimeoutError:
        raise InputError(f"no Dask scheduler answered at {address} within {wait:g} s (is `dask scheduler` running "
                         "there, and is the port open?)") from None
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"cannot reach a Dask scheduler at {address}: {_first_line(exc)}") from None
    if ident.get("type") != "Scheduler":
        raise InputError(f"{address} is not a Dask scheduler (it says it is a {ident.get('type')!r})")


def _unimportable(exc: BaseException) -> str:
    """The one line for a worker that cannot import the task's function."""
    return (f"a Dask worker cannot import what afford needs ({_first_line(exc)}): install afford and the same "
            "extras on every worker")


def _gather(client: Any, fn: Callable[[T], R], items: Sequence[T], where: str) -> list[R]:
    """`[fn(item) for item in items]` on the client's workers, in the input order; worker failures as one
    AffordError, and Ctrl-C cancels what is left."""
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except TimeoutError:
        raise InputError(f"the Dask scheduler at {where} has no workers: start some with `dask worker "
                         f"{where}`") from None
    try:  # a worker that cannot unpickle the function drops its link and retries for ever: ask each one first
        client.run(exec, f"import {fn.__module__}")
    except ImportError as exc:
        raise InputError(_unimportable(exc)) from None
    cli = opt("jobs") == flag("jobs")
    n = len(items)
    futures = client.map(run_task, [fn] * n, list(items), [cli] * n, pure=False)
    try:
        return list(client.gather(futures))
    except KilledWorker as exc:
        raise TraceError(f"a Dask worker died pricing a point (out of memory?): {_first_line(exc)}") from None
    except ImportError as exc:
        raise InputError(_unimportable(exc)) from None
    except (CommClosedError, OSError) as exc:
        raise InputError(f"lost the Dask scheduler at {where}: {_first_line(exc)}") from None
    except BaseException:
        client.cancel(futures)
        raise


def run_on(address: str, fn: Callable[[T], R], items: Sequence[T], jobs: int = 1) -> tuple[list[R], str]:
    """`[fn(item) for item in items]` on the Dask cluster at `address` (`local`: a LocalCluster of `jobs` worker
    processes started here), and a note saying where. `fn` must be a module-level function, items picklable."""
    distributed = need_distributed()
    if not items:
        return [], ""
    if address == LOCAL:
        n = max(1, min(jobs, len(items)))
        with distributed.LocalCluster(n_workers=n, processes=True, threads_per_worker=1, dashboard_address=":0") \
                as cluster, distributed.Client(cluster, set_as_default=False) as client:
            out = _gather(client, fn, items, cluster.scheduler_address)
        return out, f"priced on a local Dask cluster of {n} worker process{'es' if n > 1 else ''}"
    reach(address)
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"cannot connect to the Dask scheduler at {address}: {_first_line(exc)}") from None
    try:
        out = _gather(client, fn, items, address)
        workers = len(client.nthreads())
    finally:
        client.close()
    return out, f"priced on the Dask cluster at {address} ({workers} worker{'s' if workers != 1 else ''})"


__all__ = ["CONNECT_TIMEOUT_S", "LOCAL", "check_address", "need_distributed", "reach", "run_on"]
