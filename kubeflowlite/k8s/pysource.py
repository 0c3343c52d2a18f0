"""Python function tasks on a cluster: the DAG file's source in a ConfigMap, and the Pod that runs it.

The same bootstrap as locally (`python3 -m kubeflowlite.pytask`) runs in the task's
Pod. Its inputs arrive without API access: a ConfigMap owned by the run
(`<run>-pysrc`, labelled like the run's other objects) holds the DAG file's source,
the modules beside it that it imports (spec.pythonSource.modules, placed beside it),
and the bootstrap's own stdlib-only modules (RUNTIME_FILES, the operator's
version), mounted read-only at /kfl/python (source/ and lib/, on PYTHONPATH); the
try's context (core.pytask.payload, the run's XCom values included) is rendered
into an environment variable by the operator. The Pod gets no service account token.

Task image contract: python3 >= 3.11 on PATH, plus whatever the DAG file imports at
module level (pandas, ...). kubeflowlite itself need not be installed; the default
image is the project's own. (`macros` and @task.bash templates in a Python task need the
full package installed in the image: kubeflowlite.pytask.join_installed_package reaches it
behind the shipped runtime.)

Pure manifest builders (the runtime files are read once from this install) plus one
small `ensure_configmap` that creates the ConfigMap once per run.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from kubeflowlite.api.dag import PythonSource
from kubeflowlite.core.taskenv import (
    ENV_PYTASK_CONTEXT,
    ENV_PYTASK_SOURCE,
    PYTASK_MODULE,
)
from kubeflowlite.k8s import kube, names, pods

COMPONENT = "python-source"
MOUNT_DIR = "/kfl/python"
SOURCE_DIR = f"{MOUNT_DIR}/source"
LIB_DIR = f"{MOUNT_DIR}/lib"
SOURCE_VOLUME = "kfl-python-source"

RUNTIME_FILES = (
    "__init__.py",
    "pytask.py",
    "core/__init__.py",
    "core/taskenv.py",
    "core/trigger_rule.py",
    "core/variables.py",
    "core/xcom.py",
    "dsl/__init__.py",
    "dsl/files.py",
    "dsl/model.py",
    "dsl/taskflow.py",
    "dsl/tasks.py",
)
"""The stdlib-only modules the bootstrap and a DAG file's definitions need (plus kubeflowlite/airflow/):
shipped with the source so any python3 >= 3.11 image runs a Python task, at the operator's version."""
RUNTIME_DIRS = ("airflow",)
_PACKAGE = Path(__file__).resolve().parents[1]


@functools.cache
def runtime_files() -> dict[str, str]:
    """Path under the package -> text of every shipped runtime module (read once from this install)."""
    paths = [*RUNTIME_FILES]
    for directory in RUNTIME_DIRS:
        paths += sorted(
            str(path.relative_to(_PACKAGE)) for path in (_PACKAGE / directory).rglob("*.py") if path.is_file()
        )
    return {path: (_PACKAGE / path).read_text(encoding="utf-8") for path in paths}


def _runtime_key(path: str) -> str:
    return "lib." + path.replace("/", ".")


def _default_image() -> str:
    try:
        version = metadata.version("kubeflowlite")
    except metadata.PackageNotFoundError:
        version = "latest"
    return f"kubeflowlite/kubeflowlite:{version}"


DEFAULT_PYTHON_IMAGE = _default_image()
"""The project's own image (Dockerfile): python3 and kubeflowlite, so it runs any Python task."""

PYTHON_COMMAND = ["python3", "-m", PYTASK_MODULE]


def configmap_name(run_name: str) -> str:
    """`<run>-pysrc` (k8s.names)."""
    return names.source_configmap_name(run_name)


def source_key(source: PythonSource) -> str:
    """The ConfigMap key (and file name under /kfl/source) of the source: its file name, made key-safe."""
    name = "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in source.filename.rsplit("/", 1)[-1])
    return name or "dag.py"


def _module_keys(source: PythonSource) -> dict[str, str]:
    """ConfigMap key -> relative path of each module shipped beside the source (keys allow no `/`)."""
    return {
        f"module.{index}.{path.replace('/', '.')}": path
        for index, path in enumerate(sorted(source.modules or {}))
    }


