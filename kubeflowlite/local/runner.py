"""The local runner: the engine's loop with subprocesses instead of Pods.

`LocalRunner.run()` is a thin shell around the pure `engine.decide`: observe every
try (the launcher's `poll`), ask the engine what to do, stop and start tries as
told, report the status, then sleep until a child exits, the engine's `wake_at`
comes (a retry delay, an execution timeout) or a signal arrives. All the rules
(trigger rules, retries, timeouts, branching, when the run is done) are the
engine's; this module only does the I/O the operator would do with the API server.

`--parallelism N` is applied by handing the engine a spec whose maxActiveTasks is
min(N, maxActiveTasks), so the engine itself never asks for more than N tries at
once. The stored run keeps the DAG's own spec.

Stopping (`request_stop`, wired to SIGINT/SIGTERM/SIGHUP by `stop_on_signals`): running
tries get SIGTERM, then SIGKILL after the grace period (a second signal kills at
once); tries that were running or waiting to retry end `failed`, tasks never
started stay `none`, the run is `failed`, and its record and summary are still
written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from kubeflowlite.api.dag import DAG, ObjectMeta, effective_task
from kubeflowlite.api.dagrun import (
    DAGRun,
    DAGRunSpec,
    DAGRunStatus,
    RunState,
    RunType,
    TaskInstanceStatus,
    TaskState,
)
from kubeflowlite.core import engine, templating, xcom
from kubeflowlite.core.engine import NO_XCOM, Attempt, AttemptPhase, RunInput
from kubeflowlite.core.runstatus import with_run_facts
from kubeflowlite.core.schedule import RunInterval, Schedule, format_time
from kubeflowlite.local import runtime_config
from kubeflowlite.local.display import RunInfo, RunObserver, SilentObserver
from kubeflowlite.local.launcher import DEFAULT_GRACE_PERIOD, SubprocessLauncher
from kubeflowlite.local.prepare import RunContext, prepare_try
from kubeflowlite.local.rundir import DEFAULT_RUNS_DIR, RunDir, previous_run_states

PERSIST_INTERVAL = 0.5
"""Seconds between rewrites of run.json while the run is in progress."""

INTERRUPTED = "run interrupted"


@dataclass(frozen=True)
class RunRequest:
    """One local run to execute."""

    dag: DAG
    logical_date: datetime
    """Aware datetime; the run's interval comes from the DAG's schedule."""
    run_name: str
    """metadata.name of the DAGRun (deterministic; the CLI derives it like the operator does)."""
    conf: Mapping[str, Any] = field(default_factory=dict)
    run_type: RunType = RunType.manual
    runs_dir: Path = DEFAULT_RUNS_DIR
    parallelism: int | None = None
    """At most this many tries at once; None: the DAG's maxActiveTasks."""
    dag_file: Path | None = None
    grace_period: float = DEFAULT_GRACE_PERIOD
    environ: Mapping[str, str] | None = None
    """The environment task processes start from; None: os.environ."""


@dataclass(frozen=True)
class RunResult:
    run: DAGRun
    run_dir: RunDir
    interrupted: bool

    @property
    def succeeded(self) -> bool:
        return self.run.status.state is RunState.success


