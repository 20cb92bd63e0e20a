"""`afford sweep`: price every point of models x hardware x precisions x batch sizes, in worker processes.

Points that share a traced shape (the same model, precision and batch size) form one group: one worker traces
the model once and re-prices the trace on each device of the hardware list (hardware never changes the trace,
and `tracecache` keeps it in the worker; on disk for the next run). `run_all` is the process pool that
`afford compare --jobs N` uses as well: results come back in the input order, the same as `jobs=1`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from afford import bounds
from afford.decide.tasks import run_task
from afford.errors import (
    AffordError,
    ConfigError,
    InputError,
    MissingExtraError,
    TraceError,
    UnknownModelError,
    UnsupportedError,
    flag,
    opt,
)

T = TypeVar("T")
R = TypeVar("R")

QUICK_S = 0.5  # an item that takes longer in this process (it traced) starts the worker processes
MAX_JOBS = 512  # worker processes; far beyond any machine this runs on, low enough to refuse a typo
# the axes the sweep spans (its own list-valued options) and the request fields it does not take: a budget
# verdict and the plan search belong to `afford plan`, the module tree to `afford assess`
AXES = ("hardware", "precision", "batch_size")
NOT_TAKEN_SECTIONS = ("budget", "plan")
NOT_TAKEN = ("depth",)
COLUMNS = ("model", "hardware", "precision", "batch_size", "params", "forward_flops", "train_seconds",
           "infer_seconds", "train_usd", "infer_usd", "per_device_bytes", "fits", "error")
# errors of the model or the traced job, the same on every device of a group: not retried per device
_SHARED_ERRORS = (UnknownModelError, ConfigError, TraceError, UnsupportedError, MissingExtraError)


def default_jobs() -> int:
    """The worker processes used when none are asked for: the cores this process may run on."""
    counter = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if counter is not None:
        return int(counter() or 1)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_jobs(jobs: Any) -> int:
    """`jobs` when it is a whole number of worker processes in range; else one InputError naming `--jobs`."""
    return bounds.whole(jobs, "jobs", high=MAX_JOBS)


def _context() -> Any:
    """The multiprocessing start method for workers: forkserver where there is one, else spawn (torch and a
    plain fork do not mix)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _worker_start(quiet: bool) -> None:
    """Each worker ignores Ctrl-C (the parent stops the pool) and, when the parent does, warnings."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if quiet:
        warnings.filterwarnings("ignore")


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: pending tasks cancelled, running workers terminated."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for p in workers:
        if p.is_alive():
            p.terminate()
    for p in workers:
        p.join(timeout=5)


def run_all(fn: Callable[[T], R], items: Sequence[T], jobs: int = 1) -> list[R]:
    """`[fn(item) for item in items]` in `jobs` processes when there are several items: this one and `jobs - 1`
    workers. Items run here while they are quick (a re-run priced from the trace cache never waits for workers to
    start); from the first slow one on (after the first item, which pays the imports), the workers take items from
    the front and this process from the back. Results come in the input order, an exception of `fn` is raised
    here as from the loop, and Ctrl-C stops the workers. `fn` must be a module-level function, items picklable."""
    jobs = check_jobs(jobs)
    done: list[R] = []
    for i, item in enumerate(items):
        if jobs == 1 or i == len(items) - 1:
            done.append(fn(item))
            continue
        start = time.perf_counter()
        done.append(fn(item))
        if i > 0 and time.perf_counter() - start > QUICK_S:
            return done + _pooled(fn, items[i + 1:], jobs)
    return done


def _pooled(fn: Callable[[T], R], items: Sequence[T], jobs: int) -> list[R]:
    """`run_all`'s process pool for `items`: `jobs - 1` workers from the front, this process from the back."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    cli = opt("jobs") == flag("jobs")
    quiet = any(f[0] == "ignore" and f[1] is None and f[2] is Warning for f in warnings.filters[:1])
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(items)) - 1, mp_context=_context(),
                               initializer=_worker_start, initargs=(quiet,))
    try:
        futures: list[Future[R]] = [pool.submit(run_task, fn, item, cli) for item in items]
        here: dict[int, R] = {}
        for i in reversed(range(len(items))):
            if not futures[i].cancel():  # a worker has it already
                break
            here[i] = fn(items[i])
        return [here[i] if i in here else f.result() for i, f in enumerate(futures)]
    except BrokenProcessPool:
        _stop(pool)
        raise TraceError(f"a worker process died (out of memory?); retry with fewer {opt('jobs')}") from None
    except BaseException:
        _stop(pool)
        raise
    finally:
        pool.shutdown(wait=True)


