"""What both shells add to the engine's run status (the spec snapshot, the data interval, the duration), and how it is stored.

The engine decides states; the operator and the local runner then record the same
facts about the run in the same way, so a DAGRun reads the same wherever it ran
(`status.duration` in particular is written by one formatter, durations.format_elapsed).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import DAGRunStatus, TaskInstanceStatus, TaskMap, TaskState
from kubeflowlite.core import durations
from kubeflowlite.core.schedule import RunInterval, format_time, parse_time


def with_run_facts(
    status: DAGRunStatus, *, spec: DAGSpec, interval: RunInterval, now: datetime
) -> DAGRunStatus:
    """The snapshot, data interval and duration (until the run's end, else until `now`) added to `status`."""
    update: dict[str, Any] = {
        "dag_spec": spec,
        "data_interval_start": format_time(interval.data_interval_start),
        "data_interval_end": format_time(interval.data_interval_end),
    }
    if status.start_time:
        end = parse_time(status.end_time) if status.end_time else now
        update["duration"] = durations.format_elapsed((end - parse_time(status.start_time)).total_seconds())
    return status.model_copy(update=update)


LARGE_RUN_TASKS = 1000
"""Runs of more tasks than this keep less per task in their status (see `to_wire`)."""


def to_wire(
    status: DAGRunStatus, *, previous: tuple[DAGRunStatus, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The status as stored (camelCase JSON), small enough for etcd at 10,000 tasks, cheap to redo.

    Size (etcd refuses objects over 1.5 MiB; a 10,000-task run written as the model
    dumps it is 2.6 MiB): empty `tries` lists are left out, the DAG spec snapshot
    leaves out the fields at their defaults (as a user's DAG file does), and in a run
    of more than LARGE_RUN_TASKS tasks a task that succeeded keeps only its state and
    try (its Pod, its metrics and its log keep the rest), and no task its `podName`
    (it is `names.pod_name(run, task, try)`). Reading it back gives the same model,
    less those details.

    Cost: with `previous` (an earlier status and the wire made of it), a task whose
    status object is the same (TaskMap shares unchanged ones) reuses its wire dict,
    and so does an unchanged spec snapshot: a write costs O(tasks changed), not a
    serialization of every task. Equal inputs give identical (`is`) parts, which the
    comparison and the merge patch of the next write skip at once.
    """
    wire = status.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"tasks", "dag_spec"})
    old_status, old_wire = previous if previous is not None else (None, {})
    if status.dag_spec is not None:
        if old_status is not None and old_status.dag_spec is status.dag_spec and "dagSpec" in old_wire:
            wire["dagSpec"] = old_wire["dagSpec"]
        else:
            wire["dagSpec"] = status.dag_spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    current = _as_dict(status.tasks)
    large = len(current) > LARGE_RUN_TASKS
    earlier = _as_dict(old_status.tasks) if old_status is not None else {}
    reusable = old_status is not None and large == (len(earlier) > LARGE_RUN_TASKS)
    earlier_wire: Mapping[str, Any] = old_wire.get("tasks") or {}
    tasks: dict[str, Any] = {}
    for name, instance in current.items():
        same = earlier_wire.get(name) if reusable and earlier.get(name) is instance else None
        tasks[name] = same if same is not None else _task_wire(instance, large=large)
    wire["tasks"] = tasks
    return wire


def _task_wire(instance: TaskInstanceStatus, *, large: bool) -> dict[str, Any]:
    if large and instance.state is TaskState.success:
        return {"state": instance.state.value, "tryNumber": instance.try_number}
    exclude = {"pod_name"} if large else set()
    if not instance.tries:
        exclude.add("tries")
    return instance.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=exclude)


def _as_dict(tasks: Mapping[str, TaskInstanceStatus]) -> dict[str, TaskInstanceStatus]:
    return tasks.to_dict() if isinstance(tasks, TaskMap) else dict(tasks)
