"""What the local runner costs per task, beyond the task's own process.

A DAG of N trivial bash tasks (`true`) runs with parallelism 1, once as a wide DAG
(no edges) and once as a chain, through the real `LocalRunner` (engine, templating,
subprocess launcher, log files, XCom, run records; no display). The baseline runs
the same commands directly, one after the other: `subprocess.run(["sh", "-c",
"true"])`. The overhead per task is (runner time - baseline time) / N.
Goal: under 20 ms per task.

    .venv/bin/python -m benchmarks.bench_local_runner [--tasks 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeflowlite.api.dag import DAG
from kubeflowlite.api.dagrun import RunState
from kubeflowlite.local.display import SilentObserver
from kubeflowlite.local.runner import LocalRunner, RunRequest

GOAL_MS = 20.0
COMMAND = "true"


def trivial_dag(name: str, count: int, *, chain: bool) -> DAG:
    tasks: list[dict[str, Any]] = []
    for i in range(count):
        task: dict[str, Any] = {"name": f"t{i:04d}", "bash": COMMAND}
        if chain and i:
            task["dependsOn"] = [f"t{i - 1:04d}"]
        tasks.append(task)
    return DAG.model_validate({"metadata": {"name": name}, "spec": {"tasks": tasks, "maxActiveTasks": 1000}})


def time_runner(dag: DAG) -> float:
    """Seconds for one local run of `dag` at parallelism 1, into a throwaway runs directory."""
    with tempfile.TemporaryDirectory(prefix="kfl-bench-") as runs:
        request = RunRequest(
            dag=dag,
            logical_date=datetime(2020, 2, 9, tzinfo=UTC),
            run_name=f"{dag.dag_id}-bench",
            runs_dir=Path(runs),
            parallelism=1,
        )
        runner = LocalRunner(request, observer=SilentObserver())
        started = time.perf_counter()
        result = runner.run()
        elapsed = time.perf_counter() - started
        if result.run.status.state is not RunState.success:
            raise RuntimeError(f"benchmark run {dag.dag_id} ended {result.run.status.state.value}")
        return elapsed


def time_direct(count: int) -> float:
    """Seconds to run the same `count` commands directly, one after the other."""
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run(["sh", "-c", COMMAND], check=True)
    return time.perf_counter() - started


def best_of(repeat: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeat))


def run(count: int, repeat: int) -> dict[str, float]:
    """Measure; return seconds for each variant and the overhead per task in ms."""
    wide = trivial_dag("bench-wide", count, chain=False)
    chain = trivial_dag("bench-chain", count, chain=True)
    figures = {
        "direct_s": best_of(repeat, lambda: time_direct(count)),
        "wide_s": best_of(repeat, lambda: time_runner(wide)),
        "chain_s": best_of(repeat, lambda: time_runner(chain)),
    }
    for shape in ("wide", "chain"):
        figures[f"{shape}_overhead_ms"] = (figures[f"{shape}_s"] - figures["direct_s"]) / count * 1000
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local runner overhead per trivial task.")
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs of each variant")
    args = parser.parse_args(argv)
    figures = run(args.tasks, args.repeat)
    n = args.tasks
    print(f"local runner, {n} tasks of `sh -c {COMMAND}`, parallelism 1, best of {args.repeat}:")
    print(
        f"  direct subprocess.run : {figures['direct_s']:.3f} s ({figures['direct_s'] / n * 1000:.2f} ms/task)"
    )
    for shape in ("wide", "chain"):
        total = figures[f"{shape}_s"]
        overhead = figures[f"{shape}_overhead_ms"]
        verdict = "ok" if overhead < GOAL_MS else "OVER GOAL"
        print(
            f"  {shape:5} DAG             : {total:.3f} s ({total / n * 1000:.2f} ms/task), "
            f"overhead {overhead:.2f} ms/task (goal < {GOAL_MS:g}) {verdict}"
        )
    return 0 if all(figures[f"{s}_overhead_ms"] < GOAL_MS for s in ("wide", "chain")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
