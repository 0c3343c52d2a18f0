"""Where a run's XCom values live on a cluster: the ConfigMap `<run>-xcom`.

A task's return value arrives in its Pod's termination message, but Pods come
and go (podCleanup deletes them, users delete them), so the controller copies each
value into one ConfigMap per run: key = task id (task ids are valid ConfigMap keys),
value = the JSON text. The ConfigMap is owned by the DAGRun (garbage-collected with
it) and carries the run's labels.

The ordering rule that makes this safe: a succeeded try is shown to the engine only
after its value is stored here (`RunStore.store` returns before the engine is
called), so a downstream task can never be rendered before its input exists, and
a crash between the two leaves a value stored for a task the status does not yet
call successful, which the next reconcile finds already in place.

All new values of one reconcile go out in one write (a create, or a merge patch
of `data`). The operator is the only writer, so each run's values are cached in
memory after the first read; the cache is the write-through copy, not a guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeflowlite.core import xcom
from kubeflowlite.core.engine import NO_XCOM, Attempt, AttemptPhase
from kubeflowlite.k8s import kube, names, pods

COMPONENT = "xcom"


def configmap_manifest(
    *, run_name: str, run_uid: str, namespace: str, dag_name: str, data: Mapping[str, str]
) -> dict[str, Any]:
    """The XCom ConfigMap of a run holding `data` (task id -> JSON text)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.xcom_configmap_name(run_name),
            "namespace": namespace,
            "labels": names.run_labels(dag=dag_name, run_name=run_name, component=COMPONENT),
            "annotations": {names.ANNOTATION_RUN_NAME: run_name},
            "ownerReferences": [pods.owner_reference(run_name=run_name, run_uid=run_uid)],
        },
        "data": dict(data),
    }


def values_to_store(attempts: Mapping[str, Attempt], stored: Mapping[str, str]) -> dict[str, str]:
    """The JSON text of every succeeded attempt's value that is not stored yet (or stored differently).

    Raises core.xcom.XComError for a value that cannot be stored; the caller turns
    that attempt into a failed one instead (see `checked_attempts`).
    """
    pending: dict[str, str] = {}
    for task, attempt in attempts.items():
        if attempt.phase is not AttemptPhase.succeeded or attempt.xcom is NO_XCOM:
            continue
        text = xcom.encode_xcom(attempt.xcom)
        if stored.get(task) != text:
            pending[task] = text
    return pending


def checked_attempts(attempts: Mapping[str, Attempt]) -> dict[str, Attempt]:
    """`attempts` with every succeeded attempt whose value cannot be encoded turned into a failure."""
    checked: dict[str, Attempt] = {}
    for task, attempt in attempts.items():
        if attempt.phase is AttemptPhase.succeeded and attempt.xcom is not NO_XCOM:
            try:
                xcom.encode_xcom(attempt.xcom)
            except xcom.XComError as error:
                attempt = Attempt(
                    task=attempt.task,
                    try_number=attempt.try_number,
                    phase=AttemptPhase.failed,
                    start_time=attempt.start_time,
                    end_time=attempt.end_time,
                    exit_code=attempt.exit_code,
                    message=str(error),
                )
        checked[task] = attempt
    return checked


def decode(stored: Mapping[str, str], task_ids: Any, *, key: str | None = xcom.RETURN_VALUE) -> Any:
    """`ti.xcom_pull(task_ids=..., key=...)` over stored values: a value, or a list for a list of ids; None if absent."""
    if isinstance(task_ids, str):
        text = stored.get(task_ids)
        return None if not text else xcom.select(json.loads(text), key)
    if isinstance(task_ids, list | tuple):
        return [decode(stored, task, key=key) for task in task_ids]
    return None


@dataclass
class RunStore:
    """The XCom values of the runs this operator handles: read once per run, written through."""

    client: kube.Kube
    _values: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    _exists: dict[tuple[str, str], bool] = field(default_factory=dict)

    async def load(self, namespace: str, run_name: str) -> dict[str, str]:
        """The stored values of a run (one GET the first time, then the cache)."""
        key = (namespace, run_name)
        cached = self._values.get(key)
        if cached is not None:
            return cached
        found = await self.client.get_or_none(kube.CONFIGMAPS, namespace, names.xcom_configmap_name(run_name))
        values = dict((found or {}).get("data") or {})
        self._values[key] = values
        self._exists[key] = found is not None
        return values

    async def store(
        self, *, namespace: str, run_name: str, run_uid: str, dag_name: str, values: Mapping[str, str]
    ) -> None:
        """Write `values` (task id -> JSON text) in one request; returns once they are stored."""
        if not values:
            return
        key = (namespace, run_name)
        current = await self.load(namespace, run_name)
        name = names.xcom_configmap_name(run_name)
        if not self._exists.get(key):
            manifest = configmap_manifest(
                run_name=run_name,
                run_uid=run_uid,
                namespace=namespace,
                dag_name=dag_name,
                data={**current, **values},
            )
            try:
                await self.client.create(kube.CONFIGMAPS, namespace, manifest)
            except kube.ApiError as error:
                if not error.conflict:
                    raise
                # Created by an earlier life of this operator: merge into it below.
                self._exists[key] = True
            else:
                self._exists[key] = True
                current.update(values)
                return
        await self.client.patch(kube.CONFIGMAPS, namespace, name, {"data": dict(values)})
        current.update(values)

    def forget(self, namespace: str, run_name: str) -> None:
        """Drop a run's cached values (the run is gone, or finished and its values no longer needed)."""
        self._values.pop((namespace, run_name), None)
        self._exists.pop((namespace, run_name), None)
