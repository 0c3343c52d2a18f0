"""What the controllers read: the operator's in-memory copies of DAGs, DAGRuns and Pods.

Reconciles never list or get these from the API server: kopf keeps indices of
every watched object (kopf.index), filled from the watch streams, and it does not
call any handler before the initial listing of every indexed kind is complete. So
when a reconcile runs, a Pod missing from the view really is gone, which is what
lets the run controller call a running try whose Pod vanished a failed try.

`ClusterView` is the narrow interface the controllers see; `IndexedView` adapts
kopf's indices to it (the index functions live in operator.py, next to the
handler registrations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

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


def _values(index: _Index, key: Any) -> list[Any]:
    try:
        return list(index[key]) if key in index else []
    except KeyError:  # removed between the check and the read
        return []


class IndexedView:
    """A ClusterView over kopf indices keyed as operator.py builds them."""

    def __init__(self, *, dags: _Index, runs: _Index, runs_by_dag: _Index, pods: _Index) -> None:
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
        return _values(self._pods, (namespace, names.label_value(run_name)))


def slim_pod(body: Obj) -> dict[str, Any]:
    """The parts of a Pod the controllers read (metadata and status; never the spec): saves memory."""
    metadata = body.get("metadata") or {}
    return {
        "metadata": {
            key: metadata[key]
            for key in (
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "labels",
                "annotations",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            )
            if key in metadata
        },
        "status": dict(body.get("status") or {}),
    }


def snapshot(body: Obj) -> dict[str, Any]:
    """A plain-dict copy of a custom object's top level (kopf bodies are live views)."""
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": dict(body.get("metadata") or {}),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }
