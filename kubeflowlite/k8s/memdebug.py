"""Where the operator's memory goes: a debugging seam, off unless KFL_DEBUG_MEMORY names a file.

With it set, the operator starts tracemalloc (8 frames) and, on SIGUSR2, appends to
that file: RSS, what tracemalloc traces, glibc's view of the heap (in use, free
but kept), the live objects by type (gc), and the top allocation sites by line
and by traceback. The benchmark (benchmarks/bench_operator.py --memory-report)
sends the signal at its measuring points. Not for production: tracing roughly
doubles the memory and slows every allocation.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path

ENV = "KFL_DEBUG_MEMORY"
FRAMES = 8


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Start tracing and answer SIGUSR2 with a report, if ENV is set."""
    target = os.environ.get(ENV)
    if not target or sys.platform != "linux":
        return
    tracemalloc.start(FRAMES)
    loop.add_signal_handler(signal.SIGUSR2, lambda: write(Path(target)))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _mallinfo() -> str:
    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return "mallinfo2: not available"
    mib = 1024 * 1024
    return (
        f"malloc: arena {info.arena / mib:.1f} MiB, in use {info.uordblks / mib:.1f} MiB, "
        f"free {info.fordblks / mib:.1f} MiB, mmapped {info.hblkhd / mib:.1f} MiB"
    )


def write(path: Path) -> None:
    started = time.perf_counter()
    lines = [f"=== {time.strftime('%H:%M:%S')} RSS {rss_mib():.1f} MiB", _mallinfo()]
    current, peak = tracemalloc.get_traced_memory()
    lines.append(f"tracemalloc: current {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB")
    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    lines.append(
        f"gc objects: {sum(counts.values())}; gc counts {gc.get_count()}; frozen {gc.get_freeze_count()}"
    )
    lines += [f"  {n:>9} {name}" for name, n in counts.most_common(25)]
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            ]
        )
        lines.append("top lines:")
        for stat in snapshot.statistics("lineno")[:40]:
            lines.append(f"  {stat.size / 2**20:8.2f} MiB {stat.count:>8} {stat.traceback[0]}")
        lines.append("top tracebacks:")
        for stat in snapshot.statistics("traceback")[:12]:
            lines.append(f"  {stat.size / 2**20:8.2f} MiB {stat.count:>8}")
            lines += [f"      {frame}" for frame in stat.traceback.format(limit=12, most_recent_first=True)]
    lines.append(f"(report took {time.perf_counter() - started:.1f}s)")
    with path.open("a") as out:
        out.write("\n".join(lines) + "\n")
