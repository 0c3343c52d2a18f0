"""The Pod of one task try, built as a plain manifest with no I/O.

Kept apart from the code that submits it (as Argo split `podBuilder` from
`submitPod`) so that every rule about task Pods, from names and labels to how a
task's `pod` overrides merge, is decided here and tested fast without a cluster.

Overrides (`Task.pod`, or `defaults.pod` when the task sets none) merge into the
Pod we build, in this order:

1. we build the Pod from the task: image, command, env, labels, ownerReference;
2. `pod.metadata.labels` / `pod.metadata.annotations` are added to the Pod's;
3. every other key except `container` is a PodSpec field, deep-merged into the spec;
4. `pod.container` (a partial container) is deep-merged into the `main` container;
5. the invariants the operator relies on are put back: our labels, the owner,
   `restartPolicy: Never`, the container name and termination message settings,
   and the `KFL_*` variables.

Deep merge: mappings merge key by key (recursively), a list whose items are all
objects with a `name` merges item by item on `name` (a same-named item is merged,
a new one appended; volumes, env, volumeMounts, containers), and any other value,
lists included (tolerations, args), is replaced by the override.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kubeflowlite.api.dag import Task
from kubeflowlite.core import durations, templating
from kubeflowlite.core.taskenv import (
    ANNOTATION_SKIP_EXIT_CODE,
    ENV_DAG_ID,
    ENV_LOGICAL_DATE,
    ENV_RUN_ID,
    ENV_TASK_ID,
    ENV_TRY_NUMBER,
    ENV_XCOM_FILE,
)
from kubeflowlite.k8s import names, resources, taskscript

DEFAULT_IMAGE = "busybox:1.36"
MAIN_CONTAINER = "main"
XCOM_FILE = "/kfl/xcom.json"
"""Where a task writes its XCom return value; also the container's terminationMessagePath,
so the kubelet hands the value back in the Pod status without a sidecar."""


ANNOTATION_LOGICAL_DATE = "kubeflowlite.io/logical-date"

_OVERRIDE_METADATA = "metadata"
_OVERRIDE_CONTAINER = "container"


def build_pod(
    *,
    run_name: str,
    run_uid: str,
    namespace: str,
    dag_name: str,
    task: Task,
    rendered: templating.RenderedTask,
    try_number: int,
    logical_date: str,
) -> dict[str, Any]:
    """The Pod manifest of try `try_number` of `task` (defaults already merged into it)."""
    labels = names.task_labels(dag=dag_name, run_name=run_name, task=task.name, try_number=try_number)
    system_env = {
        ENV_DAG_ID: dag_name,
        ENV_TASK_ID: task.name,
        ENV_RUN_ID: run_name,
        ENV_TRY_NUMBER: str(try_number),
        ENV_LOGICAL_DATE: logical_date,
        ENV_XCOM_FILE: XCOM_FILE,
    }
    annotations = {
        names.ANNOTATION_TASK_ID: task.name,
        names.ANNOTATION_RUN_NAME: run_name,
        ANNOTATION_LOGICAL_DATE: logical_date,
    }
    if (skip_code := task.skip_code()) is not None:
        annotations[ANNOTATION_SKIP_EXIT_CODE] = str(skip_code)
    container: dict[str, Any] = {"name": MAIN_CONTAINER, "image": task.image or DEFAULT_IMAGE}
    if rendered.bash is not None:
        container["command"] = taskscript.bash_command(rendered.bash)
    else:
        if rendered.command is not None:
            container["command"] = list(rendered.command)
        if rendered.args is not None:
            container["args"] = list(rendered.args)
    user_env = [{"name": k, "value": v} for k, v in rendered.env.items() if k not in system_env]
    container["env"] = user_env
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        # A task needs no API credentials of ours; a task that does asks with a pod override.
        "automountServiceAccountToken": False,
        "containers": [container],
    }
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names.pod_name(run_name, task.name, try_number),
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": dict(annotations),
        },
        "spec": spec,
    }

    overrides = dict(task.pod or {})
    meta_override = overrides.pop(_OVERRIDE_METADATA, None) or {}
    container_override = overrides.pop(_OVERRIDE_CONTAINER, None) or {}
    pod["metadata"]["labels"] = deep_merge(meta_override.get("labels") or {}, labels)
    pod["metadata"]["annotations"] = deep_merge(meta_override.get("annotations") or {}, annotations)
    spec = deep_merge(spec, overrides)
    main = _main_container(spec, container)
    main.update(deep_merge(main, container_override))

    # Invariants: whatever the overrides said, the operator must be able to find,
    # own and read this Pod.
    pod["spec"] = spec
    pod["metadata"]["ownerReferences"] = [owner_reference(run_name=run_name, run_uid=run_uid)]
    spec["restartPolicy"] = "Never"
    main["name"] = MAIN_CONTAINER
    main["terminationMessagePath"] = XCOM_FILE
    main["terminationMessagePolicy"] = "File"
    main["env"] = [e for e in main.get("env") or [] if e.get("name") not in system_env] + [
        {"name": k, "value": v} for k, v in system_env.items()
    ]
    deadline = timeout_seconds(task.execution_timeout)
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return pod


def owner_reference(*, run_name: str, run_uid: str) -> dict[str, Any]:
    """An ownerReference to a DAGRun: deleting the run garbage-collects its Pods and ConfigMap."""
    return {
        "apiVersion": resources.API_VERSION_STRING,
        "kind": resources.DAGRUN_KIND,
        "name": run_name,
        "uid": run_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` merged into a copy of `base` by the rules in the module docstring."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        merged[key] = _merge_value(merged[key], value) if key in merged else _copy(value)
    return merged


def _merge_value(base: Any, override: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        return deep_merge(base, override)
    if _is_named_list(base) and _is_named_list(override):
        merged = [_copy(item) for item in base]
        index = {item["name"]: i for i, item in enumerate(merged)}
        for item in override:
            if item["name"] in index:
                merged[index[item["name"]]] = deep_merge(merged[index[item["name"]]], item)
            else:
                index[item["name"]] = len(merged)
                merged.append(_copy(item))
        return merged
    return _copy(override)


def _is_named_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, Mapping) and "name" in item for item in value)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _main_container(spec: dict[str, Any], built: Mapping[str, Any]) -> dict[str, Any]:
    """The `main` container after overrides; put back in front if an override replaced the list."""
    containers = spec.get("containers")
    if not isinstance(containers, list):
        containers = []
    spec["containers"] = containers
    for container in containers:
        if isinstance(container, dict) and container.get("name") == MAIN_CONTAINER:
            return container
    main: dict[str, Any] = _copy(built)
    containers.insert(0, main)
    return main


def timeout_seconds(duration: str | None) -> int | None:
    """A duration (core.durations syntax) as whole seconds for activeDeadlineSeconds: rounded up, at least 1."""
    if duration is None:
        return None
    return max(1, math.ceil(durations.parse_duration(duration).total_seconds()))
