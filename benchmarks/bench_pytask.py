"""What a Python function task adds to the start of its process (and so of its Pod).

A Pod running `python3 -m kubeflowlite.pytask` starts an interpreter, imports the
bootstrap, imports the DAG file again to find the function, calls it and writes its
XCom. This times that whole process for a trivial function, from two DAG files:
the native DSL (`from kubeflowlite import DAG, task`) and an Airflow-style file
(`kubeflowlite.airflow` operators and TriggerRule, which loads the API types). The
baselines are a bare interpreter (`python3 -c pass`) and `sh -c true`. The figure
that matters is bootstrap - bare interpreter: the time a Python task costs on top of
the container's own start. Goal: under 150 ms (median).

    .venv/bin/python -m benchmarks.bench_pytask [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from kubeflowlite.core.taskenv import ENV_PYTASK_CONTEXT, ENV_PYTASK_SOURCE, ENV_XCOM_FILE

GOAL_MS = 150.0

NATIVE = """
from kubeflowlite import DAG, task

@task
def answer():
    return 42

with DAG("bench"):
    answer()
"""

AIRFLOW = """
from datetime import datetime, timedelta
from kubeflowlite.airflow import DAG
from kubeflowlite.airflow.operators.python import PythonOperator
from kubeflowlite.airflow.utils.trigger_rule import TriggerRule

def answer():
    return 42

with DAG("bench", schedule_interval="@daily", start_date=datetime(2024, 1, 1),
         default_args={"retries": 1, "retry_delay": timedelta(minutes=5)}):
    PythonOperator(task_id="answer", python_callable=answer, trigger_rule=TriggerRule.ALL_SUCCESS)
"""


def median_ms(argv: list[str], env: dict[str, str], repeat: int) -> float:
    times: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bootstrap_env(directory: Path, source: str, task_id: str) -> dict[str, str]:
    path = directory / f"{task_id}_{abs(hash(source))}.py"
    path.write_text(textwrap.dedent(source))
    facts = {
        "dag_id": "bench",
        "task_id": task_id,
        "run_id": "manual__bench",
        "try_number": 1,
        "callable": "answer",
    }
    return {
        **os.environ,
        ENV_PYTASK_SOURCE: str(path),
        ENV_PYTASK_CONTEXT: json.dumps(facts),
        ENV_XCOM_FILE: str(directory / "xcom.json"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="kfl-bench-") as scratch:
        directory = Path(scratch)
        shell = median_ms(["sh", "-c", "true"], dict(os.environ), args.repeat)
        bare = median_ms([python, "-c", "pass"], dict(os.environ), args.repeat)
        bootstrap = [python, "-m", "kubeflowlite.pytask"]
        native = median_ms(bootstrap, bootstrap_env(directory, NATIVE, "answer"), args.repeat)
        if json.loads((directory / "xcom.json").read_text()) != 42:
            raise RuntimeError("the bootstrap did not write the return value")
        airflow = median_ms(bootstrap, bootstrap_env(directory, AIRFLOW, "answer"), args.repeat)
    print(f"sh -c true                       {shell:7.1f} ms")
    print(f"python3 -c pass                  {bare:7.1f} ms")
    print(
        f"bootstrap, native DSL file       {native:7.1f} ms  (+{native - bare:.1f} ms over the interpreter)"
    )
    print(
        f"bootstrap, Airflow-style file    {airflow:7.1f} ms  (+{airflow - bare:.1f} ms over the interpreter)"
    )
    worst = max(native, airflow) - bare
    ok = worst < GOAL_MS
    print(f"goal: under {GOAL_MS:.0f} ms over the interpreter: {'met' if ok else 'MISSED'} ({worst:.1f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
