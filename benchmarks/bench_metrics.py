"""How much the per-DAG gauges cost: one refresh (outcomes.dag_levels + LevelPublisher) over many DAGs.

The operator recomputes them every 5 s (operator.LEVELS_EVERY) on its event loop, so a
refresh must stay a small fraction of that. Goal: 1,000 DAGs with 20 runs each (5 of them
unfinished, 10 tasks per run) in under 500 ms, i.e. under 10 % of the loop's time.

    .venv/bin/python -m benchmarks metrics
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.k8s import metrics, outcomes

GOAL_SECONDS = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    spec = DAGSpec.model_validate(
        {"schedule": "0 * * * *", "tasks": [{"name": f"t{i}", "bash": "true"} for i in range(10)]}
    )
    finished = {
        "state": "success",
        "endTime": "2024-05-01T10:00:00Z",
        "tasks": {f"t{i}": {"state": "success"} for i in range(10)},
    }
    running = {
        "state": "running",
        "tasks": {f"t{i}": {"state": "running" if i < 3 else "none"} for i in range(10)},
    }
    runs = [finished] * (args.runs - 5) + [running] * 5
    publisher = metrics.LevelPublisher()
    now = datetime.now(UTC)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        levels = [
            outcomes.dag_levels(
                namespace="bench", name=f"dag-{n}", paused=False, spec=spec, runs=runs, now=now
            )
            for n in range(args.dags)
        ]
        publisher.publish(levels)
        timings.append(time.perf_counter() - started)
    best = min(timings)
    print(
        f"gauge refresh: {args.dags} DAGs x {args.runs} runs in {best * 1000:.0f} ms (best of 3; goal < {GOAL_SECONDS * 1000:.0f} ms)"
    )
    return 0 if best < GOAL_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
