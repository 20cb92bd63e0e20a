"""One worker subprocess that serves requests one line at a time, each answered by one marked JSON line, under a
per-request timeout; shared by bench/timm_all.py and bench/validate_timm_infer.py. A model that hangs or crashes
the interpreter costs its own worker, never the run."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


@dataclass
class Worker:
    """A worker subprocess (`script --worker`) and a thread that queues its result lines (those starting with
    `mark`: libraries may print to stdout too)."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[str | None]
    stderr: IO[str]
    served: int = 0

    @classmethod
    def start(cls, script: Path, mark: str, cwd: Path) -> Worker:
        """Start one worker running `script --worker` in `cwd`."""
        err = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([sys.executable, str(script), "--worker"], cwd=cwd, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for out in proc.stdout:
                if out.startswith(mark):
                    lines.put(out[len(mark):])
            lines.put(None)  # the worker exited

        threading.Thread(target=pump, daemon=True).start()
        return cls(proc, lines, err)

    def ask(self, request: str, timeout: float, failed: dict[str, Any]) -> dict[str, Any]:
        """Send one request line and return the worker's record; a timeout or a dead worker becomes `failed` with
        its `error_type` and `error`."""
        assert self.proc.stdin is not None
        self.served += 1
        try:
            self.proc.stdin.write(request + "\n")
            self.proc.stdin.flush()
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            return {**failed, "error_type": "timeout", "error": f"timeout after {timeout:.0f} s", "seconds": timeout}
        except (BrokenPipeError, OSError):
            line = None
        if line is None:
            self.proc.wait()
            return {**failed, "error_type": "crash",
                    "error": f"crash: worker exited with code {self.proc.returncode}: {self.stderr_tail()}"}
        record: dict[str, Any] = json.loads(line)
        return record

    def stderr_tail(self) -> str:
        """The worker's last stderr line."""
        self.stderr.seek(0)
        lines = [x.strip() for x in self.stderr.read().splitlines() if x.strip()]
        return lines[-1][:300] if lines else "no message"

    def alive(self) -> bool:
        """Whether the worker process still runs."""
        return self.proc.poll() is None

    def stop(self) -> None:
        """End this worker (the process this script started)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def serve(mark: str, handle: Callable[[str], dict[str, Any] | None]) -> int:
    """The worker's side: each stdin line through `handle`, its record (None: the line is skipped) as one marked
    JSON line on stdout, flushed at once."""
    for line in sys.stdin:
        record = handle(line.strip())
        if record is None:
            continue
        sys.stdout.write(mark + json.dumps(record) + "\n")
        sys.stdout.flush()
    return 0


def load_last(path: Path, field: str) -> dict[str, dict[str, Any]]:
    """The last record of each `field` value in a JSON-lines results file (a resumable run appends)."""
    out: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out[rec[field]] = rec
    return out
