"""What the benchmark scripts share: the sandboxes' child process, CPU and call counts, reporting.

The scripts import it as ``harness`` (their own folder is on ``sys.path`` when run as
``python benchmarks/<name>.py``). It imports no quote2cash module, so a script can still
measure code that runs with no quote2cash module loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx


# -- the sandboxes' process --------------------------------------------------------------------------
class Child:
    """The sandboxes' process: the benchmark script re-run with ``--serve``; always ended by :meth:`stop`.

    It answers on stdout in ``WORD {json}`` lines and exits when its stdin is closed.
    """

    def __init__(self, script: str, options: Sequence[str], *, exit_wait: float = 5) -> None:
        cmd = [sys.executable, str(Path(script).resolve()), "--serve", *options]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.exit_wait = exit_wait

    def answer(self, word: str) -> dict[str, Any]:
        """The body of the next ``WORD {json}`` line (other lines are skipped)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(word + " "):
                body: dict[str, Any] = json.loads(line[len(word) + 1 :])
                return body
        raise RuntimeError(f"the sandbox process exited (code {self.proc.wait()}) before answering {word}")

    def ready(self) -> dict[str, Any]:
        """Wait for the READY line."""
        return self.answer("READY")

    def command(self, name: str, answer: str) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return self.answer(answer)

    def cpu_s(self) -> float:
        """User + system CPU seconds the child has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        """The child's peak resident set (VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        """Close its stdin (it exits), then terminate, then kill."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=self.exit_wait)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()


# -- the measuring process ---------------------------------------------------------------------------
def add_run_options(p: argparse.ArgumentParser, workdir_help: str) -> None:
    """The options of every benchmark: ``--workdir``, ``--results`` and the hidden ``--serve``."""
    p.add_argument("--workdir", type=Path, default=None, help=workdir_help)
    p.add_argument("--results", type=Path, default=None, help="append a markdown block to this file")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)


def start_run(given: Path | None, prefix: str) -> tuple[Path, bool]:
    """Make SIGTERM unwind like Ctrl-C (so the finally blocks stop the hub and the sandboxes'
    processes); returns the run's working directory and whether it is a temp dir of its own
    (to remove at the end)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    workdir = Path(tempfile.mkdtemp(prefix=prefix)) if given is None else given
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir, given is None


# -- measuring ---------------------------------------------------------------------------------------
def cpu_self() -> float:
    """User + system CPU seconds this process (every thread) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sandbox_stats(url: str) -> dict[str, int]:
    """A sandbox's request counts so far, by ``METHOD path``."""
    body: dict[str, int] = httpx.get(f"{url}/__sandbox/stats", timeout=30).json()
    return body


def count_diff(before: dict[str, int], after: dict[str, int]) -> Counter[str]:
    """The counts that grew from ``before`` to ``after``, by how much."""
    return Counter({k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0) > 0})


def phases(
    steps: list[Any], start: float, end: float, *, between: str | None = None
) -> list[tuple[str, float]]:
    """Seconds per workflow step (DBOS's own step timestamps), and the time outside any step.

    With ``between``, a row of that name holds the time between the first and the last step
    spent outside them.
    """
    timed = [s for s in steps if s["started_at_epoch_ms"] and s["completed_at_epoch_ms"]]
    if not timed:
        return []
    out = [("before the first step (enqueue, dispatch)", timed[0]["started_at_epoch_ms"] / 1000 - start)]
    inside = 0.0
    for s in timed:
        secs = (s["completed_at_epoch_ms"] - s["started_at_epoch_ms"]) / 1000
        inside += secs
        out.append((str(s["function_name"]).rsplit(".", 1)[-1], secs))
    if between is not None:
        span = (timed[-1]["completed_at_epoch_ms"] - timed[0]["started_at_epoch_ms"]) / 1000
        out.append((between, span - inside))
    out.append(("after the last step (result wait)", end - timed[-1]["completed_at_epoch_ms"] / 1000))
    return out


# -- reporting ---------------------------------------------------------------------------------------
def commit() -> str:
    """The checked-out commit, read from .git without running git (``unknown`` outside a checkout)."""
    git = Path(__file__).resolve().parents[1] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:7]
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:7]
        packed = (git / "packed-refs").read_text().splitlines()
        return next(line.split()[0][:7] for line in packed if line.endswith(" " + ref))
    except (OSError, StopIteration):
        return "unknown"


def machine() -> dict[str, str]:
    """nproc, memory, CPU model, Python and OS."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "nproc": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "cpu": cpu,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def verdict(ok: bool, target: str) -> str:
    """``PASS (target …)`` or ``MISS (target …)``."""
    return f"{'PASS' if ok else 'MISS'} (target {target})"


def print_table(
    rows: Sequence[tuple[str, ...]], header: tuple[str, ...] | None = None, *, last_left: bool = True
) -> None:
    """An aligned plain-text table: names left, figures right (the last column left if ``last_left``)."""
    table = [*([header] if header is not None else []), *rows]
    columns = len(table[0])
    widths = [max(len(r[i]) for r in table) for i in range(columns)]
    for r in table:
        cells = [f"{r[0]:<{widths[0]}}"]
        for i in range(1, columns):
            left = last_left and i == columns - 1
            cells.append(f"{r[i]:<{widths[i]}}" if left else f"{r[i]:>{widths[i]}}")
        print("  ".join(cells).rstrip())


def results_block(title: str, argv: list[str], body: list[str]) -> str:
    """A markdown block for the results file: a heading with the UTC time and ``title``, the command, ``body``."""
    head = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {title}",
        "",
        f"Command: `{shlex.join(['python', *argv])}`",
        "",
    ]
    return "\n".join([*head, *body]) + "\n"


def append_results(path: Path, block: str) -> None:
    """Append a markdown block to the results file, and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(block)
    print(f"\nappended to {path}")
