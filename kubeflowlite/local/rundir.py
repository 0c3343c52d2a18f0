"""Where a local run keeps its files, and how other local runs find them.

The run directory is the local stand-in for what the operator keeps in the
cluster: `run.json` is the DAGRun object (what `kubectl get dagrun -o json` would
show), `xcom.json` is what the run's XCom ConfigMap would hold, and each try's
log file is what `kubectl logs` on its Pod would print. Layout:

    <runs-dir>/<dag>/<run_id>/run.json
    <runs-dir>/<dag>/<run_id>/xcom.json
    <runs-dir>/<dag>/<run_id>/<task>/try-<n>.log
    <runs-dir>/<dag>/<run_id>/<task>/try-<n>.xcom.json   (the task's KFL_XCOM_FILE)

Other local runs read it back: an external-task sensor looks up the watched run's
`run.json` by logical date, and `dependsOnPast` reads the previous run's task
states. Files are replaced atomically, so a reader never sees half a run.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (the run types are imported by what reads runs: `tasks` and `--help` need none)
    from kubeflowlite.api.dagrun import DAGRun, DAGRunStatus, TaskState

DEFAULT_RUNS_DIR = Path("kfl-runs")
RUN_FILE = "run.json"
XCOM_FILE = "xcom.json"
_NEVER = datetime.min.replace(tzinfo=UTC)
"""Sorts before any start time (a run that never started)."""


@dataclass(frozen=True)
class RunDir:
    """The directory of one run of one DAG."""

    path: Path

    @classmethod
    def create(cls, runs_dir: Path, *, dag: str, run_id: str) -> RunDir:
        path = run_path(runs_dir, dag=dag, run_id=run_id)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    def task_dir(self, task: str) -> Path:
        return self.path / task

    def log_path(self, task: str, try_number: int) -> Path:
        """The log of one try: the process's stdout and stderr, plus failure notes from the runner."""
        return self.task_dir(task) / f"try-{try_number}.log"

    def xcom_path(self, task: str, try_number: int) -> Path:
        """The file a try writes its XCom value to (its KFL_XCOM_FILE)."""
        return self.task_dir(task) / f"try-{try_number}.xcom.json"

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    def write_run(
        self,
        run: DAGRun,
        *,
        final: bool = True,
        previous: tuple[DAGRunStatus, Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Store the run as its DAGRun object, replacing the previous version atomically.

        The final record is indented for people; the ones written while the run goes on
        are compact (json's C encoder: the indenting one is pure Python, ten times slower).
        Returns the status as written: with `run.status`, the next write's `previous`
        (what did not change is not serialized again, DAGRunStatus.to_wire).
        """
        wire = run.to_wire(previous=previous)
        write_atomic(self.run_file, json.dumps(wire, indent=2 if final else None) + "\n")
        status: dict[str, Any] = wire["status"]
        return status

    def write_xcoms(self, values: Mapping[str, Any]) -> None:
        """Store the return values of the run's tasks (task id -> JSON value)."""
        write_atomic(self.path / XCOM_FILE, json.dumps(dict(values), indent=2) + "\n")


def run_path(runs_dir: Path, *, dag: str, run_id: str) -> Path:
    return runs_dir / dag / run_id


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stored_runs(runs_dir: Path, dag: str) -> Iterator[DAGRun]:
    """Every readable run record of `dag` under `runs_dir` (unreadable ones are ignored)."""
    from pydantic import ValidationError

    from kubeflowlite.api.dagrun import DAGRun

    root = runs_dir / dag
    if not root.is_dir():
        return
    for run_file in sorted(root.glob(f"*/{RUN_FILE}")):
        try:
            yield DAGRun.model_validate_json(run_file.read_bytes())
        except (OSError, ValidationError):
            continue


def find_run(runs_dir: Path, dag: str, logical_date: datetime) -> DAGRun | None:
    """The stored run of `dag` at exactly `logical_date`; the most recently started one if several."""
    matches = [run for run in stored_runs(runs_dir, dag) if run.spec.logical_date == logical_date]
    if not matches:
        return None
    return max(matches, key=lambda run: run.status.start_time or _NEVER)


def previous_run_states(runs_dir: Path, dag: str, before: datetime) -> dict[str, TaskState] | None:
    """Task states of the latest finished run of `dag` with a logical date before `before` (dependsOnPast)."""
    earlier = [
        run
        for run in stored_runs(runs_dir, dag)
        if run.status.state.finished and run.spec.logical_date < before
    ]
    if not earlier:
        return None
    latest = max(earlier, key=lambda run: run.spec.logical_date)
    return {task: instance.state for task, instance in latest.status.tasks.items()}
