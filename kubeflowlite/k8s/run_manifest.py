"""The DAGRun manifest, built in one place for every creator of runs.

The scheduler (dag_controller), `kubeflowlite trigger` / `backfill` and triggerDag
tasks all create DAGRuns; they get the same deterministic name (names.dagrun_name:
a retried create meets AlreadyExists, never a duplicate), the same labels, and an
ownerReference to their DAG, so deleting a DAG garbage-collects its runs whoever
created them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubeflowlite.api.dagrun import RunType
from kubeflowlite.api.times import format_time
from kubeflowlite.k8s import names, resources


def dagrun_manifest(
    *,
    namespace: str,
    dag: Mapping[str, Any],
    logical_date: datetime,
    run_type: RunType,
    conf: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A DAGRun of the DAG object `dag` (its name, and its uid for the ownerReference; a DAG not
    known yet, {"metadata": {"name": ...}}, gives a run without one)."""
    dag_meta = dag.get("metadata") or {}
    dag_name = str(dag_meta.get("name", ""))
    metadata: dict[str, Any] = {
        "name": names.dagrun_name(dag_name, logical_date, run_type),
        "namespace": namespace,
        "labels": {names.LABEL_DAG: names.label_value(dag_name)},
    }
    if dag_meta.get("uid"):
        metadata["ownerReferences"] = [
            {
                "apiVersion": resources.API_VERSION_STRING,
                "kind": resources.DAG_KIND,
                "name": dag_name,
                "uid": dag_meta["uid"],
            }
        ]
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "dagName": dag_name,
        "logicalDate": format_time(logical_date),
        "runType": run_type.value,
    }
    if conf:
        spec["conf"] = dict(conf)
    return {
        "apiVersion": resources.API_VERSION_STRING,
        "kind": resources.DAGRUN_KIND,
        "metadata": metadata,
        "spec": spec,
    }