def configmap_manifest(
    *, run_name: str, run_uid: str, namespace: str, dag_name: str, source: PythonSource
) -> dict[str, Any]:
    """The ConfigMap holding a run's DAG file source, owned by the run."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(run_name),
            "namespace": namespace,
            "labels": names.run_labels(dag=dag_name, run_name=run_name, component=COMPONENT),
            "annotations": {names.ANNOTATION_RUN_NAME: run_name},
            "ownerReferences": [pods.owner_reference(run_name=run_name, run_uid=run_uid)],
        },
        "immutable": True,
        "data": {
            source_key(source): source.code,
            **{key: (source.modules or {})[path] for key, path in _module_keys(source).items()},
            **{_runtime_key(path): text for path, text in runtime_files().items()},
        },
    }


def _volume_items(source: PythonSource) -> list[dict[str, str]]:
    """ConfigMap keys to files: the source and its modules under source/ (the DAG file's folder,
    on sys.path when the bootstrap imports it), the runtime as lib/kubeflowlite/..."""
    return [
        {"key": source_key(source), "path": f"source/{source_key(source)}"},
        *({"key": key, "path": f"source/{path}"} for key, path in _module_keys(source).items()),
        *({"key": _runtime_key(path), "path": f"lib/kubeflowlite/{path}"} for path in runtime_files()),
    ]


def python_pod(
    pod: Mapping[str, Any], *, run_name: str, source: PythonSource, facts: Mapping[str, Any]
) -> dict[str, Any]:
    """`pod` (from k8s.pods.build_pod) turned into a Python task's Pod.

    The main container runs the bootstrap with the source mounted and the context
    in KFL_PYTASK_CONTEXT; its image defaults to the project image where the task
    sets none; the Pod gets no service account token unless its `pod` override
    asks for one.
    """
    manifest: dict[str, Any] = json.loads(json.dumps(pod))
    spec = manifest["spec"]
    spec.setdefault("automountServiceAccountToken", False)
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") != SOURCE_VOLUME]
    volumes.append(
        {
            "name": SOURCE_VOLUME,
            "configMap": {"name": configmap_name(run_name), "items": _volume_items(source)},
        }
    )
    spec["volumes"] = volumes
    main = next(c for c in spec["containers"] if c.get("name") == pods.MAIN_CONTAINER)
    if main.get("image") == pods.DEFAULT_IMAGE:
        main["image"] = DEFAULT_PYTHON_IMAGE
    main["command"] = list(PYTHON_COMMAND)
    main.pop("args", None)
    mounts = [m for m in main.get("volumeMounts") or [] if m.get("name") != SOURCE_VOLUME]
    mounts.append({"name": SOURCE_VOLUME, "mountPath": MOUNT_DIR, "readOnly": True})
    main["volumeMounts"] = mounts
    user_path = next((e.get("value") for e in main.get("env") or [] if e.get("name") == "PYTHONPATH"), None)
    system = {
        ENV_PYTASK_SOURCE: f"{SOURCE_DIR}/{source_key(source)}",
        ENV_PYTASK_CONTEXT: json.dumps(facts, separators=(",", ":")),
        "PYTHONPATH": f"{LIB_DIR}:{user_path}" if user_path else LIB_DIR,
    }
    main["env"] = [e for e in main.get("env") or [] if e.get("name") not in system] + [
        {"name": key, "value": value} for key, value in system.items()
    ]
    return manifest


def is_python_pod(manifest: Mapping[str, Any]) -> bool:
    volumes = (manifest.get("spec") or {}).get("volumes") or []
    return any(volume.get("name") == SOURCE_VOLUME for volume in volumes)


async def ensure_configmap(client: kube.Kube, manifest: Mapping[str, Any]) -> None:
    """Create the source ConfigMap; one that already exists is the same (immutable, per run)."""
    try:
        await client.create(kube.CONFIGMAPS, manifest["metadata"]["namespace"], manifest)
    except kube.ApiError as error:
        if not error.conflict:
            raise
