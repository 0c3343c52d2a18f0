"""The run controller's judgements, as pure functions over plain objects.

Everything the reconcile decides that the engine does not, each a small function
tested without a cluster:

- `attempts_from_pods`: the run's Pods folded into one Attempt per task (the
  highest try wins), plus a failed attempt for a running try whose Pod is gone
  (deleted by hand, or garbage-collected with a lost node);
- `admission`: whether a run that has not started may start now (its DAG exists,
  is valid and not paused, and maxActiveRuns has room, oldest logical date first);
- `previous_run_states`: the task states of the run before this one (dependsOnPast);
- `pods_to_clean`: which Pods the DAG's podCleanup policy deletes now;
- `pod_namer`: the Pod name of a try, for the one status decoration (core.runstatus).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeflowlite.api.dag import DAGSpec, TaskType
from kubeflowlite.api.dagrun import DAGRunStatus, RunState, TaskState
from kubeflowlite.api.times import parse_time
from kubeflowlite.core import runstatus
from kubeflowlite.core.engine import Attempt, AttemptPhase
from kubeflowlite.core.runstatus import Hold
from kubeflowlite.k8s import names, observe

Obj = Mapping[str, Any]

_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


# --- observing ------------------------------------------------------------------------------------


def pod_try(pod: Obj) -> tuple[str, int]:
    """(task id, try number) of one of our Pods."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    task = annotations.get(names.ANNOTATION_TASK_ID) or labels.get(names.LABEL_TASK, "")
    try:
        number = int(labels.get(names.LABEL_TRY, "0"))
    except ValueError:
        number = 0
    return task, number


def attempts_from_pods(
    pods: Iterable[Obj],
    *,
    status: DAGRunStatus,
    now: datetime,
    pending_timeout: timedelta,
    pod_tasks: frozenset[str],
    run_name: str,
    fold: Callable[[Obj], Attempt] | None = None,
) -> dict[str, Attempt]:
    """One Attempt per task: its newest observed try, or a failure for a running try whose Pod vanished.

    `pod_tasks` are the tasks that run as Pods (inline tasks have no Pod to miss).
    `fold` turns one Pod into its Attempt (default: observe.attempt_from_pod at `now`);
    the controller passes a memoizing one.
    """
    if fold is None:

        def fold(pod: Obj) -> Attempt:
            return observe.attempt_from_pod(pod, now=now, pending_timeout=pending_timeout)

    newest: dict[str, Obj] = {}
    for pod in pods:
        task, number = pod_try(pod)
        if not task or number < 1:
            continue
        current = newest.get(task)
        if current is None or pod_try(current)[1] < number:
            newest[task] = pod
    attempts = {task: fold(pod) for task, pod in newest.items()}
    for task, instance in status.tasks.items():
        if instance.state is not TaskState.running or task not in pod_tasks:
            continue
        seen = attempts.get(task)
        if seen is None or seen.try_number < instance.try_number:
            gone = names.pod_name(run_name, task, instance.try_number)
            attempts[task] = Attempt(
                task=task,
                try_number=instance.try_number,
                phase=AttemptPhase.failed,
                start_time=instance.start_time,
                end_time=now,
                message=f"pod {gone} disappeared while running (deleted, or its node was lost)",
            )
    return attempts


def pending_deadline(pods: Iterable[Obj], pending_timeout: timedelta) -> datetime | None:
    """When the earliest still-Pending Pod passes the pending timeout (the reconcile must look then)."""
    deadlines = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        created = metadata.get("creationTimestamp")
        if phase == "Pending" and created and not metadata.get("deletionTimestamp"):
            deadlines.append(parse_time(str(created)) + pending_timeout)
    return min(deadlines) if deadlines else None


# --- starting a run -----------------------------------------------------------------------------


def run_started(run: Obj) -> bool:
    status = run.get("status") or {}
    return bool(status.get("startTime")) or status.get("state") in ("running", "success", "failed")


def run_finished(run: Obj) -> bool:
    return (run.get("status") or {}).get("state") in ("success", "failed")


def _order_key(run: Obj) -> tuple[datetime, str]:
    text = (run.get("spec") or {}).get("logicalDate") or ""
    try:
        moment = parse_time(text)
    except ValueError:
        moment = _FAR_FUTURE
    return moment, (run.get("metadata") or {}).get("name", "")


