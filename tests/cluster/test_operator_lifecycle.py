"""Runs over time: clearing and re-running, Pod cleanup, and the operator's own death.

The restart test is the promise of deterministic names and a status-only memory:
an operator killed with SIGKILL at any moment and started again creates no
duplicate Pod, loses no XCom, and finishes every run as it would have.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from typing import Any

from operator_harness import (
    Api,
    OperatorProcess,
    dag_manifest,
    kwok,
    task_states,
    wait_for,
)

DAY = "2024-01-01T00:00:00Z"


def test_clear_then_rerun(cluster: Any, namespace: str, api: Api, operator: OperatorProcess) -> None:
    tasks = [
        {"name": "extract", "bash": "true"},
        {
            "name": "flaky",
            "bash": "true",
            "dependsOn": ["extract"],
            "pod": kwok(outcome="{{ 'failure' if ti.try_number == 1 else 'success' }}"),
        },
        {"name": "load", "bash": "true", "dependsOn": ["flaky"]},
    ]
    api.apply(dag_manifest("clearable", tasks))
    run = api.create_run("clearable", DAY)
    first = api.wait_run(run)
    assert task_states(first) == {"extract": "success", "flaky": "failed", "load": "upstream_failed"}

    cleared = _cli(cluster, namespace, "clear", run, "--task", "^flaky$", "--downstream")
    assert "flaky, load" in cleared

    def rerun_done() -> dict[str, Any] | None:
        current = api.run(run)
        done = task_states(current) == {"extract": "success", "flaky": "success", "load": "success"}
        return current if done and current["status"]["state"] == "success" else None

    finished = wait_for(rerun_done, what="the cleared tasks to run again")
    assert finished["status"]["tasks"]["flaky"]["tryNumber"] == 2
    assert finished["status"]["tasks"]["extract"]["tryNumber"] == 1  # not cleared, not re-run
    assert finished["status"]["cleared"]
    assert "clear" in finished["spec"]


def test_pod_cleanup_on_success_deletes_succeeded_pods_only(api: Api, operator: OperatorProcess) -> None:
    tasks = [
        {"name": "good", "bash": "true"},
        {"name": "bad", "bash": "false", "pod": kwok(outcome="failure")},
    ]
    api.apply(dag_manifest("tidy", tasks, podCleanup="onSuccess"))
    run = api.create_run("tidy", DAY)
    api.wait_run(run)

    wait_for(
        lambda: [p.metadata.labels["kubeflowlite.io/task"] for p in api.pods(run)] == ["bad"], what="cleanup"
    )


def test_pod_cleanup_on_run_end_deletes_every_pod(api: Api, operator: OperatorProcess) -> None:
    api.apply(
        dag_manifest(
            "spotless", [{"name": "a", "bash": "true"}, {"name": "b", "bash": "true"}], podCleanup="onRunEnd"
        )
    )
    run = api.create_run("spotless", DAY)
    assert api.wait_run(run)["status"]["state"] == "success"

    wait_for(lambda: not api.pods(run), what="every Pod to be deleted")


def test_operator_killed_mid_run_and_restarted_finishes_with_no_duplicate_pods(
    api: Api, start_operator: Any
) -> None:
    operator = start_operator()
    # A fan-out and a chain with XComs, slow enough to be caught mid-way, with retries.
    tasks: list[dict[str, Any]] = [{"name": "start", "bash": "true", "pod": kwok(message='"seed"')}]
    for i in range(8):
        tasks.append(
            {
                "name": f"fan_{i}",
                "bash": "echo {{ ti.xcom_pull(task_ids='start') }}",
                "dependsOn": ["start"],
                "retries": 2,
                "retryDelay": "0s",
                "pod": kwok(
                    delay="500ms",
                    outcome="{{ 'failure' if ti.try_number == 1 and ti.task_id.endswith(('1', '5')) else 'success' }}",
                    message=f'"v{i}"',
                ),
            }
        )
    previous = "start"
    for i in range(6):
        tasks.append(
            {"name": f"chain_{i}", "bash": "true", "dependsOn": [previous], "pod": kwok(delay="300ms")}
        )
        previous = f"chain_{i}"
    tasks.append(
        {
            "name": "join",
            "bash": "echo {{ ti.xcom_pull(task_ids=['fan_0', 'fan_7']) | tojson }}",
            "dependsOn": [f"fan_{i}" for i in range(8)] + [previous],
        }
    )
    api.apply(dag_manifest("survivor", tasks, maxActiveTasks=4))
    runs = [api.create_run("survivor", f"2024-01-0{d}T00:00:00Z") for d in range(1, 4)]

    for kill_after in (0.7, 1.3, 0.4, 2.0):
        time.sleep(kill_after)
        operator.kill()
        time.sleep(0.5)  # Pods keep changing while no operator watches
        operator.start()

    for run in runs:
        finished = api.wait_run(run, timeout=120)
        assert finished["status"]["state"] == "success", task_states(finished)
        pods = api.pods(run)
        names = Counter(p.metadata.name for p in pods)
        assert all(count == 1 for count in names.values())
        per_task = Counter(p.metadata.labels["kubeflowlite.io/task"] for p in pods)
        for task, instance in finished["status"]["tasks"].items():
            assert per_task[task] == instance["tryNumber"], (task, per_task[task], instance)
        assert finished["status"]["tasks"]["fan_1"]["tryNumber"] == 2
        stored = api.configmap(f"{run}-xcom").data
        assert stored["start"] == '"seed"'
        assert all(stored[f"fan_{i}"] == f'"v{i}"' for i in range(8))
        join = next(p for p in pods if p.metadata.labels["kubeflowlite.io/task"] == "join")
        assert join.spec.containers[0].command[-1] == 'echo ["v0", "v7"]'


def _cli(cluster: Any, namespace: str, *args: str) -> str:
    """Run a `kubeflowlite` cluster command against the test namespace."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubeflowlite",
            *args,
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-n",
            namespace,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_try_whose_node_is_lost_fails_and_is_retried(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess
) -> None:
    slow = {
        "name": "slow",
        "bash": "sleep 60",
        "retries": 1,
        "retryDelay": "0s",
        "pod": kwok(delay="{{ '60s' if ti.try_number == 1 else '100ms' }}"),
    }
    api.apply(dag_manifest("node-lost", [slow]))
    run = api.create_run("node-lost", DAY)
    wait_for(lambda: task_states(api.run(run)).get("slow") == "running", what="the task to run")
    node = api.pods(run)[0].spec.node_name
    taint = "kubeflowlite.io/test-node-lost=true:NoExecute"
    # A NoExecute taint the Pod does not tolerate: the taint-eviction controller evicts
    # it with a DisruptionTarget condition, as it does for Pods on an unreachable node.
    cluster.kubectl("taint", "node", node, taint)
    try:
        finished = api.wait_run(run, timeout=90)
    finally:
        cluster.kubectl("taint", "node", node, f"{taint}-", check=False)

    instance = finished["status"]["tasks"]["slow"]
    assert finished["status"]["state"] == "success"
    assert instance["tryNumber"] == 2
    first = instance["tries"][0]["message"]
    assert "disrupted" in first or "deleted" in first or "disappeared" in first, first