class LocalRunner:
    """Executes one DAG run with the engine, tasks as subprocesses."""

    def __init__(
        self,
        request: RunRequest,
        *,
        observer: RunObserver | None = None,
        launcher: SubprocessLauncher | None = None,
    ) -> None:
        self.request = request
        self.observer = observer or SilentObserver()
        self.launcher = launcher or SubprocessLauncher(grace_period=request.grace_period)
        self._stop_requests = 0
        self._xcoms: dict[str, Any] = {}
        dag = request.dag
        self.run_id = templating.run_id_for(request.run_type.value, request.logical_date)
        self.interval: RunInterval = Schedule.from_spec(dag.spec).interval_for(request.logical_date)
        self.run_dir = RunDir.create(request.runs_dir, dag=dag.dag_id, run_id=self.run_id)
        environ = dict(os.environ if request.environ is None else request.environ)
        self.context = RunContext(
            dag=dag,
            dag_file=request.dag_file,
            run_id=self.run_id,
            interval=self.interval,
            conf=request.conf,
            variables=runtime_config.local_variables(environ),
            connections=runtime_config.local_connections(environ),
            run_dir=self.run_dir,
            runs_dir=request.runs_dir,
            xcom_pull=self.xcom_pull,
            base_env=environ,
            xcom_values=self._xcoms,
        )
        limit = dag.spec.max_active_tasks
        if request.parallelism is not None:
            limit = min(limit, request.parallelism)
        self._engine_spec = dag.spec.model_copy(update={"max_active_tasks": limit})
        self._previous = self._previous_run()
        self._last_persist = 0.0

    # -- public ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop the run (the first call) or kill its tries at once (later calls). Signal-safe."""
        self._stop_requests += 1
        self.launcher.interrupt()

    def xcom_pull(self, task_ids: str | list[str] | None = None, key: str | None = None, **_: Any) -> Any:
        """`ti.xcom_pull`: XCom `key` (default the return value) of a task of this run; None if absent."""
        if task_ids is None:
            return None
        if isinstance(task_ids, str):
            return xcom.select(self._xcoms.get(task_ids, NO_XCOM), key)
        return [xcom.select(self._xcoms.get(task, NO_XCOM), key) for task in task_ids]

    def run(self) -> RunResult:
        started = datetime.now(UTC)
        info = RunInfo(
            dag_id=self.request.dag.dag_id,
            run_id=self.run_id,
            run_dir=self.run_dir.path,
            tasks=[task.name for task in self.request.dag.spec.tasks],
            log_path=self.run_dir.log_path,
        )
        status = DAGRunStatus(start_time=format_time(started))
        self.observer.start(info)
        interrupted = False
        try:
            status = self._loop(status)
        finally:
            if self.launcher.running:
                interrupted = True
                status = self._stop(status)
            interrupted = interrupted or self._stop_requests > 0
            self.launcher.close()
            run = self._dagrun(status, final=True)
            self.run_dir.write_run(run)
            self.run_dir.write_xcoms(self._xcoms)
            self.observer.finish(run, interrupted=interrupted)
        return RunResult(run=run, run_dir=self.run_dir, interrupted=interrupted)

    # -- the loop -------------------------------------------------------------------------

    def _loop(self, status: DAGRunStatus) -> DAGRunStatus:
        launched: set[tuple[str, int]] = set()
        idle_passes = 0
        seen: dict[str, Attempt] = {}
        while True:
            if self._stop_requests:
                return self._stop(status)
            attempts = self._observe()
            now = datetime.now(UTC)
            decision = engine.decide(
                RunInput(
                    dag=self._engine_spec,
                    status=status,
                    attempts=attempts,
                    now=now,
                    previous_run=self._previous,
                    changed=_changed(seen, attempts),
                )
            )
            seen = attempts
            status = decision.status
            for stop in decision.stop:
                self.launcher.terminate(stop.task, stop.try_number, reason=stop.reason)
            started = False
            live = dict(self.launcher.running_tries())
            for start in decision.start:
                if (start.task, start.try_number) in launched:
                    continue
                if start.task in live:
                    # An older try is still being stopped; the engine repeats the StartTry
                    # until it sees the new try, so launch it once the old process is gone.
                    continue
                launched.add((start.task, start.try_number))
                self.launcher.launch(prepare_try(self.context, start.task, start.try_number))
                started = True
            self.observer.update(status)
            self._persist(status)
            if decision.finished:
                if not self.launcher.running:
                    return status
                self.launcher.terminate_all(reason=f"the run is {status.state.value}")
            if started:
                continue  # observe the new tries right away
            timeout = None
            if decision.wake_at is not None:
                timeout = max(0.0, (decision.wake_at - datetime.now(UTC)).total_seconds())
            if timeout is None and not self.launcher.running and not decision.finished:
                idle_passes += 1
                if idle_passes > 1:
                    return self._stalled(status)
                continue
            idle_passes = 0
            self.launcher.wait(timeout)

    def _observe(self) -> dict[str, Attempt]:
        attempts = self.launcher.poll()
        for task, attempt in attempts.items():
            if attempt.phase is AttemptPhase.succeeded and attempt.xcom is not NO_XCOM:
                self._xcoms[task] = attempt.xcom
        return attempts

    def _stalled(self, status: DAGRunStatus) -> DAGRunStatus:
        """No try runs, none can start and no wake-up is due: locally nothing will ever change.

        (dependsOnPast on a failed previous run, for example; the operator would keep
        such a run waiting, but a local run has nothing to wait for.) The run fails,
        the waiting tasks keep their state and the engine's message saying why.
        """
        waiting = [
            f"{task}: {instance.message or instance.state.value}"
            for task, instance in status.tasks.items()
            if not instance.state.finished
        ]
        self.observer.note("the run cannot progress: " + "; ".join(waiting))
        return status.model_copy(
            update={"state": RunState.failed, "end_time": format_time(datetime.now(UTC))}
        )

    def _stop(self, status: DAGRunStatus) -> DAGRunStatus:
        """Terminate every running try and fold the run into its interrupted final state."""
        if self.launcher.running:
            self.observer.note(f"{INTERRUPTED}: stopping {self.launcher.running} running tries")
        self.launcher.terminate_all(reason=INTERRUPTED)
        seen_requests = self._stop_requests
        while self.launcher.running:
            if self._stop_requests > max(1, seen_requests):
                self.launcher.kill_all()
                seen_requests = self._stop_requests
            self.launcher.wait(0.2)
            self.launcher.poll()
        return interrupted_status(status, self._observe(), now=datetime.now(UTC))

    # -- records --------------------------------------------------------------------------

    def _persist(self, status: DAGRunStatus) -> None:
        moment = time.monotonic()
        if moment - self._last_persist < PERSIST_INTERVAL:
            return
        self._last_persist = moment
        self.run_dir.write_run(self._dagrun(status, final=False))

    def _dagrun(self, status: DAGRunStatus, *, final: bool) -> DAGRun:
        now = datetime.now(UTC)
        if final and status.end_time is None and status.state.finished:
            status = status.model_copy(update={"end_time": format_time(now)})
        status = with_run_facts(status, spec=self.request.dag.spec, interval=self.interval, now=now)
        updates: dict[str, Any] = {}
        finished = sum(1 for t in status.tasks.values() if t.state.finished)
        updates["tasks_summary"] = f"{finished}/{len(self.request.dag.spec.tasks)}"
        return DAGRun(
            metadata=ObjectMeta(name=self.request.run_name),
            spec=DAGRunSpec(
                dag_name=self.request.dag.dag_id,
                logical_date=format_time(self.interval.logical_date),
                conf=dict(self.request.conf),
                run_type=self.request.run_type,
            ),
            status=status.model_copy(update=updates),
        )

    def _previous_run(self) -> dict[str, TaskState] | None:
        spec = self.request.dag.spec
        if not any(effective_task(spec, task).depends_on_past for task in spec.tasks):
            return None
        return previous_run_states(
            self.request.runs_dir, self.request.dag.dag_id, before=self.interval.logical_date
        )


