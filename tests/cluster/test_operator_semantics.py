"""On a cluster, a DAG behaves exactly as it does in the local runner.

Each test runs a DAG twice: locally with `kubeflowlite run` (real subprocesses),
and on the cluster through the operator, with KWOK annotations reproducing each
task's outcome (exit code, XCom value). The final task states must be the same:
same engine, same trigger rules, same branching and short-circuit decisions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from operator_harness import (
    Api,
    OperatorProcess,
    dag_manifest,
    kwok,
    task_states,
)

from kubeflowlite.core import durations

REPO = Path(__file__).resolve().parents[2]


def run_locally(manifest: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The DAGRun the local runner prints for `manifest` (run for real, tasks as subprocesses)."""
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubeflowlite",
            "run",
            str(path),
            "--date",
            "2024-01-01",
            "--runs-dir",
            str(tmp_path / "runs"),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return dict(json.loads(result.stdout))


def with_pods(manifest: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`manifest` with a KWOK `pod` override on the named tasks (the cluster's stand-in for what they do)."""
    copy = json.loads(json.dumps(manifest))
    for task in copy["spec"]["tasks"]:
        if task["name"] in overrides:
            task["pod"] = overrides[task["name"]]
    return copy


def run_on_cluster(api: Api, manifest: dict[str, Any]) -> dict[str, Any]:
    api.apply(manifest)
    run = api.create_run(manifest["metadata"]["name"], "2024-01-01T00:00:00Z")
    return api.wait_run(run)


def test_every_trigger_rule_behaves_as_in_the_local_runner(
    api: Api, operator: OperatorProcess, tmp_path: Path
) -> None:
    manifest = yaml.safe_load((REPO / "examples" / "trigger-rules.yaml").read_text())
    local = run_locally(manifest, tmp_path)

    cluster_run = run_on_cluster(api, with_pods(manifest, {"broken": kwok(outcome="failure", exit_code=3)}))

    assert task_states(cluster_run) == task_states(local)
    assert cluster_run["status"]["state"] == local["status"]["state"] == "failed"
    assert task_states(cluster_run)["on_one_failed"] == "success"
    assert task_states(cluster_run)["on_all_failed"] == "skipped"
    assert task_states(cluster_run)["broken_alone"] == "upstream_failed"
    assert cluster_run["status"]["tasks"]["broken"]["exitCode"] == 3


def test_branching_follows_the_chosen_path_as_locally(
    api: Api, operator: OperatorProcess, tmp_path: Path
) -> None:
    manifest = yaml.safe_load((REPO / "examples" / "branching.yaml").read_text())
    local = run_locally(manifest, tmp_path)

    cluster_run = run_on_cluster(api, with_pods(manifest, {"choose": kwok(message='"weekday_report"')}))

    assert task_states(cluster_run) == task_states(local)
    assert task_states(cluster_run)["weekend_report"] == "skipped"
    assert task_states(cluster_run)["publish"] == "success"


def test_short_circuit_skips_everything_downstream_as_locally(
    api: Api, operator: OperatorProcess, tmp_path: Path
) -> None:
    tasks = [
        {"name": "check", "shortCircuit": True, "bash": "echo false"},
        {"name": "side", "bash": "echo independent"},
        {"name": "load", "bash": "echo load", "dependsOn": ["check"]},
        {"name": "report", "bash": "echo report", "dependsOn": ["load", "side"]},
    ]
    manifest = dag_manifest("short-circuit", tasks)
    local = run_locally(manifest, tmp_path)

    cluster_run = run_on_cluster(api, with_pods(manifest, {"check": kwok(message='"false"')}))

    assert task_states(cluster_run) == task_states(local)
    assert task_states(cluster_run) == {
        "check": "success",
        "side": "success",
        "load": "skipped",
        "report": "skipped",
    }


def test_both_shells_write_the_same_dagrun_field_by_field(
    api: Api, operator: OperatorProcess, tmp_path: Path
) -> None:
    """Apart from what only one shell can know (times, Pod names, the operator's conditions)."""
    tasks = [
        {"name": "extract", "bash": "true"},
        {"name": "transform", "bash": "true", "dependsOn": ["extract"], "retries": 2, "retryDelay": "1s"},
        {"name": "report", "type": "empty", "dependsOn": ["transform"]},
    ]
    manifest = dag_manifest("same-run", tasks, params={"x": 1})
    local = run_locally(manifest, tmp_path)
    cluster_run = run_on_cluster(api, manifest)

    def comparable(run: dict[str, Any]) -> dict[str, Any]:
        status = dict(run["status"])
        for key in ("startTime", "endTime", "duration", "conditions"):
            status.pop(key, None)
        status["tasks"] = {
            name: {k: v for k, v in task.items() if k not in ("startTime", "endTime", "podName")}
            for name, task in status["tasks"].items()
        }
        spec = {k: v for k, v in run["spec"].items() if k != "conf" or v}
        return {"apiVersion": run["apiVersion"], "kind": run["kind"], "spec": spec, "status": status}

    assert comparable(cluster_run) == comparable(local)
    for run in (local, cluster_run):  # one duration format (it was 1h02m locally, 1h2m5s on a cluster)
        durations.parse_duration(run["status"]["duration"])