def admission(
    *,
    run: Obj,
    dag: Obj | None,
    dag_spec: DAGSpec | None,
    dag_problem: str | None,
    runs_of_dag: Iterable[Obj],
) -> Hold | None:
    """None if the run may start now; otherwise why it waits.

    maxActiveRuns counts started, unfinished runs of the DAG; waiting runs start
    oldest logical date first, so two runs reconciled at once never both take the
    last slot. A paused DAG holds its scheduled and manual runs (as Airflow does);
    backfill runs were asked for explicitly and go ahead (maxActiveRuns still applies).
    """
    dag_name = (run.get("spec") or {}).get("dagName", "")
    if dag is None:
        return Hold("DAGNotFound", f"DAG {dag_name!r} does not exist in this namespace")
    if dag_spec is None:
        return Hold("InvalidDAG", f"DAG {dag_name!r} is invalid: {dag_problem or 'see its Ready condition'}")
    backfill = (run.get("spec") or {}).get("runType") == "backfill"
    if dag_spec.paused and not backfill:
        return Hold("DAGPaused", f"DAG {dag_name!r} is paused")
    me = (run.get("metadata") or {}).get("name")
    others = [r for r in runs_of_dag if (r.get("metadata") or {}).get("name") != me]
    active = sum(1 for r in others if run_started(r) and not run_finished(r))
    mine = _order_key(run)
    ahead = sum(1 for r in others if not run_started(r) and not run_finished(r) and _order_key(r) < mine)
    limit = dag_spec.max_active_runs
    if active + ahead >= limit:
        return Hold(
            "MaxActiveRuns",
            f"waiting: {active} run(s) of DAG {dag_name!r} active and {ahead} queued ahead (maxActiveRuns {limit})",
        )
    return None


def previous_run_states(run: Obj, runs_of_dag: Iterable[Obj]) -> dict[str, TaskState] | None:
    """Task states of the DAG's run with the latest logical date before this run's; None if there is none."""
    mine = _order_key(run)
    earlier = [r for r in runs_of_dag if _order_key(r) < mine]
    if not earlier:
        return None
    previous = max(earlier, key=_order_key)
    tasks = (previous.get("status") or {}).get("tasks") or {}
    states: dict[str, TaskState] = {}
    for task, instance in tasks.items():
        try:
            states[task] = TaskState(instance.get("state") or "none")
        except ValueError:
            continue
    return states


def runs_after(run: Obj, runs_of_dag: Iterable[Obj]) -> list[str]:
    """Names of unfinished runs with a later logical date (dependsOnPast waits on this run)."""
    mine = _order_key(run)
    return [
        (r.get("metadata") or {}).get("name", "")
        for r in runs_of_dag
        if _order_key(r) > mine and not run_finished(r)
    ]


# --- acting after the decision ------------------------------------------------------------------


def pods_to_clean(policy: str, pods: Iterable[Obj], status: DAGRunStatus) -> list[str]:
    """Names of Pods the podCleanup policy deletes, given the status just persisted.

    onSuccess: a Pod whose try the status records as the task's success;
    onRunEnd: every Pod once the run is finished; keep: none. Pods already being
    deleted are left alone.
    """
    if policy == "keep":
        return []
    doomed = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            continue
        if policy == "onRunEnd":
            if status.state.finished:
                doomed.append(metadata.get("name", ""))
            continue
        task, number = pod_try(pod)
        instance = status.tasks.get(task)
        # The status records a success only once the main container ended with 0 and its
        # XCom is stored; the Pod's phase may still say Running then (on a real node it
        # follows the container by a second or so), so it is not waited for.
        recorded = (
            instance is not None and instance.state is TaskState.success and instance.try_number == number
        )
        if recorded:
            doomed.append(metadata.get("name", ""))
    return [name for name in doomed if name]


# --- decorating the status --------------------------------------------------------------------------


_POD_TASKS: dict[int, tuple[DAGSpec, frozenset[str]]] = {}


def pod_task_names(spec: DAGSpec) -> frozenset[str]:
    """Tasks that run as Pods: everything but empty tasks, sensors and triggerDag tasks.

    Memoized per spec object (asked several times per reconcile; a run's snapshot never changes).
    """
    found = _POD_TASKS.get(id(spec))
    if found is None or found[0] is not spec:
        inline = {TaskType.empty, TaskType.sensor, TaskType.trigger_dag}
        if len(_POD_TASKS) > 256:
            _POD_TASKS.clear()
        found = (spec, frozenset(task.name for task in spec.tasks if task.effective_type() not in inline))
        _POD_TASKS[id(spec)] = found
    return found[1]


def pod_namer(run_name: str, pod_tasks: frozenset[str]) -> runstatus.PodNamer:
    """The Pod name of a try of one of `pod_tasks` (runstatus.decorated records it in the status)."""

    def pod_name(task: str, try_number: int) -> str | None:
        return names.pod_name(run_name, task, try_number) if task in pod_tasks else None

    return pod_name


def state_of(status: Obj) -> RunState:
    try:
        return RunState(status.get("state") or "queued")
    except ValueError:
        return RunState.queued
