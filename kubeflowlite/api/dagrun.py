"""The DAGRun custom resource: one run of a DAG at one logical date.

The local runner prints exactly this shape (`kubeflowlite run -o json`) and the
operator stores it, so a run looks the same wherever it ran. Status is observed
state, written by the engine's shell; users change a run only through its spec
(for example `spec.clear`), never by editing status.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any, Literal

import immutables
from pydantic import Field, GetCoreSchemaHandler
from pydantic_core import core_schema

from kubeflowlite.api.base import ApiModel, ManyModel
from kubeflowlite.api.dag import CONDITIONS_LIST_EXTRA, Condition, DAGSpec, ObjectMeta
from kubeflowlite.api.times import Time


class TaskState(str, Enum):
    """Task instance states, named exactly as Airflow's."""

    none = "none"
    scheduled = "scheduled"
    queued = "queued"
    running = "running"
    success = "success"
    failed = "failed"
    up_for_retry = "up_for_retry"
    upstream_failed = "upstream_failed"
    skipped = "skipped"

    @property
    def finished(self) -> bool:
        return self in FINISHED_TASK_STATES


FINISHED_TASK_STATES = frozenset(
    {TaskState.success, TaskState.failed, TaskState.upstream_failed, TaskState.skipped}
)


class RunState(str, Enum):
    """DAG run states, named exactly as Airflow's."""

    queued = "queued"
    running = "running"
    success = "success"
    failed = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunState.success, RunState.failed)


class RunType(str, Enum):
    """Why a run exists."""

    scheduled = "scheduled"
    manual = "manual"
    backfill = "backfill"


class ClearRequest(ApiModel):
    """Ask the controller to reset task instances so they run again (Airflow's 'Clear')."""

    id: str = Field(
        description="Any unique token; a new id is a new request, so re-applying the same one is a no-op."
    )
    tasks: list[str] = Field(description="Task ids to clear (already expanded for upstream/downstream).")


