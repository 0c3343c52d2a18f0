"""Run every benchmark: each `benchmarks/bench_*.py` module's `main()` with its default arguments.

    .venv/bin/python -m benchmarks            # all of them
    .venv/bin/python -m benchmarks engine     # only bench_engine (names match by substring)

Exit status: non-zero if any benchmark's main() returns non-zero (a missed goal) or raises.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path


def modules(selected: list[str]) -> list[str]:
    names = sorted(path.stem for path in Path(__file__).parent.glob("bench_*.py"))
    return [name for name in names if not selected or any(word in name for word in selected)]


def main(argv: list[str] | None = None) -> int:
    selected = sys.argv[1:] if argv is None else argv
    failed: list[str] = []
    for name in modules(selected):
        print(f"=== {name}", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            code = module.main([])
        except Exception:
            traceback.print_exc()
            code = 1
        if code:
            failed.append(name)
        print(flush=True)
    if failed:
        print(f"goals missed or errors in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
