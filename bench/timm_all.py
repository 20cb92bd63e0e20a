"""Trace every `timm.list_models()` name at its default config and write docs/timm_coverage.md.

Each model runs as `afford.assess(f"timm:{name}", train_samples=1, infer_samples=1)` would (batch 1: a training
step, forward and backward, then an inference pass), in a worker subprocess that serves one model at a time, with a
per-model timeout: a model that hangs or crashes the interpreter costs its own worker, never the sweep. Results
are appended to bench/results/timm_all.jsonl (one line per model and attempt; the last line of a name wins), so
the sweep resumes where it stopped. Run with `make timm-coverage`, or by hand:

    .venv/bin/python bench/timm_all.py                   # every name not yet done, then the report
    .venv/bin/python bench/timm_all.py --limit 20        # the next 20 names only
    .venv/bin/python bench/timm_all.py --retry-failed    # trace again the names whose last attempt failed
    .venv/bin/python bench/timm_all.py --names a,b       # these names, done or not
    .venv/bin/python bench/timm_all.py --report-only     # rewrite docs/timm_coverage.md from the results
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import queue
import re
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from workerproc import Worker, load_last, serve  # bench/ is the script folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "timm_all.jsonl"
DOC = ROOT / "docs" / "timm_coverage.md"
# afford's refusal of a training step at batch 1 that PyTorch itself refuses (counting/trace.py, `_guard`)
BATCH1_REFUSAL = "training step fails at batch size 1"
MARK = "@@timm_all "  # prefix of the worker's result lines (libraries may print to stdout too)
RESTART_EVERY = 60  # models per worker before a fresh one (bounds memory that leaks across traces)

BATCH1_TEXT = (
    "These models normalise a tensor with one value per channel in training mode: a BatchNorm after global pooling "
    "(a BatchNorm1d in the classifier head, as LeViT's and EfficientViT-MSRA's `NormLinear`), or on a 1 x 1 map. "
    "PyTorch's `F.batch_norm` raises \"Expected more than 1 value per channel when training\" there, so a real "
    "training step at batch 1 fails too, and afford says so in one line (exit 2) with what to do: a batch of 2 or "
    "more. An inference job at batch 1 traces (eval mode uses the running statistics). The sweep counts them as "
    "traced because their training step traces at batch 2 (`afford.assess(..., batch_size=2)`), which it ran.")

# What earlier sweeps failed on, and what changed (kept here so that the page says it after every run).
FIXED = [
    "- **\"Expected gradient function to be set\"** (45 of 1371 models before the fix, measured by an "
    "inference sweep with PyTorch's tracker put back: every `cait_*` and `pit_*`, four `naflexvit_*` and the SigLIP "
    "ViTs with a `map` pool, `vit_pe_core_*`). The counter used PyTorch's "
    "`ModuleTracker`, which registers `register_multi_grad_hook` on each module's inputs and outputs that require "
    "grad. At inference (under `no_grad`) these models hand a submodule a view of a parameter "
    "(`self.latent.expand(B, -1, -1)`, `cls_token.expand(...)`): it requires grad yet has no `grad_fn`, and the hook "
    "raises. afford now follows modules with its own forward-hook stack (`ModuleStack`, counting/engine.py); "
    "backward credit already came from the autograd node running (`_NodeLabels`). FLOPs and per-module figures are "
    "unchanged; the backward live-memory peak drops by the input gradients the tracker's hooks used to hold "
    "(Inception v3 at batch 2: 6 KiB of 235 MiB).",
    "- **SDPA with a value head narrower than the query's** (the 8 `iformer_*` models before the fix: d_q 64, "
    "d_v 32). afford's attention router gave PyTorch's backward formula the query's shape as the output gradient's; "
    "it now uses (batch, heads, queries, d_v) (tests/counting/test_sweep_fixes.py).",
]

# Known causes of failure: (pattern over "ErrorType: first line", title, explanation). The first match names a
# failure's group in the report; a failure that matches none is listed as "unexplained" for someone to look at.
CAUSES: list[tuple[str, str, str]] = [
    (r"more than 1 value per channel when training",
     "BatchNorm at batch 1 in training",
     "The model normalises a tensor with one value per channel (a BatchNorm after global pooling, or on a 1 x 1 "
     "map) in training mode. PyTorch itself raises this at batch 1, so a real training step at batch 1 fails "
     "too; afford exits 2 and says to use a batch of 2 or more. Inference at batch 1 traces."),
    (r"^timeout", "Timed out",
     "The trace took longer than the per-model timeout on this machine (2 shared cores); not an error of the "
     "model. Re-run with a longer --timeout."),
    (r"^crash", "Worker crashed",
     "The worker process died (signal or out of memory) while tracing."),
]


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    import timm
    import torch

    return {"timm": timm.__version__, "torch": torch.__version__}


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__


def trace_one(name: str) -> dict[str, Any]:
    """Assess one timm model as the sweep does; the record of what happened."""
    import afford
    from afford.errors import TraceError

    start = time.perf_counter()
    record: dict[str, Any] = {"name": name}
    try:
        try:
            a = afford.assess(f"timm:{name}", train_samples=1, infer_samples=1)
        except TraceError as exc:
            if BATCH1_REFUSAL not in str(exc):
                raise
            # PyTorch refuses to train this model at batch 1 (BatchNorm with one value per channel) and afford says
            # so; the model is still supported: its training step traces from batch 2
            record["batch1_training_refused"] = first_line(exc)
            a = afford.assess(f"timm:{name}", train_samples=2, infer_samples=2, batch_size=2)
        record.update(ok=True, params=a.trace.params, forward_flops=a.forward_flops,
                      backward_flops=a.backward_flops, training_traced=a.trace.backward is not None,
                      batch=a.trace.batch_size, notes=[n for n in a.notes if "not traced" in n])
    except Exception as exc:  # noqa: BLE001 - every failure is data here
        cause = exc.__cause__ or exc.__context__
        record.update(ok=False, error_type=type(exc).__name__, error=first_line(exc),
                      cause_type=type(cause).__name__ if cause is not None else None,
                      cause=first_line(cause) if cause is not None else None)
    record["seconds"] = round(time.perf_counter() - start, 2)
    return record


def worker() -> int:
    """Serve names read from stdin, one per line, with one result line each on stdout."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    meta = versions()
    trace_one("resnet18")  # imports everything a trace needs
    # afford collects garbage between phases (gc.collect, so that freed storages leave the live-memory count); with
    # timm and transformers imported that walks ~400k objects, ~1 s a call on this machine. Freezing what the
    # imports made keeps each collection to what a trace creates (a model's trace ~4x faster), same figures.
    gc.collect()
    gc.freeze()
    return serve(MARK, lambda name: {**trace_one(name), **meta} if name else None)


