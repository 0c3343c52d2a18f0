"""The external-task sensor of the local runner, run as a try's process.

`python -m kubeflowlite.local.sensor --runs-dir R --dag D [--task T] --logical-date X ...`
pokes the run record (`<runs-dir>/<dag>/<run_id>/run.json`, the DAGRun object
every local run writes) of the watched DAG's run at logical date X until the
sensor rule (core.sensor, the operator's too) says it is done: an allowed state
(exit 0), a failed state or the timeout (exit 1). Running as a process like any
other try means the engine's execution timeout, the log file and Ctrl-C apply to
it unchanged.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from kubeflowlite.api.times import parse_time
from kubeflowlite.core import sensor as sensor_rule
from kubeflowlite.core.engine import AttemptPhase
from kubeflowlite.local.rundir import find_run


def watched_states(runs_dir: Path, *, dag: str, task: str | None, logical_date: datetime) -> list[str | None]:
    """The state of the watched run (or of its task: None if it has no such task); [] without a run."""
    run = find_run(runs_dir, dag, logical_date)
    if run is None:
        return []
    if task is None:
        return [run.status.state.value]
    instance = run.status.tasks.get(task)
    return [instance.state.value if instance is not None else None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeflowlite.local.sensor", description=__doc__)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--dag", required=True)
    parser.add_argument("--task")
    parser.add_argument("--logical-date", required=True)
    parser.add_argument("--allowed", default="success")
    parser.add_argument("--failed", default="failed")
    parser.add_argument("--poke-interval", default="30s", help="a duration, as in the DAG spec")
    parser.add_argument("--timeout", default="7d", help="a duration, as in the DAG spec")
    args = parser.parse_args(argv)

    logical_date = parse_time(args.logical_date)
    started = datetime.now(UTC)
    while True:
        states = watched_states(args.runs_dir, dag=args.dag, task=args.task, logical_date=logical_date)
        now = datetime.now(UTC)
        found = sensor_rule.poke(
            states,
            what=f"{args.dag}.{args.task}" if args.task else args.dag,
            target=logical_date,
            allowed={s for s in args.allowed.split(",") if s},
            failed={s for s in args.failed.split(",") if s},
            timeout=args.timeout,
            poke_interval=args.poke_interval,
            started=started,
            now=now,
        )
        _say(found.message, now)
        if found.phase is not AttemptPhase.running:
            return 0 if found.phase is AttemptPhase.succeeded else 1
        assert found.wake_at is not None
        time.sleep(max(0.0, (found.wake_at - datetime.now(UTC)).total_seconds()))


def _say(message: str, now: datetime) -> None:
    print(f"{now.strftime('%Y-%m-%dT%H:%M:%SZ')} {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