@dataclass
class Point:
    """One priced point of a sweep; `error` set (and the figures empty) when it could not be priced."""

    model: str
    hardware: str
    precision: str
    batch_size: int
    params: int | None = None
    forward_flops: float | None = None  # per sample
    train_seconds: float | None = None
    infer_seconds: float | None = None
    train_usd: float | None = None
    infer_usd: float | None = None
    per_device_bytes: float | None = None
    fits: bool | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as plain data, its keys in COLUMNS order."""
        return asdict(self)


@dataclass
class Sweep:
    """Every point of the cross product, in order: models, then hardware, precisions, batch sizes."""

    points: list[Point]
    jobs: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON: the columns, then one object per point."""
        return {"columns": list(COLUMNS), "rows": [p.to_dict() for p in self.points],
                "errors": sum(p.error is not None for p in self.points), "notes": self.notes}


def _priced(point: Point, a: Any) -> Point:
    """The point with the figures of an Assessment priced on its hardware."""
    d = a.to_dict()
    t, c, m = d.get("time", {}), d.get("cost", {}), d.get("memory", {})
    point.params = d["model"]["params"]
    point.forward_flops = d["per_sample"]["forward_flops"]
    point.train_seconds, point.infer_seconds = t.get("train_seconds"), t.get("infer_seconds")
    point.train_usd, point.infer_usd = c.get("train_usd"), c.get("infer_usd")
    point.per_device_bytes, point.fits = m.get("per_device_bytes"), m.get("fits")
    return point


def price_group(group: tuple[str, str, int, tuple[str, ...], dict[str, Any]]) -> list[Point]:
    """The points of one model at one precision and batch size on each device: traced once (the first device),
    re-priced from the trace cache on the others. A model's error is each of its points' error."""
    from afford.api import assess

    model, precision, batch, devices, job = group
    out: list[Point] = []
    shared: str | None = None
    for device in devices:
        point = Point(model=model, hardware=device, precision=precision, batch_size=batch)
        if shared is not None:
            point.error = shared
        else:
            try:
                out.append(_priced(point, assess(model, hardware=device, precision=precision, batch_size=batch,
                                                 **job)))
                continue
            except _SHARED_ERRORS as exc:
                shared = point.error = str(exc)
            except AffordError as exc:
                point.error = str(exc)
        out.append(point)
    return out


def taken(command_specs: Sequence[Any]) -> list[Any]:
    """Of assess's request fields, the ones a sweep takes (schema Specs): not its axes, a budget or a plan."""
    return [s for s in command_specs if s.name not in AXES and s.name not in NOT_TAKEN
            and s.option.section not in NOT_TAKEN_SECTIONS]


def expand_specs(specs: Sequence[str]) -> list[str]:
    """Model specs with globs expanded over the names their source lists (sources/registry.py), without repeats:
    `torchvision:*` is every torchvision classification model, `timm:resnet1*` every timm ResNet-1xx."""
    from afford.sources import registry

    out: list[str] = []
    for spec in specs:
        out.extend(registry.expand_glob(spec) if registry.is_glob(spec) else [spec])
    return list(dict.fromkeys(out))