def load(path: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """The last record of each name in the results file."""
    return load_last(path, "name")


def sweep(names: list[str], jobs: int, timeout: float) -> None:
    """Trace `names` with `jobs` workers, appending each record to the results file as it comes."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    todo: queue.Queue[str] = queue.Queue()
    for n in names:
        todo.put(n)
    lock = threading.Lock()
    done = [0]
    meta = versions()

    def slot() -> None:
        w = Worker.start(Path(__file__).resolve(), MARK, ROOT)
        try:
            while True:
                try:
                    name = todo.get_nowait()
                except queue.Empty:
                    return
                if not w.alive() or w.served >= RESTART_EVERY:
                    w.stop()
                    w = Worker.start(Path(__file__).resolve(), MARK, ROOT)
                rec = w.ask(name, timeout, {"name": name, "ok": False})
                if rec.get("error_type") in ("timeout", "crash"):
                    rec.update(meta)
                    w.stop()
                    w = Worker.start(Path(__file__).resolve(), MARK, ROOT)
                with lock, RESULTS.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                    done[0] += 1
                    status = "ok" if rec["ok"] else f"{rec.get('error_type')}: {rec.get('error', '')[:120]}"
                    sys.stderr.write(f"[{done[0]}/{len(names)}] {name} {rec.get('seconds', '?')} s {status}\n")
                    sys.stderr.flush()
        finally:
            w.stop()

    threads = [threading.Thread(target=slot) for _ in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def cause_of(rec: dict[str, Any]) -> tuple[str, str]:
    """The group a failed record falls in: (title, explanation); unmatched errors group by their message."""
    text = f"{rec.get('error_type')}: {rec.get('error', '')}"
    if rec.get("error_type") in ("timeout", "crash"):
        text = str(rec.get("error", ""))
    for pattern, title, why in CAUSES:
        if re.search(pattern, text, re.IGNORECASE) or re.search(pattern, str(rec.get("cause") or ""), re.I):
            return title, why
    generic = re.sub(r"timm:\S+: ", "", str(rec.get("error", "")))
    generic = re.sub(r"\d+", "N", generic)[:160]
    return f"unexplained: {rec.get('error_type')}: {generic}", "Not yet looked at."


def report(names: list[str], results: dict[str, dict[str, Any]], path: Path = DOC) -> str:
    """Write the coverage page: how many models trace, the failures grouped by cause with an explanation each."""
    done = [results[n] for n in names if n in results]
    ok = [r for r in done if r["ok"]]
    failed = [r for r in done if not r["ok"]]
    infer_only = [r for r in ok if not r.get("training_traced", True)]
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in failed:
        groups[cause_of(r)].append(r["name"])
    meta = next(iter(done), {})
    share = 100 * len(ok) / len(done) if done else 0.0
    secs = sorted(float(r.get("seconds", 0)) for r in ok)
    lines = [
        "# timm coverage",
        "",
        "Every name `timm.list_models()` lists, traced at its default config as",
        "`afford.assess(f\"timm:{name}\", train_samples=1, infer_samples=1)` does: batch 1, its pretrained config's",
        "input size, a training step (forward + backward) and an inference pass, on the meta device. Written by",
        "`bench/timm_all.py` (`make timm-coverage`) from `bench/results/timm_all.jsonl`; do not edit by hand.",
        "",
        f"- timm {meta.get('timm', '?')}, torch {meta.get('torch', '?')}, Python {platform.python_version()}",
        f"- models listed: {len(names)}; traced so far: {len(done)}"
        + ("" if len(done) == len(names) else f" (the sweep has {len(names) - len(done)} left; re-run to resume)"),
        f"- **trace: {len(ok)} of {len(done)} ({share:.1f} %)**; fail: {len(failed)}",
    ]
    if secs:
        lines.append(f"- seconds per model (assess, one worker on 2 shared cores): median {secs[len(secs) // 2]:.1f}, "
                     f"max {secs[-1]:.1f}")
    refused = [r for r in ok if r.get("batch1_training_refused")]
    if refused:
        lines.append(f"- of those, {len(refused)} refuse a training step at batch 1, as PyTorch itself does (see "
                     "\"Training at batch 1\" below); they trace at batch 2")
    if infer_only:
        lines.append(f"- of those, {len(infer_only)} traced inference only (their note says why): "
                     + ", ".join(f"`{r['name']}`" for r in infer_only[:20]))
    if refused:
        lines += ["", "## Training at batch 1", "", BATCH1_TEXT, "",
                  ", ".join(f"`{r['name']}`" for r in refused), "",
                  f"Example: `{refused[0]['batch1_training_refused']}`"]
    lines += ["", "## Causes found and fixed", "", *FIXED]
    lines += ["", "## Failures by cause", ""]
    if not failed:
        lines.append("None.")
    for (title, why), members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        lines += [f"### {title} ({len(members)})", "", why, "",
                  ", ".join(f"`{m}`" for m in sorted(members)), ""]
        sample = results[members[0]]
        lines += [f"Example: `{sample.get('error_type')}: {sample.get('error', '')}`", ""]
    text = "\n".join(lines).rstrip() + "\n"
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run what is left of the sweep and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=None, help="trace at most N names this run")
    parser.add_argument("--jobs", type=int, default=1, help="workers in parallel (default 1: 2 shared cores)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per model before it counts as hung")
    parser.add_argument("--retry-failed", action="store_true", help="trace again the names whose last try failed")
    parser.add_argument("--names", default="", help="comma-separated names to trace, done or not")
    parser.add_argument("--report-only", action="store_true", help="only rewrite docs/timm_coverage.md")
    args = parser.parse_args(argv)
    if args.worker:
        return worker()
    import timm

    names = list(timm.list_models())
    results = load()
    if args.names:
        todo = [n.strip() for n in args.names.split(",") if n.strip()]
    elif args.retry_failed:
        todo = [n for n in names if n in results and not results[n]["ok"]]
    else:
        todo = [n for n in names if n not in results]
    if args.limit is not None:
        todo = todo[:args.limit]
    if todo and not args.report_only:
        sys.stderr.write(f"tracing {len(todo)} models with {args.jobs} worker(s), timeout {args.timeout:.0f} s "
                         f"(pid {os.getpid()})\n")
        sweep(todo, args.jobs, args.timeout)
    results = load()
    report(names, results)
    done = [results[n] for n in names if n in results]
    ok = sum(1 for r in done if r["ok"])
    sys.stderr.write(f"{ok} of {len(done)} traced ({len(names)} listed); wrote {DOC.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("AFFORD_NO_CACHE", "1")  # time (and check) real traces, not the trace cache
    sys.exit(main())
