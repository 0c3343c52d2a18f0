"""The committed CRDs, applied as they are to a real apiserver, validate and print as designed.

Uses the hermetic control plane (fixtures `cluster` and `namespace` from
tests/cluster/conftest.py) and the kubectl a user would type; nothing is mocked.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeflowlite.api.dag import DAG
from kubeflowlite.api.dagrun import DAGRun

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((ROOT / "crds").glob("*.yaml"))

TUTORIAL: dict[str, Any] = {
    "apiVersion": "kubeflowlite.io/v1alpha1",
    "kind": "DAG",
    "metadata": {"name": "tutorial"},
    "spec": {
        "description": "A simple tutorial DAG",
        "schedule": "@daily",
        "startDate": "2020-02-09T00:00:00Z",
        "catchup": False,
        "tags": ["example"],
        "defaults": {"owner": "airflow", "retries": 1, "retryDelay": "5m"},
        "tasks": [
            {"name": "print_date", "bash": "date"},
            {"name": "sleep", "bash": "sleep 5", "dependsOn": ["print_date"], "retries": 3},
            {
                "name": "templated",
                "bash": "{% for i in range(5) %}echo {{ ds }}\n{% endfor %}",
                "dependsOn": ["print_date"],
                "triggerRule": "all_success",
                "pod": {"container": {"resources": {"limits": {"memory": "64Mi"}}}},
            },
        ],
    },
}


def kubectl(
    cluster: Any, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """kubectl against the hermetic cluster; a failure shows kubectl's stderr."""
    result: subprocess.CompletedProcess[str] = cluster.kubectl(*args, input=stdin, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result


@pytest.fixture(scope="module")
def crds(cluster: Any) -> None:
    """Exactly the committed crds/ files, applied and Established."""
    for path in CRD_FILES:
        kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(path))
    names = [f"crd/{yaml.safe_load(p.read_text())['metadata']['name']}" for p in CRD_FILES]
    kubectl(cluster, "wait", "--for=condition=Established", "--timeout=60s", *names)
    # The apiserver publishes a new CRD's OpenAPI (what `kubectl explain` and strict
    # field validation read) shortly after Established.
    deadline = time.monotonic() + 60
    while not all(
        kubectl(cluster, "explain", kind, check=False).stdout.strip() for kind in ("dag", "dagrun")
    ):
        assert time.monotonic() < deadline, "the CRDs' OpenAPI was never published"
        time.sleep(0.5)


def dag_with(task_changes: dict[str, Any], name: str = "broken") -> str:
    manifest = json.loads(json.dumps(TUTORIAL))
    manifest["metadata"]["name"] = name
    manifest["spec"]["tasks"][0].update(task_changes)
    return yaml.safe_dump(manifest)


def table(output: str) -> list[list[str]]:
    """`kubectl get` output split into columns (column starts taken from the header)."""
    lines = output.rstrip("\n").splitlines()
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    # Multi-word headers (LAST RUN STATE) are single columns: kubectl separates columns by 3 spaces.
    starts = [s for s in starts if s == 0 or header[s - 3 : s] == "   "]
    bounds = [*starts[1:], None]
    return [[line[a:b].strip() for a, b in zip(starts, bounds, strict=True)] for line in lines]


def test_crds_are_established_with_names_and_categories(cluster: Any, crds: None) -> None:
    resources = kubectl(cluster, "api-resources", "--api-group=kubeflowlite.io", "-o", "wide").stdout
    assert "dags" in resources and "dagruns" in resources
    assert "dr" in resources
    assert "kubeflowlite" in resources