def _axis(values: Sequence[Any] | Any, name: str) -> list[Any]:
    """An axis as a list without repeats; one value alone is a list of one, and an empty one is an error."""
    items = [values] if isinstance(values, (str, int)) else list(values)
    if not items:
        raise InputError(f"{opt(name)} needs at least one value")
    return list(dict.fromkeys(items))


def sweep(models: Sequence[str], *, hardware: Sequence[str] | str = ("a100-80gb",),
          precision: Sequence[str] | str = ("bf16-mixed",), batch_size: Sequence[int] | int = (1,), jobs: int = 1,
          scheduler: str | None = None, **job: Any) -> Sweep:
    """Price every point of models x hardware x precisions x batch sizes for one job (assess's other options,
    but a budget or plan search), in `jobs` worker processes, or on the Dask cluster at `scheduler` (`local`:
    one of `jobs` processes started here; decide/cluster.py); each point's error is its row's."""
    from afford import schema
    from afford.hardware.catalog import Catalog
    from afford.workload import Workload

    jobs = check_jobs(jobs)
    if scheduler is not None:  # a bad address or a missing dask extra: one error, before any trace
        from afford.decide import cluster

        scheduler = cluster.check_address(scheduler)
    schema.build("assess", job, where="sweep")
    allowed = {s.name for s in taken(schema.specs("assess"))}
    for name in job:
        if name not in allowed:
            raise InputError(f"sweep does not take {opt(name)}: a budget verdict and plans are `afford plan`'s")
    devices, precisions, batches = _axis(hardware, "hardware"), _axis(precision, "precision"), _axis(
        batch_size, "batch_size")
    hw_file = job.get("hardware_file")
    catalog = Catalog.load(Path(hw_file) if hw_file else None)
    ids = list(dict.fromkeys(catalog.get(str(d)).id for d in devices))  # an unknown device: one error, now
    workload_keys = ("train_samples", "epochs", "train_tokens", "infer_samples", "seq_len", "image_size",
                     "optimizer", "freeze", "allow_longer", "task", "prompt_tokens", "generate_tokens")
    for p in precisions:
        for b in batches:  # a bad value of the job is one error before any trace, not one per point
            Workload.parse(precision=p, batch_size=b, **{k: job[k] for k in workload_keys if k in job})
    names = expand_specs(models)
    if not names:
        raise InputError("sweep needs at least one model")
    groups = [(m, str(p), int(b), tuple(ids), dict(job)) for m in names for p in precisions for b in batches]
    notes: list[str] = []
    if scheduler is None:
        priced = run_all(price_group, groups, jobs)
    else:  # the same worker function, on Dask's workers
        priced, where = cluster.run_on(scheduler, price_group, groups, jobs)
        notes.append(where)
    by_key = {(pt.model, pt.hardware, pt.precision, pt.batch_size): pt for rows in priced for pt in rows}
    points = [by_key[(m, h, str(p), int(b))] for m in names for h in ids for p in precisions for b in batches]
    return Sweep(points=points, jobs=jobs, notes=notes)


def write_csv(s: Sweep, path: Path) -> None:
    """The sweep's rows as CSV (header: COLUMNS); empty cells for figures a point lacks."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for p in s.points:
            writer.writerow({k: "" if v is None else v for k, v in p.to_dict().items()})


def need_pyarrow() -> Any:
    """The pyarrow module; without it one MissingExtraError naming what to install."""
    from afford.extras import require

    return require("pyarrow", "Parquet output (--parquet)", extra="parquet")


def write_parquet(s: Sweep, path: Path) -> None:
    """The sweep's rows as Parquet (pyarrow); without pyarrow one MissingExtraError naming what to install."""
    pa = need_pyarrow()
    import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]

    pq.write_table(pa.Table.from_pylist([p.to_dict() for p in s.points]), str(path))


__all__ = ["COLUMNS", "Point", "Sweep", "check_jobs", "default_jobs", "expand_specs", "need_pyarrow", "run_all",
           "sweep", "write_csv", "write_parquet"]
