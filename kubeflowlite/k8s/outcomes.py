"""What a status write made happen, and what a DAG looks like now: the pure half of the metrics.

`transition(old, new, ...)` compares the run status the controller held before a
write with the one it wrote: which task instances reached a final state, which
tries started (and how long after their Pod was created), whether the run
started or finished. It is computed from the two statuses only, so counting it
once per successful write counts every final state exactly once, however often
a run is reconciled and whether or not the operator restarted in between (a
restarted operator's "old" is the status it finds on the server).

`dag_levels(...)` folds a DAG and its runs into the numbers the gauges show.
No prometheus_client here (metrics.py records), no I/O: unit- and property-tested.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import DAGRunStatus, RunState, TaskState
from kubeflowlite.api.times import parse_time
from kubeflowlite.core.schedule import Schedule

RUN_FINAL_STATES = (RunState.success.value, RunState.failed.value)
COUNTED_FROM_ZERO = (TaskState.success.value, TaskState.failed.value)
"""Task outcome series created at 0 for every task of a valid DAG (the alerts and ratios use them)."""
IN_FLIGHT_STATES = (
    TaskState.scheduled.value,
    TaskState.queued.value,
    TaskState.running.value,
    TaskState.up_for_retry.value,
)
ACTIVE_RUN_STATES = (RunState.queued.value, RunState.running.value)


@dataclass(frozen=True)
class TaskFinished:
    task: str
    state: str
    seconds: float | None


@dataclass(frozen=True)
class Transition:
    """The outcomes of one status write."""

    tasks_finished: tuple[TaskFinished, ...] = ()
    tasks_started: tuple[tuple[str, float], ...] = ()
    """(task, seconds from its Pod's creation to the try's start) per try that started."""
    run_start_delay: float | None = None
    """Seconds from due to start, when the run started in this write."""
    run_finished: tuple[str, float | None] | None = None
    """(state, duration in seconds) when the run reached a final state in this write."""

    @property
    def empty(self) -> bool:
        return (
            not (self.tasks_finished or self.tasks_started or self.run_finished)
            and self.run_start_delay is None
        )


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def transition(
    old: DAGRunStatus,
    new: DAGRunStatus,
    *,
    due: datetime | None,
    pods_created: Mapping[str, datetime],
) -> Transition:
    """What changed from `old` to `new`; `pods_created` maps task Pod names to their creation times."""
    finished: list[TaskFinished] = []
    started: list[tuple[str, float]] = []
    for task, instance in new.tasks.items():
        before = old.tasks.get(task)
        if before is instance:
            continue  # unchanged (statuses share unchanged task entries): nothing finished or started
        if instance.state.finished and not (
            before is not None and before.state is instance.state and before.try_number == instance.try_number
        ):
            finished.append(
                TaskFinished(task, instance.state.value, _seconds(instance.start_time, instance.end_time))
            )
        if instance.start_time is not None:
            same_try = before is not None and (before.try_number, before.start_time) == (
                instance.try_number,
                instance.start_time,
            )
            created = None if same_try else pods_created.get(instance.pod_name or "")
            if created is not None:
                delay = (instance.start_time - created).total_seconds()
                started.append((task, max(delay, 0.0)))
    run_start_delay = None
    if new.start_time is not None and old.start_time is None and due is not None:
        run_start_delay = max((new.start_time - due).total_seconds(), 0.0)
    run_finished = None
    if new.state.finished and (not old.state.finished or old.end_time != new.end_time):
        run_finished = (new.state.value, _seconds(new.start_time, new.end_time))
    return Transition(tuple(finished), tuple(started), run_start_delay, run_finished)


# --- levels ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DAGLevels:
    """The gauges of one DAG."""

    namespace: str
    dag: str
    ready: bool
    paused: bool
    tasks: tuple[str, ...] = ()
    schedule_interval_seconds: float | None = None
    last_success: float | None = None
    """Unix time the latest successful run ended."""
    task_states: dict[str, int] = field(default_factory=dict)
    run_states: dict[str, int] = field(default_factory=dict)


def schedule_interval_seconds(spec: DAGSpec, now: datetime) -> float | None:
    """The length of the schedule interval around `now` (None: manual or @once)."""
    return _interval_seconds(spec.schedule, spec.timezone, now.replace(minute=0, second=0, microsecond=0))


@functools.lru_cache(maxsize=4096)
def _interval_seconds(schedule: str | None, timezone: str, hour: datetime) -> float | None:
    """Memoized per hour: a cron interval's length changes at most at a DST switch, on the hour."""
    try:
        length = Schedule(schedule=schedule, timezone=timezone).interval_length(hour)
    except ValueError:
        return None
    return None if length is None else length.total_seconds()


def dag_levels(
    *,
    namespace: str,
    name: str,
    paused: bool,
    spec: DAGSpec | None,
    runs: Iterable[Mapping[str, Any]],
    now: datetime,
) -> DAGLevels:
    """Fold one DAG (its spec, None when invalid) and its runs' statuses (as stored) into its gauges.

    Statuses are read as the wire dicts the view holds (no model parsing: this runs every few
    seconds over every run).
    """
    task_states = dict.fromkeys(IN_FLIGHT_STATES, 0)
    run_states = dict.fromkeys(ACTIVE_RUN_STATES, 0)
    last_success: float | None = None
    for status in runs:
        state = status.get("state") or RunState.queued.value
        if state == RunState.success.value and status.get("endTime"):
            try:
                ended = parse_time(str(status["endTime"])).timestamp()
            except ValueError:
                continue
            last_success = ended if last_success is None else max(last_success, ended)
        if state not in run_states:
            continue
        run_states[state] += 1
        for instance in (status.get("tasks") or {}).values():
            task_state = (instance or {}).get("state")
            if task_state in task_states:
                task_states[task_state] += 1
    return DAGLevels(
        namespace=namespace,
        dag=name,
        ready=spec is not None,
        paused=paused,
        tasks=tuple(task.name for task in spec.tasks) if spec is not None else (),
        schedule_interval_seconds=None if spec is None else schedule_interval_seconds(spec, now),
        last_success=last_success,
        task_states=task_states,
        run_states=run_states,
    )