def test_kubectl_explain_teaches_the_api(cluster: Any, crds: None) -> None:
    text = kubectl(cluster, "explain", "dag.spec.tasks").stdout
    assert "The tasks of the DAG." in text
    assert "triggerRule" in text and "executionTimeout" in text
    pod_doc = " ".join(kubectl(cluster, "explain", "dags.spec.tasks.pod").stdout.split())
    assert "partial container merged into the task's `main` container" in pod_doc
    run_doc = kubectl(cluster, "explain", "dr.status.tasks").stdout
    assert "Task id -> instance status." in run_doc


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        ({"retries": -1}, "spec.tasks[0].retries", "greater than or equal to 0"),
        ({"triggerRule": "sometimes"}, "spec.tasks[0].triggerRule", "Unsupported value"),
        ({"retryDelay": "soon"}, "spec.tasks[0].retryDelay", "should match"),
        ({"name": "bad name!"}, "spec.tasks[0].name", "should match"),
        ({"retries": 1000}, "spec.tasks[0].retries", "less than or equal to 100"),
    ],
    ids=["negative-retries", "unknown-trigger-rule", "bad-duration", "bad-task-id", "too-many-retries"],
)
def test_invalid_dags_are_rejected_naming_the_field(
    cluster: Any, crds: None, namespace: str, change: dict[str, Any], field: str, why: str
) -> None:
    result = kubectl(cluster, "create", "-n", namespace, "-f", "-", stdin=dag_with(change), check=False)
    assert result.returncode != 0, "the apiserver accepted an invalid DAG"
    assert field in result.stderr, result.stderr
    assert why in result.stderr, result.stderr


def test_unknown_fields_are_rejected_by_strict_validation(cluster: Any, crds: None, namespace: str) -> None:
    result = kubectl(
        cluster,
        "create",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=dag_with({"retires": 2}),
        check=False,
    )
    assert result.returncode != 0
    assert "retires" in result.stderr, result.stderr


