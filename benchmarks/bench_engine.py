"""What the engine costs: decide() driving big DAGs to completion with instant tasks.

Four DAGs of N tasks (default 10,000):

- wide:  one root, N-2 tasks that depend on it, one join that depends on all of them
         (2N-4 edges), maxActiveTasks N;
- chain: t0 -> t1 -> ... -> tN-1;

each once with `type: empty` tasks (the engine settles them itself, in topological
order, in a single call) and once with `bash` tasks (every try is a process, so the
engine must be called again once the shell has observed it). The simulated shell is
instant: before each call it reports every try the previous call started as
succeeded; it passes the latest attempt of every task ever started and names the
tasks whose attempt changed since the last call (`RunInput.changed`), as the local
runner does. Only the time inside decide() is counted; the first call also compiles
the spec (its graph, memoized per spec object) and indexes the status.

A process chain needs N+1 calls. The first is a full pass, O(tasks + edges); after it
the engine visits only what can move and the new status shares the old one's task
map (api.dagrun.TaskMap), so a chain costs O(N log N) in total. On a loaded machine
compare the cpu column: wall time then includes waiting for a core. `--scaling`
prints the per-call cost for growing N. `--no-hints` makes the shell name nothing, so every call
looks at every attempt (the operator's way today, being level-triggered over Pods).

    .venv/bin/python -m benchmarks.bench_engine [--tasks 10000] [--scaling] [--quick] [--no-hints]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import DAGRunStatus, RunState
from kubeflowlite.core.engine import Attempt, AttemptPhase, RunInput, decide

GOAL_SECONDS = 1.0
T0 = datetime(2020, 2, 9, tzinfo=UTC)


def wide(count: int, kind: str) -> DAGSpec:
    middle = [f"t{i:05d}" for i in range(1, count - 1)]
    tasks: list[dict[str, Any]] = [_task("root", kind, [])]
    tasks += [_task(name, kind, ["root"]) for name in middle]
    tasks.append(_task("join", kind, middle))
    return DAGSpec.model_validate({"tasks": tasks, "maxActiveTasks": count})


def chain(count: int, kind: str) -> DAGSpec:
    tasks = [_task(f"t{i:05d}", kind, [f"t{i - 1:05d}"] if i else []) for i in range(count)]
    return DAGSpec.model_validate({"tasks": tasks, "maxActiveTasks": count})


def _task(name: str, kind: str, upstream: list[str]) -> dict[str, Any]:
    body = {"type": "empty"} if kind == "empty" else {"bash": "true"}
    return {"name": name, "dependsOn": upstream, **body}


@dataclass
class Result:
    dag: str
    tasks: int
    edges: int
    calls: int
    total: float
    cpu: float
    first: float
    slowest: float

    @property
    def per_call_ms(self) -> float:
        return self.total / self.calls * 1000


def drive(name: str, spec: DAGSpec, *, hints: bool = True) -> Result:
    """Run `spec` to completion with an instant shell; time spent inside decide() only."""
    status = DAGRunStatus()
    attempts: dict[str, Attempt] = {}
    changed: list[str] = []
    now = T0
    calls = 0
    total = cpu = first = slowest = 0.0
    while True:
        given = RunInput(
            dag=spec, status=status, attempts=attempts, now=now, changed=changed if hints else None
        )
        began, began_cpu = time.perf_counter(), time.process_time()
        decision = decide(given)
        spent = time.perf_counter() - began
        cpu += time.process_time() - began_cpu
        calls += 1
        total += spent
        first = first or spent
        slowest = max(slowest, spent)
        status = decision.status
        if decision.finished:
            break
        if calls > 2 * len(spec.tasks) + 10:
            raise RuntimeError(f"{name}: no end after {calls} calls")
        now += timedelta(milliseconds=1)
        changed = [start.task for start in decision.start]
        for start in decision.start:
            attempts[start.task] = Attempt(
                task=start.task,
                try_number=start.try_number,
                phase=AttemptPhase.succeeded,
                start_time=now,
                end_time=now,
                exit_code=0,
            )
    if status.state is not RunState.success:
        raise RuntimeError(f"{name}: the run ended {status.state.value}")
    edges = sum(len(task.depends_on) for task in spec.tasks)
    return Result(name, len(spec.tasks), edges, calls, total, cpu, first, slowest)


def print_table(results: list[Result]) -> None:
    header = (
        f"{'dag':<14}{'tasks':>7}{'edges':>7}{'calls':>7}{'total s':>10}{'cpu s':>9}"
        f"{'per call ms':>13}{'first ms':>10}{'slowest ms':>12}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.dag:<14}{r.tasks:>7}{r.edges:>7}{r.calls:>7}{r.total:>10.3f}{r.cpu:>9.3f}{r.per_call_ms:>13.3f}"
            f"{r.first * 1000:>10.1f}{r.slowest * 1000:>12.1f}"
        )


def run(count: int, *, process_chain: bool = True, hints: bool = True) -> list[Result]:
    results = [
        drive("wide/empty", wide(count, "empty"), hints=hints),
        drive("chain/empty", chain(count, "empty"), hints=hints),
        drive("wide/bash", wide(count, "bash"), hints=hints),
    ]
    if process_chain:
        results.append(drive("chain/bash", chain(count, "bash"), hints=hints))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument(
        "--scaling", action="store_true", help="also show per-call cost of a process chain vs N"
    )
    parser.add_argument("--quick", action="store_true", help="skip the N-call process chain at full size")
    parser.add_argument(
        "--no-hints", action="store_true", help="the shell does not name the changed attempts"
    )
    args = parser.parse_args(argv)

    hints = not args.no_hints
    print(
        f"engine: decide() to completion, instant tasks, N = {args.tasks}, hints {'on' if hints else 'off'}"
    )
    results = run(args.tasks, process_chain=not args.quick, hints=hints)
    print_table(results)
    slow = [r.dag for r in results if r.total >= GOAL_SECONDS]
    print(
        f"goal: under {GOAL_SECONDS:.0f} s of engine time for each DAG -> "
        + ("met" if not slow else f"MISSED by {', '.join(slow)}")
    )
    if args.scaling:
        print("\nprocess chain, per-call cost vs N:")
        print_table([drive("chain/bash", chain(n, "bash"), hints=hints) for n in (1_000, 2_000, 5_000)])
    return 0 if not slow else 1


if __name__ == "__main__":
    raise SystemExit(main())
