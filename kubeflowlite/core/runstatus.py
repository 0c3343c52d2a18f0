"""What both shells add to the engine's run status, in one place: the status decoration.

The engine decides states; the operator and the local runner then record the same
facts about the run in the same way (`decorated`), so a DAGRun reads the same
wherever it ran: the spec snapshot, the data interval, the duration (one
formatter, durations.format_elapsed), and where the shell has them, each Pod
task's Pod name and the Admitted condition. Conditions are set by `set_condition`
for every object that has them (DAGs too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubeflowlite.api.dag import Condition, DAGSpec
from kubeflowlite.api.dagrun import DAGRunStatus, TaskInstanceStatus, TaskMap, TaskState
from kubeflowlite.core import durations
from kubeflowlite.core.schedule import RunInterval

CONDITION_ADMITTED = "Admitted"
"""DAGRun condition: True once the run has started; False with the reason it waits (maxActiveRuns, paused...)."""

POD_STATES = frozenset(
    {TaskState.queued, TaskState.running, TaskState.success, TaskState.failed, TaskState.up_for_retry}
)
"""Task states in which the current try has (or had) a Pod whose name the status records."""

PodNamer = Callable[[str, int], str | None]
"""(task, try number) -> the try's Pod name; None for a task that runs without a Pod."""


@dataclass(frozen=True)
class Hold:
    """Why a run may not start yet (shown as its Admitted=False condition)."""

    reason: str
    message: str


def decorated(
    status: DAGRunStatus,
    *,
    spec: DAGSpec,
    interval: RunInterval,
    now: datetime,
    pod_name: PodNamer | None = None,
    admitted: bool = False,
) -> DAGRunStatus:
    """`status` as a shell records it: the run facts; with `pod_name` (the operator) each try's Pod
    name; with `admitted` (a shell that admits runs: the operator) the Admitted=True condition."""
    if pod_name is not None:
        status = with_pod_names(status, pod_name)
    if admitted and not any(c.type == CONDITION_ADMITTED and c.status == "True" for c in status.conditions):
        status = status.model_copy(
            update={"conditions": set_condition(status.conditions, admitted_condition(None), now=now)}
        )
    return with_run_facts(status, spec=spec, interval=interval, now=now)


def with_run_facts(
    status: DAGRunStatus, *, spec: DAGSpec, interval: RunInterval, now: datetime
) -> DAGRunStatus:
    """The snapshot, data interval and duration (until the run's end, else until `now`) added to `status`."""
    update: dict[str, Any] = {
        "dag_spec": spec,
        "data_interval_start": interval.data_interval_start,
        "data_interval_end": interval.data_interval_end,
    }
    if status.start_time is not None:
        end = status.end_time or now
        update["duration"] = durations.format_elapsed((end - status.start_time).total_seconds())
    return status.model_copy(update=update)


def with_pod_names(status: DAGRunStatus, pod_name: PodNamer) -> DAGRunStatus:
    """Each Pod task's current try with the name of its Pod (deterministic, so never a guess).

    The new status shares every other task's status with `status` (TaskMap.updated): no
    copy of a 10,000-task map for the few tasks whose try changed."""
    changes: dict[str, TaskInstanceStatus] = {}
    for task, instance in status.tasks.items():
        wanted = None
        if instance.try_number >= 1 and instance.state in POD_STATES:
            wanted = pod_name(task, instance.try_number)
        if instance.pod_name != wanted:
            changes[task] = instance.model_copy(update={"pod_name": wanted})
    if not changes:
        return status
    return status.model_copy(update={"tasks": TaskMap(status.tasks).updated(changes)})


def set_condition(conditions: list[Condition], condition: Condition, *, now: datetime) -> list[Condition]:
    """`conditions` with `condition` put in place; lastTransitionTime moves only when its status changes."""
    result = []
    found = False
    for existing in conditions:
        if existing.type != condition.type:
            result.append(existing)
            continue
        found = True
        same_status = existing.status == condition.status
        result.append(
            condition.model_copy(
                update={
                    "last_transition_time": existing.last_transition_time
                    if same_status and existing.last_transition_time
                    else now
                }
            )
        )
    if not found:
        result.append(condition.model_copy(update={"last_transition_time": now}))
    return result


def admitted_condition(hold: Hold | None) -> Condition:
    """Admitted=True (the run has started), or False with the reason it waits."""
    if hold is None:
        return Condition(
            type=CONDITION_ADMITTED, status="True", reason="Started", message="the run has started"
        )
    return Condition(type=CONDITION_ADMITTED, status="False", reason=hold.reason, message=hold.message)
