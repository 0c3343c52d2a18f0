"""What the controllers read: the operator's in-memory copies of DAGs, DAGRuns and Pods.

Reconciles never list or get these from the API server: kopf keeps indices of
every DAG and DAGRun (kopf.index), filled from the watch streams, and it does not
call any handler before the initial listing is complete; the Pod cache lists and
seeds a run's Pods before that run is reconciled (podwatch.PodCache.seed). So when
a reconcile runs, a Pod missing from the view really is gone, which is what lets
the run controller call a running try whose Pod vanished a failed try.

`ClusterView` is the narrow interface the controllers see; `IndexedView` adapts
kopf's indices (DAGs and DAGRuns; the index functions live in operator.py, next to
the handler registrations) and the operator's Pod cache (k8s.podwatch) to it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from kubeflowlite.core.taskenv import ANNOTATION_SKIP_EXIT_CODE
from kubeflowlite.k8s import names

Obj = Mapping[str, Any]


class ClusterView(Protocol):
    """Read-only lookups over the watched objects."""

    def dag(self, namespace: str, name: str) -> Obj | None: ...

    def dags(self) -> list[Obj]: ...

    def run(self, namespace: str, name: str) -> Obj | None: ...

    def runs_of_dag(self, namespace: str, dag: str) -> list[Obj]: ...

    def pods_of_run(self, namespace: str, run_name: str) -> list[Obj]: ...


class _Index(Protocol):
    """The part of kopf.Index this module uses: key -> a store of values."""

    def __getitem__(self, key: Any) -> Iterable[Any]: ...

    def __contains__(self, key: object) -> bool: ...

    def __iter__(self) -> Any: ...


class _Pods(Protocol):
    def pods_of_run(self, namespace: str, run_name: str) -> list[Any]: ...


def _values(index: _Index, key: Any) -> list[Any]:
    try:
        return list(index[key]) if key in index else []
    except KeyError:  # removed between the check and the read
        return []


class IndexedView:
    """A ClusterView over kopf indices keyed as operator.py builds them."""

    def __init__(self, *, dags: _Index, runs: _Index, runs_by_dag: _Index, pods: _Pods) -> None:
        self._dags = dags
        self._runs = runs
        self._runs_by_dag = runs_by_dag
        self._pods = pods

    def dag(self, namespace: str, name: str) -> Obj | None:
        found = _values(self._dags, (namespace, name))
        return found[0] if found else None

    def dags(self) -> list[Obj]:
        return [value for key in list(self._dags) for value in _values(self._dags, key)]

    def run(self, namespace: str, name: str) -> Obj | None:
        found = _values(self._runs, (namespace, name))
        return found[0] if found else None

    def runs_of_dag(self, namespace: str, dag: str) -> list[Obj]:
        return _values(self._runs_by_dag, (namespace, dag))

    def pods_of_run(self, namespace: str, run_name: str) -> list[Obj]:
        pods: list[Obj] = self._pods.pods_of_run(namespace, run_name)
        return pods


_KEPT_LABELS = (names.LABEL_RUN, names.LABEL_TASK, names.LABEL_TRY)
_KEPT_ANNOTATIONS = (names.ANNOTATION_TASK_ID, names.ANNOTATION_RUN_NAME, ANNOTATION_SKIP_EXIT_CODE)
_LABEL_OF = {names.ANNOTATION_TASK_ID: names.LABEL_TASK, names.ANNOTATION_RUN_NAME: names.LABEL_RUN}
"""Annotations that hold a label's value in full; equal to the label (most Pods), they are not kept:
readers fall back to the label (a task id or run name too long or odd for a label differs from it)."""
_KEPT_METADATA = (
    "name",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
_KEPT_STATUS = ("phase", "reason", "message", "startTime")
_KEPT_CONDITIONS = {"PodScheduled": "False", "DisruptionTarget": "True"}
"""The conditions observation reads, in the status it reads them in (unschedulable, disrupted)."""
_COMMON = {
    text: text for text in ("Pending", "Running", "Succeeded", "Failed", "Unknown", "main", "True", "False")
}
"""Values repeated on every Pod, shared instead of held once per Pod."""


def slim_pod(body: Obj) -> dict[str, Any]:
    """The few fields of a task Pod that observation reads (k8s.observe, run_rules), nothing else.

    Thousands of Pods are in flight at once, so the operator keeps this instead of the
    Pod: our labels and annotations, the metadata that dates it, the phase and reason,
    the conditions that explain a Pending or disrupted Pod, and of each container its
    name and state (the main container's termination message is the XCom value).
    Keys are our constants (one string object shared by every Pod), and so are the
    common values.
    """
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    slim_metadata: dict[str, Any] = {key: metadata[key] for key in _KEPT_METADATA if key in metadata}
    if "creationTimestamp" in slim_metadata:
        slim_metadata["creationTimestamp"] = _interned(slim_metadata["creationTimestamp"])
    slim_metadata["labels"] = {key: _interned(labels[key]) for key in _KEPT_LABELS if key in labels}
    kept = {
        key: _interned(annotations[key])
        for key in _KEPT_ANNOTATIONS
        if key in annotations and annotations[key] != labels.get(_LABEL_OF.get(key, ""))
    }
    if kept:
        slim_metadata["annotations"] = kept
    slim_status: dict[str, Any] = {key: _shared(status[key]) for key in _KEPT_STATUS if key in status}
    if "startTime" in slim_status:
        slim_status["startTime"] = _interned(slim_status["startTime"])
    conditions = [
        {key: _shared(condition[key]) for key in ("type", "status", "reason", "message") if key in condition}
        for condition in status.get("conditions") or []
        if _KEPT_CONDITIONS.get(condition.get("type")) == condition.get("status")
    ]
    if conditions:
        slim_status["conditions"] = conditions
    for key in ("initContainerStatuses", "containerStatuses"):
        containers = status.get(key)
        if containers:
            slim_status[key] = _one_of_equal(
                [
                    {
                        "name": _shared(container.get("name")),
                        "state": _slim_state(container.get("state") or {}),
                    }
                    for container in containers
                ]
            )
    return {"metadata": slim_metadata, "status": slim_status}


_CONTAINERS: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
_CONTAINERS_HELD = 4096


def _one_of_equal(containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One list for equal container states: the Pods of a run that started in the same second
    (or ended alike) share it, instead of four containers each (list, container, state, detail).
    Nothing writes into a slim Pod, so sharing is safe; the table is bounded."""
    try:
        key = tuple(
            (c["name"], tuple((kind, tuple(detail.items())) for kind, detail in c["state"].items()))
            for c in containers
        )
        found = _CONTAINERS.get(key)
    except TypeError:  # an unhashable value in a state: keep this one as it is
        return containers
    if found is None:
        if len(_CONTAINERS) >= _CONTAINERS_HELD:
            _CONTAINERS.clear()
        _CONTAINERS[key] = found = containers
    return found


_KEPT_STATE = {
    "running": ("startedAt",),
    "terminated": ("exitCode", "reason", "message", "startedAt", "finishedAt"),
    "waiting": ("reason", "message"),
}
"""Of a container's state, what observation reads (not its containerID, signal, ...)."""
_INTERNED_STATE = frozenset({"startedAt", "finishedAt", "reason"})


def _slim_state(state: Obj) -> dict[str, Any]:
    slim = {}
    for kind, keys in _KEPT_STATE.items():
        detail = state.get(kind)
        if isinstance(detail, Mapping):
            slim[kind] = {
                key: _interned(detail[key]) if key in _INTERNED_STATE else detail[key]
                for key in keys
                if key in detail
            }
    return slim


def _interned(value: Any) -> Any:
    """Label values and timestamps, repeated across a run's Pods (one second, one run, one task):
    one string object each, instead of one per Pod."""
    return sys.intern(value) if isinstance(value, str) and len(value) <= 64 else value


def _shared(value: Any) -> Any:
    return _COMMON.get(value, value) if isinstance(value, str) else value


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
"""The annotation `kubectl apply` (client-side) keeps the whole object in, as one JSON string."""


def snapshot(body: Obj) -> dict[str, Any]:
    """A plain-dict copy of a custom object's top level (kopf bodies are live views).

    Without `metadata.managedFields`, nor kubectl's last-applied annotation: nothing
    reads them, and for a DAG or run of thousands of tasks each was as big as the rest
    of the object, kept for every one.
    """
    metadata = {key: value for key, value in (body.get("metadata") or {}).items() if key != "managedFields"}
    annotations = metadata.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        metadata["annotations"] = {key: value for key, value in annotations.items() if key != LAST_APPLIED}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": metadata,
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


def share_equal(values: dict[str, Any], known: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with each value equal to the one under its key in `known` replaced by that one
    (a watched run's tasks, and the same tasks as the controller wrote them: one dict each)."""
    if not known:
        return values
    return {key: found if (found := known.get(key)) == value else value for key, value in values.items()}


class Shared:
    """One copy of equal spec snapshots: every run of a DAG carries the same `status.dagSpec`.

    kopf parses each run's body on its own, so ten runs of a 1,000-task DAG held ten
    copies of a snapshot of 0.9 MiB each. `one` returns the copy already held when an
    equal one is known (equality of two such dicts costs about 0.1 ms; parsing the body
    they came in, 10 ms), else keeps this one. Nothing writes into these dicts.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._known: dict[tuple[Any, ...], dict[str, Any]] = {}

    def one(self, value: dict[str, Any]) -> dict[str, Any]:
        tasks = value.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            return value
        key = (len(tasks), _task_name(tasks[0]), _task_name(tasks[-1]), len(value))
        known = self._known.get(key)
        if known is not None and (known is value or known == value):
            return known
        if len(self._known) >= self._size:
            self._known.clear()
        self._known[key] = value
        return value


def _task_name(task: Any) -> Any:
    return task.get("name") if isinstance(task, dict) else None