class DAGRunSpec(ApiModel):
    """Desired state of a run."""

    dag_name: str = Field(description="The DAG id this run belongs to.")
    logical_date: Time = Field(
        description="RFC 3339 start of the run's data interval ({{ ds }}); for manual runs the trigger time."
    )
    conf: dict[str, Any] = Field(
        default_factory=dict,
        description="Run configuration: overrides DAG params, available as {{ dag_run.conf }}.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    run_type: RunType = Field(default=RunType.manual, description="scheduled, manual or backfill.")
    clear: ClearRequest | None = Field(default=None, description="A request to re-run some task instances.")


class TryRecord(ManyModel):
    """One finished try of a task instance, kept for history."""

    try_number: int = Field(ge=1, description="Which try this was, starting at 1.")
    state: TaskState = Field(description="How the try ended.")
    start_time: Time | None = Field(default=None, description="When the try started (RFC 3339).")
    end_time: Time | None = Field(default=None, description="When the try ended (RFC 3339).")
    exit_code: int | None = Field(default=None, description="Exit code of the task's process or container.")
    message: str | None = Field(default=None, description="Why the try ended as it did, for humans.")


class TaskInstanceStatus(ManyModel):
    """Observed state of one task instance."""

    state: TaskState = Field(default=TaskState.none, description="Airflow task state.")
    try_number: int = Field(
        default=0, ge=0, description="The current (or last) try, starting at 1; 0 = never tried."
    )
    pod_name: str | None = Field(default=None, description="Pod of the current try (operator only).")
    start_time: Time | None = Field(default=None, description="When the current try started (RFC 3339).")
    end_time: Time | None = Field(default=None, description="When the instance finished (RFC 3339).")
    exit_code: int | None = Field(default=None, description="Exit code of the current try, once it ended.")
    message: str | None = Field(default=None, description="Why the task is in its state, for humans.")
    next_try_at: Time | None = Field(default=None, description="When an up_for_retry task runs again.")
    tries: list[TryRecord] = Field(default_factory=list, description="Earlier tries of this instance.")


class TaskMap(Mapping[str, TaskInstanceStatus]):
    """Task id -> instance status: an immutable map whose versions share their structure.

    The engine returns a new run status on every call; with 10,000 tasks, copying a dict
    of them each time would cost more than the call itself. `updated` makes the next
    version in O(changes x log tasks), sharing the rest (immutables.Map, a hash array
    mapped trie, plus the tuple of keys, which keeps the order the tasks were added in,
    as a dict would). It reads like a dict, equals a dict with the same items, and
    validates and serializes as the same JSON object (the CRD does not change).
    """

    __slots__ = ("_keys", "_map")

    def __init__(self, items: Mapping[str, TaskInstanceStatus] | None = None) -> None:
        if type(items) is TaskMap:  # (not isinstance: an ABC check costs microseconds)
            self._keys: tuple[str, ...] = items._keys
            self._map: immutables.Map[str, TaskInstanceStatus] = items._map
        else:
            self._keys = tuple(items or ())
            self._map = immutables.Map(items or {})

    def __getitem__(self, key: str) -> TaskInstanceStatus:
        return self._map[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __repr__(self) -> str:
        return f"TaskMap({dict(self)!r})"

    def to_dict(self) -> dict[str, TaskInstanceStatus]:
        """A plain dict of the same items, in order (faster than dict(self))."""
        items = self._map
        return {key: items[key] for key in self._keys}

    def updated(self, changes: Mapping[str, TaskInstanceStatus]) -> TaskMap:
        """This map with `changes` applied (a new map; this one is unchanged). New keys go last."""
        if not changes:
            return self
        old = self._map
        added = tuple(key for key in changes if key not in old)
        with old.mutate() as draft:
            for key, value in changes.items():
                draft[key] = value
            new = TaskMap.__new__(TaskMap)
            new._map = draft.finish()
        new._keys = self._keys + added if added else self._keys
        return new

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        as_dict = handler.generate_schema(dict[str, TaskInstanceStatus])
        return core_schema.no_info_after_validator_function(
            cls,
            as_dict,
            serialization=core_schema.plain_serializer_function_ser_schema(dict, return_schema=as_dict),
        )


LARGE_RUN_TASKS = 1000
"""Runs of more tasks than this keep less per task in their status (see DAGRunStatus.to_wire)."""


class DAGRunStatus(ApiModel):
    """Observed state of a run."""

    state: RunState = Field(default=RunState.queued, description="queued, running, success or failed.")
    start_time: Time | None = Field(default=None, description="When the run started (RFC 3339).")
    end_time: Time | None = Field(default=None, description="When the run finished (RFC 3339).")
    data_interval_start: Time | None = Field(
        default=None, description="Start of the data interval ({{ data_interval_start }})."
    )
    data_interval_end: Time | None = Field(
        default=None, description="End of the data interval ({{ data_interval_end }})."
    )
    tasks: TaskMap = Field(default_factory=TaskMap, description="Task id -> instance status.")
    tasks_summary: str | None = Field(default=None, description="Finished/total, e.g. 3/5 (printer column).")
    dag_spec: DAGSpec | None = Field(
        default=None,
        description="Snapshot of the DAG spec taken when the run started; edits to the DAG never change a run in flight.",
    )
    duration: str | None = Field(
        default=None,
        description="How long the run took (or has taken so far), e.g. 1m23s; written by the controller "
        "for the DURATION printer column.",
    )
    cleared: list[str] = Field(default_factory=list, description="Clear request ids already applied.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Standard status conditions.",
        json_schema_extra=CONDITIONS_LIST_EXTRA,
    )

    def to_wire(
        self,
        *,
        previous: tuple[DAGRunStatus, Mapping[str, Any]] | None = None,
        stored_spec: DAGSpec | None = None,
    ) -> dict[str, Any]:
        """The status as stored (camelCase JSON), small enough for etcd at 10,000 tasks, cheap to redo.

        Size (etcd refuses objects over 1.5 MiB; a 10,000-task run written as the model
        dumps it is 2.6 MiB): empty `tries` lists are left out, the DAG spec snapshot
        leaves out the fields at their defaults (as a user's DAG file does), and in a run
        of more than LARGE_RUN_TASKS tasks a task that succeeded keeps only its state and
        try (its Pod, its metrics and its log keep the rest), and no task its `podName`
        (it is k8s.names.pod_name(run, task, try)). Reading it back gives the same model,
        less those details.

        Cost: with `previous` (an earlier status and the wire made of it), a task whose
        status object is the same (TaskMap shares unchanged ones) reuses its wire dict,
        and so does an unchanged spec snapshot: a write costs O(tasks changed), not a
        serialization of every task. Equal inputs give identical (`is`) parts, which the
        comparison and the merge patch of the next write skip at once.

        `stored_spec`: the spec snapshot the server already holds (the operator writes it
        once; it never changes after). When it is this status's (`is`), `dagSpec` is left
        out, so the writer need not keep the snapshot's stored form (megabytes at 10,000
        tasks) to compare the next write against.
        """
        wire = self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"tasks", "dag_spec"})
        old_status, old_wire = previous if previous is not None else (None, {})
        if self.dag_spec is not None and self.dag_spec is not stored_spec:
            if old_status is not None and old_status.dag_spec is self.dag_spec and "dagSpec" in old_wire:
                wire["dagSpec"] = old_wire["dagSpec"]
            else:
                wire["dagSpec"] = self.dag_spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        current = _as_dict(self.tasks)
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


class DAGRun(ApiModel):
    """A run of a DAG, as stored by the operator and printed by `kubeflowlite run -o json`."""

    api_version: Literal["kubeflowlite.io/v1alpha1"] = Field(
        default="kubeflowlite.io/v1alpha1", alias="apiVersion"
    )
    kind: Literal["DAGRun"] = "DAGRun"
    metadata: ObjectMeta
    spec: DAGRunSpec
    status: DAGRunStatus = Field(default_factory=DAGRunStatus)

    def to_wire(self, *, previous: tuple[DAGRunStatus, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """The run as stored: the status in its stored form (DAGRunStatus.to_wire), the same from both shells.

        `previous`: an earlier status of the run and the stored form made of it, whose unchanged
        parts are reused (DAGRunStatus.to_wire)."""
        wire = self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"})
        wire["status"] = self.status.to_wire(previous=previous)
        return wire
