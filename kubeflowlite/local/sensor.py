"""The external-task sensor of the local runner, run as a try's process.

`python -m kubeflowlite.local.sensor --runs-dir R --dag D [--task T] --logical-date X ...`
pokes the run record (`<runs-dir>/<dag>/<run_id>/run.json`, the DAGRun object
every local run writes) of the watched DAG's run at logical date X until the run,
or one task of it, reaches an allowed state (exit 0), a failed state (exit 1), or
the timeout passes (exit 1). Running as a process like any other try means the
engine's execution timeout, the log file and Ctrl-C apply to it unchanged.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from kubeflowlite.local.rundir import find_run, parse_utc


def watched_state(runs_dir: Path, *, dag: str, task: str | None, logical_date: datetime) -> str | None:
    """The state of the watched run (or of its task); None when there is no such run or task yet."""
    run = find_run(runs_dir, dag, logical_date)
    if run is None:
        return None
    if task is None:
        return run.status.state.value
    instance = run.status.tasks.get(task)
    return instance.state.value if instance is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeflowlite.local.sensor", description=__doc__)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--dag", required=True)
    parser.add_argument("--task")
    parser.add_argument("--logical-date", required=True)
    parser.add_argument("--allowed", default="success")
    parser.add_argument("--failed", default="failed")
    parser.add_argument("--poke-interval", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=7 * 86400.0)
    args = parser.parse_args(argv)

    logical_date = parse_utc(args.logical_date)
    allowed = {s for s in args.allowed.split(",") if s}
    failed = {s for s in args.failed.split(",") if s}
    target = f"{args.dag}.{args.task}" if args.task else args.dag
    deadline = time.monotonic() + args.timeout
    while True:
        state = watched_state(args.runs_dir, dag=args.dag, task=args.task, logical_date=logical_date)
        _say(f"poking {target} at {args.logical_date}: {state or 'no run record yet'}")
        if state in allowed:
            _say(f"{target} is {state}: done")
            return 0
        if state in failed:
            _say(f"{target} is {state}, one of the failed states {sorted(failed)}")
            return 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _say(f"timed out after {args.timeout:g}s waiting for {target} to be one of {sorted(allowed)}")
            return 1
        time.sleep(min(args.poke_interval, remaining))


def _say(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{stamp} {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