def test_a_dag_without_tasks_is_rejected(cluster: Any, crds: None, namespace: str) -> None:
    manifest = json.loads(json.dumps(TUTORIAL))
    manifest["spec"]["tasks"] = []
    result = kubectl(
        cluster, "create", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0
    assert "spec.tasks" in result.stderr, result.stderr


def test_tutorial_dag_is_accepted_and_listed(cluster: Any, crds: None, namespace: str) -> None:
    kubectl(
        cluster, "create", "--validate=strict", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(TUTORIAL)
    )
    rows = table(kubectl(cluster, "get", "dags", "-n", namespace).stdout)
    assert rows[0] == ["NAME", "SCHEDULE", "PAUSED", "LAST RUN STATE", "NEXT RUN", "AGE"]
    assert rows[1][:3] == ["tutorial", "@daily", "false"], "paused is defaulted by the apiserver"

    stored = json.loads(kubectl(cluster, "get", "dag", "tutorial", "-n", namespace, "-o", "json").stdout)
    dag = DAG.model_validate(stored)
    assert dag.spec.tasks[1].retries == 3
    assert dag.spec.tasks[0].retries is None, "the CRD must not default fields that DAG defaults fill"
    assert dag.spec.defaults.retries == 1
    assert dag.spec.tasks[2].pod == {"container": {"resources": {"limits": {"memory": "64Mi"}}}}

    status = {"status": {"lastRunState": "success", "nextRun": "2020-02-10T00:00:00Z", "lastRun": "r1"}}
    kubectl(
        cluster,
        "patch",
        "dag",
        "tutorial",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    rows = table(kubectl(cluster, "get", "dags", "-n", namespace).stdout)
    assert rows[1][3:5] == ["success", "2020-02-10T00:00:00Z"]


def test_dagrun_columns(cluster: Any, crds: None, namespace: str) -> None:
    run: dict[str, Any] = {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": "tutorial-manual-20200209t000000"},
        "spec": {
            "dagName": "tutorial",
            "logicalDate": "2020-02-09T00:00:00Z",
            "conf": {"who": {"nested": [1]}},
        },
    }
    kubectl(cluster, "create", "--validate=strict", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(run))
    status = {
        "status": {
            "state": "running",
            "startTime": "2020-02-09T00:00:05Z",
            "tasksSummary": "1/3",
            "duration": "1m23s",
            "dagSpec": TUTORIAL["spec"],
            "tasks": {"print_date": {"state": "success", "tryNumber": 1, "podName": "p", "exitCode": 0}},
            "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}],
        }
    }
    kubectl(
        cluster,
        "patch",
        "dagrun",
        run["metadata"]["name"],
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    rows = table(kubectl(cluster, "get", "dagruns", "-n", namespace).stdout)
    assert rows[0] == ["NAME", "DAG", "LOGICAL DATE", "STATE", "TASKS", "STARTED", "DURATION", "AGE"]
    assert rows[1][:5] == [run["metadata"]["name"], "tutorial", "2020-02-09T00:00:00Z", "running", "1/3"]
    assert rows[1][6] == "1m23s"
    assert kubectl(cluster, "get", "dr", "-n", namespace, "-o", "name").stdout.strip() == (
        f"dagrun.kubeflowlite.io/{run['metadata']['name']}"
    )

    stored = DAGRun.model_validate(
        json.loads(
            kubectl(cluster, "get", "dagrun", run["metadata"]["name"], "-n", namespace, "-o", "json").stdout
        )
    )
    assert stored.spec.run_type.value == "manual", "runType is defaulted by the apiserver"
    assert stored.spec.conf == {"who": {"nested": [1]}}
    assert stored.status.tasks["print_date"].try_number == 1
    assert stored.status.dag_spec is not None and len(stored.status.dag_spec.tasks) == 3


def test_a_runs_tasks_and_snapshot_are_one_managed_field_each_and_still_merge(
    cluster: Any, crds: None, namespace: str
) -> None:
    """crdgen._one_field_each: no managedFields entry per task (they doubled a large run's size),
    while merge patches (the operator's status writes) still add and change one task at a time."""
    name = "fields-manual-20200209t000000"
    run = {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": name},
        "spec": {"dagName": "tutorial", "logicalDate": "2020-02-09T00:00:00Z"},
    }
    kubectl(cluster, "create", "-n", namespace, "-f", "-", stdin=json.dumps(run))

    def patch(status: dict[str, Any]) -> None:
        kubectl(
            cluster, "patch", "dagrun", name, "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}),
        )  # fmt: skip

    tasks = {f"t{i:03d}": {"state": "running", "tryNumber": 1} for i in range(50)}
    patch({"state": "running", "dagSpec": TUTORIAL["spec"], "tasks": tasks})
    patch(
        {"tasks": {"t007": {"state": "success"}, "t049": None, "late": {"state": "queued", "tryNumber": 1}}}
    )
    stored = json.loads(
        kubectl(cluster, "get", "dagrun", name, "-n", namespace, "-o", "json", "--show-managed-fields").stdout
    )
    got = stored["status"]["tasks"]
    assert len(got) == 50 and got["t007"] == {"state": "success", "tryNumber": 1} and "t049" not in got
    assert got["late"] == {"state": "queued", "tryNumber": 1}
    fields = [entry["fieldsV1"].get("f:status", {}) for entry in stored["metadata"]["managedFields"]]
    assert {"f:tasks": {}, "f:dagSpec": {}}.items() <= next(f for f in fields if "f:tasks" in f).items()


def test_dagrun_rejects_an_unknown_run_type(cluster: Any, crds: None, namespace: str) -> None:
    run = {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": "bad-run"},
        "spec": {"dagName": "tutorial", "logicalDate": "2020-02-09T00:00:00Z", "runType": "sometimes"},
    }
    result = kubectl(cluster, "create", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(run), check=False)
    assert result.returncode != 0
    assert "spec.runType" in result.stderr, result.stderr


def test_kubeflowlite_category_lists_both_kinds(cluster: Any, crds: None, namespace: str) -> None:
    kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(TUTORIAL))
    out = kubectl(cluster, "get", "kubeflowlite", "-n", namespace, "-o", "name").stdout
    assert "dag.kubeflowlite.io/tutorial" in out


def test_dag_names_longer_than_a_label_value_are_rejected(cluster: Any, crds: None, namespace: str) -> None:
    manifest = json.loads(json.dumps(TUTORIAL))
    manifest["metadata"]["name"] = "d" * 64
    result = kubectl(
        cluster, "create", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0
    assert "at most 63 characters" in result.stderr, result.stderr


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_accepted(cluster: Any, crds: None, namespace: str, example: Path) -> None:
    result = kubectl(
        cluster,
        "create",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        str(example),
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_duplicate_task_ids_are_rejected(cluster: Any, crds: None, namespace: str) -> None:
    manifest = json.loads(json.dumps(TUTORIAL))
    manifest["spec"]["tasks"].append({"name": "sleep", "bash": "sleep 1"})
    result = kubectl(
        cluster, "create", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0
    assert "spec.tasks[3]: Duplicate value" in result.stderr, result.stderr
