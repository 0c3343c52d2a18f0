"""The local runner: the engine's loop with subprocesses instead of Pods.

`LocalRunner.run()` is a thin shell around the one loop (core.loop, the operator's
too): each pass observes every try, asks the engine, launches and stops tries as
told (`_Tries`, the port's subprocess implementation); the runner reports the
status, then sleeps until a child exits, the engine's `wake_at` comes (a retry
delay, an execution timeout) or a signal arrives. All the rules (trigger rules,
retries, timeouts, branching, when the run is done, stalled or interrupted) are the
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    TaskState,
)
from kubeflowlite.core import engine, loop, runstatus, templating, xcom
from kubeflowlite.core.engine import NO_XCOM, Attempt, AttemptPhase, StartTry, StopTry
from kubeflowlite.core.schedule import RunInterval, Schedule
from kubeflowlite.local import runtime_config
from kubeflowlite.local.display import RunInfo, RunObserver, SilentObserver
from kubeflowlite.local.launcher import DEFAULT_GRACE_PERIOD, SubprocessLauncher
from kubeflowlite.local.prepare import RunContext, prepare_try
from kubeflowlite.local.rundir import DEFAULT_RUNS_DIR, RunDir, previous_run_states

PERSIST_INTERVAL = 0.5
"""Seconds between rewrites of run.json while the run is in progress."""


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
        self._written: tuple[DAGRunStatus, Mapping[str, Any]] | None = None
        """The status last written to run.json and its stored form (reused where unchanged)."""

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
        status = DAGRunStatus(start_time=started)
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
            self.run_dir.write_run(run, previous=self._written)
            self.run_dir.write_xcoms(self._xcoms)
            self.observer.finish(run, interrupted=interrupted)
        return RunResult(run=run, run_dir=self.run_dir, interrupted=interrupted)

    # -- the loop -------------------------------------------------------------------------

    def _loop(self, status: DAGRunStatus) -> DAGRunStatus:
        """core.loop's passes until the run ends; between passes, sleep until something can change."""
        tries = _Tries(self)
        seen: Mapping[str, Attempt] | None = {}
        while True:
            if self._stop_requests:
                return self._stop(status)
            outcome = loop.run_pass(
                loop.Ask(
                    dag=self._engine_spec,
                    status=status,
                    now=datetime.now(UTC),
                    previous_run=self._previous,
                    seen=seen,
                ),
                tries,
            )
            decision, seen = outcome.decision, outcome.attempts
            status = decision.status
            self.observer.update(status)
            self._persist(status)
            if decision.finished:
                if not self.launcher.running:
                    return status
                self.launcher.terminate_all(reason=f"the run is {status.state.value}")
            if outcome.launched:
                continue  # observe the new tries right away
            if engine.stalled(decision, outcome.attempts):
                return self._stalled(status)
            timeout = None
            if decision.wake_at is not None:
                timeout = max(0.0, (decision.wake_at - datetime.now(UTC)).total_seconds())
            self.launcher.wait(timeout)

    def _stalled(self, status: DAGRunStatus) -> DAGRunStatus:
        """Nothing will ever change (engine.stalled); the operator would wait for another run, but a
        local run has nothing to wait for: the run fails, the waiting tasks say why they wait."""
        self.observer.note("the run cannot progress: " + "; ".join(engine.waiting_reasons(status)))
        return engine.stalled_status(status, now=datetime.now(UTC))

    def _stop(self, status: DAGRunStatus) -> DAGRunStatus:
        """Terminate every running try and fold the run into its interrupted final state."""
        if self.launcher.running:
            self.observer.note(f"{engine.INTERRUPTED}: stopping {self.launcher.running} running tries")
        self.launcher.terminate_all(reason=engine.INTERRUPTED)
        seen_requests = self._stop_requests
        while self.launcher.running:
            if self._stop_requests > max(1, seen_requests):
                self.launcher.kill_all()
                seen_requests = self._stop_requests
            self.launcher.wait(0.2)
            self.launcher.poll()
        attempts = _Tries(self).observe()
        return engine.interrupted(self.request.dag.spec, status, attempts, now=datetime.now(UTC))

    # -- records --------------------------------------------------------------------------

    def _persist(self, status: DAGRunStatus) -> None:
        moment = time.monotonic()
        if moment - self._last_persist < PERSIST_INTERVAL:
            return
        self._last_persist = moment
        run = self._dagrun(status, final=False)
        self._written = (run.status, self.run_dir.write_run(run, final=False, previous=self._written))

    def _dagrun(self, status: DAGRunStatus, *, final: bool) -> DAGRun:
        now = datetime.now(UTC)
        if final and status.end_time is None and status.state.finished:
            status = status.model_copy(update={"end_time": now})
        status = runstatus.decorated(status, spec=self.request.dag.spec, interval=self.interval, now=now)
        return DAGRun(
            metadata=ObjectMeta(name=self.request.run_name),
            spec=DAGRunSpec(
                dag_name=self.request.dag.dag_id,
                logical_date=self.interval.logical_date,
                conf=dict(self.request.conf),
                run_type=self.request.run_type,
            ),
            status=status,
        )

    def _previous_run(self) -> dict[str, TaskState] | None:
        spec = self.request.dag.spec
        if not any(effective_task(spec, task).depends_on_past for task in spec.tasks):
            return None
        return previous_run_states(
            self.request.runs_dir, self.request.dag.dag_id, before=self.interval.logical_date
        )


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


class _Tries:
    """The local runner's implementation of the execution port (core.loop.Launcher): tries as processes.

    A StartTry is repeated until its try is observed, so each try is launched once; and
    while an older try of the task is still being stopped, the new one waits for it to
    be gone. Observed XCom values are kept for templates and `xcom_pull`.
    """

    def __init__(self, runner: LocalRunner) -> None:
        self.runner = runner
        self.launched: set[tuple[str, int]] = set()

    def observe(self) -> dict[str, Attempt]:
        attempts = self.runner.launcher.poll()
        self._keep_xcoms(attempts.values())
        return attempts

    def launch(self, starts: Sequence[StartTry]) -> dict[str, Attempt]:
        launcher = self.runner.launcher
        live = dict(launcher.running_tries())
        requests = []
        for start in starts:
            if (start.task, start.try_number) in self.launched or start.task in live:
                continue
            self.launched.add((start.task, start.try_number))
            requests.append(prepare_try(self.runner.context, start.task, start.try_number))
        immediate = {
            request.task: attempt
            for request, attempt in zip(requests, launcher.launch_all(requests), strict=True)
            if attempt is not None
        }
        self._keep_xcoms(immediate.values())
        return immediate

    def stop(self, stops: Sequence[StopTry]) -> None:
        for stop in stops:
            self.runner.launcher.terminate(stop.task, stop.try_number, reason=stop.reason)

    def _keep_xcoms(self, attempts: Iterable[Attempt]) -> None:
        for attempt in attempts:
            if attempt.phase is AttemptPhase.succeeded and attempt.xcom is not NO_XCOM:
                self.runner._xcoms[attempt.task] = attempt.xcom
