"""k8s.memdebug: the operator's memory report (a debugging seam behind KFL_DEBUG_MEMORY)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from kubeflowlite.k8s import memdebug


def test_a_report_says_where_the_memory_is(tmp_path: Path) -> None:
    tracemalloc.start(memdebug.FRAMES)
    try:
        kept = [f"line {i}" * 100 for i in range(2000)]  # the allocation the report must find
        report = tmp_path / "memory.txt"
        memdebug.write(report)
        memdebug.write(report)
    finally:
        tracemalloc.stop()
    text = report.read_text()
    assert [line[:4] for line in text.splitlines() if line.startswith("=== ")] == ["=== "] * 2
    assert "RSS" in text and "malloc:" in text
    assert "gc objects:" in text and "  " in text.split("gc objects:")[1]
    top = text.split("top lines:")[1].split("top tracebacks:")[0]
    assert "test_memdebug.py" in top.splitlines()[1], top
    assert kept