def interrupted_status(
    status: DAGRunStatus, attempts: Mapping[str, Attempt], *, now: datetime
) -> DAGRunStatus:
    """The final status of a stopped run: tried tasks failed, untried ones none, the run failed."""
    tasks: dict[str, TaskInstanceStatus] = {}
    for task, instance in status.tasks.items():
        attempt = attempts.get(task)
        if instance.state.finished:
            tasks[task] = instance
        elif attempt is not None and attempt.try_number >= instance.try_number:
            tasks[task] = instance.model_copy(
                update={
                    "state": TaskState.failed,
                    "try_number": attempt.try_number,
                    "start_time": format_time(attempt.start_time)
                    if attempt.start_time
                    else instance.start_time,
                    "end_time": format_time(attempt.end_time or now),
                    "exit_code": attempt.exit_code,
                    "message": INTERRUPTED,
                    "next_try_at": None,
                }
            )
        elif instance.try_number >= 1:
            tasks[task] = instance.model_copy(
                update={
                    "state": TaskState.failed,
                    "message": f"{INTERRUPTED} before the next try",
                    "next_try_at": None,
                }
            )
        else:
            tasks[task] = instance.model_copy(
                update={"state": TaskState.none, "message": f"{INTERRUPTED} before the task started"}
            )
    return status.model_copy(update={"state": RunState.failed, "tasks": tasks, "end_time": format_time(now)})


@contextlib.contextmanager
def stop_on_signals(runner: LocalRunner) -> Iterator[None]:
    """Route SIGINT, SIGTERM and SIGHUP (terminal closed) to `runner.request_stop` while the block runs.

    Main thread only; elsewhere signals are left alone.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        runner.request_stop()

    previous: dict[signal.Signals, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _changed(seen: Mapping[str, Attempt], attempts: Mapping[str, Attempt]) -> list[str]:
    """The tasks whose attempt differs from the last pass's (what the engine needs to look at)."""
    gone = [task for task in seen if task not in attempts]
    return [task for task, attempt in attempts.items() if seen.get(task) != attempt] + gone
