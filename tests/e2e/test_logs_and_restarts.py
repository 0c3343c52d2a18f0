"""What happens inside and around real task Pods: their logs, a Pod deleted mid-run, an operator killed.

Each test runs a DAG on the real node with the operator outside the cluster, and
reads what a user would: `kubeflowlite logs`, the DAGRun's status, the Pods.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from operator_harness import Api, OperatorProcess, dag_manifest, task_states, wait_for

REPO = Path(__file__).resolve().parents[2]


def cli(cluster: Any, namespace: str, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "kubeflowlite", *args, f"--kubeconfig={cluster.kubeconfig}", "-n", namespace],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def local_logs(path: Path, tmp_path: Path) -> Path:
    """Run `path` locally; the directory of its run (one folder per task, one log per try)."""
    runs = tmp_path / "runs"
    subprocess.run(
        [sys.executable, "-m", "kubeflowlite", "run", str(path), "--date", "2020-02-09", "--runs-dir", str(runs)],
        capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    (run_dir,) = list(runs.glob("*/*/"))
    return run_dir


def test_logs_of_every_try_match_the_local_logs(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess, tmp_path: Path
) -> None:
    path = REPO / "examples" / "retries.yaml"
    api.apply(yaml.safe_load(path.read_text()))
    run = api.create_run("retries", "2020-02-09T00:00:00Z")
    assert api.wait_run(run, timeout=180)["status"]["state"] == "success"
    local = local_logs(path, tmp_path)

    latest = cli(cluster, namespace, "logs", run, "flaky").stdout
    assert latest == (local / "flaky" / "try-3.log").read_text()
    assert "succeeded on try 3" in latest
    first = cli(cluster, namespace, "logs", run, "flaky", "--try", "1").stdout
    assert first == (local / "flaky" / "try-1.log").read_text()
    assert "not yet: failing this try" in first
    assert (
        "has had 3 tries, not 4" in cli(cluster, namespace, "logs", run, "flaky", "--try", "4", code=1).stderr
    )
    assert "has no task 'nothing'" in cli(cluster, namespace, "logs", run, "nothing", code=1).stderr


def test_logs_of_a_cleaned_up_run_say_so(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess
) -> None:
    api.apply(dag_manifest("tidy", [{"name": "hello", "bash": "echo hello"}], podCleanup="onSuccess"))
    run = api.create_run("tidy", "2020-02-09T00:00:00Z")
    assert api.wait_run(run, timeout=120)["status"]["state"] == "success"
    wait_for(lambda: not api.pods(run), timeout=60, what="the Pods to be cleaned up")
    message = cli(cluster, namespace, "logs", run, "hello", code=1).stderr
    assert "is gone (the DAG's podCleanup is onSuccess)" in message


def test_a_pod_deleted_while_running_is_retried(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess
) -> None:
    script = 'echo "try $KFL_TRY_NUMBER"; [ "$KFL_TRY_NUMBER" -ge 2 ] || sleep 300'
    api.apply(dag_manifest("deleted", [{"name": "long", "bash": script, "retries": 1, "retryDelay": "1s"}]))
    run = api.create_run("deleted", "2020-02-09T00:00:00Z")

    def running_pod() -> Any:
        found = [p for p in api.pods(run) if p.status.phase == "Running"]
        return found[0] if found else None

    pod = wait_for(running_pod, timeout=120, what="the first try to run")
    api.core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
    finished = api.wait_run(run, timeout=180)
    task = finished["status"]["tasks"]["long"]
    assert (finished["status"]["state"], task["state"], task["tryNumber"]) == ("success", "success", 2)
    assert "pod deleted" in task["tries"][0]["message"]
    remaining = [p for p in api.pods(run) if p.metadata.deletion_timestamp is None]
    assert [p.metadata.labels["kubeflowlite.io/try"] for p in remaining] == ["2"]


def test_operator_killed_while_real_pods_run(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess
) -> None:
    """SIGKILL the operator three times while a fan-out of real Pods runs: right states, one Pod per try."""
    tasks: list[dict[str, Any]] = [{"name": "start", "bash": "echo go"}]
    tasks += [
        {
            "name": f"work_{i}",
            "dependsOn": ["start"],
            "bash": f"sleep 2; echo '{{\"n\": {i}}}' > $KFL_XCOM_FILE",
        }
        for i in range(6)
    ]
    tasks.append({
        "name": "sum",
        "dependsOn": [f"work_{i}" for i in range(6)],
        "bash": "echo {{ " + " + ".join(f"ti.xcom_pull(task_ids='work_{i}')['n']" for i in range(6)) + " }}",
    })  # fmt: skip
    api.apply(dag_manifest("killed", tasks))
    run = api.create_run("killed", "2020-02-09T00:00:00Z")
    for _ in range(3):
        wait_for(lambda: api.pods(run), timeout=60, what="Pods")
        time.sleep(1.5)
        operator.kill()
        time.sleep(1)
        operator.start()
    finished = api.wait_run(run, timeout=180)
    assert finished["status"]["state"] == "success", task_states(finished)
    assert set(task_states(finished).values()) == {"success"}
    pods = api.pods(run)
    assert len(pods) == len(tasks)  # one Pod per task: nothing created twice
    assert {p.metadata.labels["kubeflowlite.io/try"] for p in pods} == {"1"}
    values = api.configmap(f"{run}-xcom").data
    assert json.loads(values["sum"]) == str(sum(range(6)))
    # The Pods really ran: the kubelet reports each container's exit.
    for pod in pods:
        state = pod.status.container_statuses[0].state
        assert (
            isinstance(state.terminated, client.V1ContainerStateTerminated)
            and state.terminated.exit_code == 0
        )
