"""The operator's core path on a real cluster: runs finish, retries retry, XComs flow, bad input is reported.

Each test starts `kubeflowlite operator` for its own namespace (operator_harness)
and drives it only through Kubernetes objects, as a user with kubectl would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from operator_harness import (
    Api,
    OperatorProcess,
    dag_manifest,
    kwok,
    task_states,
    wait_for,
)
from ops_harness import value

from kubeflowlite.k8s import taskscript

REPO = Path(__file__).resolve().parents[2]


def test_tutorial_reaches_success_and_kubectl_shows_the_columns(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess
) -> None:
    tutorial = yaml.safe_load((REPO / "examples" / "tutorial.yaml").read_text())
    api.apply(tutorial)
    run = api.create_run("tutorial", "2020-02-09T00:00:00Z")

    finished = api.wait_run(run)

    assert finished["status"]["state"] == "success"
    assert task_states(finished) == {"print_date": "success", "sleep": "success", "templated": "success"}
    assert finished["status"]["tasksSummary"] == "3/3"
    assert finished["status"]["dagSpec"]["tasks"][0]["name"] == "print_date"
    table = cluster.kubectl("get", "dagruns", "-n", namespace).stdout
    header, row = table.splitlines()[0], next(line for line in table.splitlines() if line.startswith(run))
    for column in ("DAG", "LOGICAL DATE", "STATE", "TASKS", "STARTED", "DURATION", "AGE"):
        assert column in header
    assert "tutorial" in row and "2020-02-09T00:00:00Z" in row and "success" in row and "3/3" in row
    pods = api.pods(run)
    assert len(pods) == 3
    for pod in pods:
        labels = pod.metadata.labels
        assert labels["kubeflowlite.io/dag"] == "tutorial"
        assert labels["kubeflowlite.io/run"] == run
        assert labels["kubeflowlite.io/try"] == "1"
        assert pod.metadata.owner_references[0].kind == "DAGRun"
        assert pod.spec.restart_policy == "Never"
    templated = next(p for p in pods if p.metadata.labels["kubeflowlite.io/task"] == "templated")
    assert "2020-02-16" in templated.spec.containers[0].command[-1]  # macros.ds_add(ds, 7), rendered


def test_a_task_that_fails_twice_then_succeeds_ends_on_try_3(api: Api, operator: OperatorProcess) -> None:
    flaky = {
        "name": "flaky",
        "bash": "exit 0",
        "retries": 3,
        "retryDelay": "1s",
        "pod": kwok(outcome="{{ 'failure' if ti.try_number < 3 else 'success' }}", exit_code=7),
    }
    api.apply(dag_manifest("retries", [flaky, {"name": "after", "bash": "true", "dependsOn": ["flaky"]}]))
    run = api.create_run("retries", "2024-01-01T00:00:00Z")

    finished = api.wait_run(run)

    instance = finished["status"]["tasks"]["flaky"]
    assert finished["status"]["state"] == "success"
    assert instance["state"] == "success"
    assert instance["tryNumber"] == 3
    assert [t["tryNumber"] for t in instance["tries"]] == [1, 2]
    assert all(t["state"] == "failed" and t["exitCode"] == 7 for t in instance["tries"])
    metrics = operator.metrics()
    where = {"namespace": api.namespace, "dag": "retries"}
    for task in ("flaky", "after"):
        assert (
            value(operator, "kubeflowlite_task_instances_finished_total", **where, task=task, state="success")
            == 1
        )
    assert value(operator, "kubeflowlite_dagruns_finished_total", **where, state="success") == 1
    assert 'kubeflowlite_api_requests_total{code="201",resource="pods",verb="create"} 4.0' in metrics
    assert sorted(
        p.metadata.labels["kubeflowlite.io/try"] for p in api.pods(run) if "flaky" in p.metadata.name
    ) == [
        "1",
        "2",
        "3",
    ]


def test_an_xcom_value_flows_into_the_downstream_command(api: Api, operator: OperatorProcess) -> None:
    tasks = [
        {"name": "push", "bash": "echo", "pod": kwok(message='"hello"')},
        {"name": "pull", "bash": "echo got {{ ti.xcom_pull(task_ids='push') }}", "dependsOn": ["push"]},
    ]
    api.apply(dag_manifest("xcom", tasks))
    run = api.create_run("xcom", "2024-01-01T00:00:00Z")

    assert api.wait_run(run)["status"]["state"] == "success"

    pull = next(p for p in api.pods(run) if p.metadata.labels["kubeflowlite.io/task"] == "pull")
    assert pull.spec.containers[0].command == taskscript.bash_command("echo got hello")
    stored = api.configmap(f"{run}-xcom")
    assert stored.data == {"push": '"hello"'}
    assert stored.metadata.owner_references[0].name == run
    assert stored.metadata.labels["kubeflowlite.io/run"] == run


def test_an_invalid_xcom_fails_the_task_with_a_clear_message(api: Api, operator: OperatorProcess) -> None:
    api.apply(dag_manifest("badxcom", [{"name": "push", "bash": "echo", "pod": kwok(message="not json")}]))
    run = api.create_run("badxcom", "2024-01-01T00:00:00Z")

    finished = api.wait_run(run)

    assert finished["status"]["state"] == "failed"
    assert "not valid JSON" in finished["status"]["tasks"]["push"]["message"]


def test_a_task_pod_deleted_by_hand_is_retried(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess
) -> None:
    slow = {
        "name": "slow",
        "bash": "sleep 60",
        "retries": 1,
        "retryDelay": "0s",
        "pod": kwok(delay="{{ '60s' if ti.try_number == 1 else '100ms' }}"),
    }
    api.apply(dag_manifest("deleted", [slow]))
    run = api.create_run("deleted", "2024-01-01T00:00:00Z")
    wait_for(
        lambda: (api.run(run).get("status") or {}).get("tasks", {}).get("slow", {}).get("state") == "running",
        what="the task to run",
    )

    cluster.kubectl("delete", "pod", "-n", namespace, f"{run}-slow-1", "--wait=false")

    finished = api.wait_run(run)
    instance = finished["status"]["tasks"]["slow"]
    assert finished["status"]["state"] == "success"
    assert instance["tryNumber"] == 2
    assert "deleted" in instance["tries"][0]["message"] or "disappeared" in instance["tries"][0]["message"]


def test_an_invalid_dag_is_reported_while_other_dags_are_served(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess
) -> None:
    cycle = [
        {"name": "a", "bash": "true", "dependsOn": ["b"]},
        {"name": "b", "bash": "true", "dependsOn": ["a"]},
        {"name": "c", "bash": "true", "dependsOn": ["nowhere"]},
    ]
    api.apply(dag_manifest("broken", cycle))
    api.apply(dag_manifest("fine", [{"name": "only", "bash": "true"}]))
    broken_run = api.create_run("broken", "2024-01-01T00:00:00Z")
    fine_run = api.create_run("fine", "2024-01-01T00:00:00Z")

    def ready_false() -> dict[str, Any] | None:
        conditions = (api.dag("broken").get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Ready" and c["status"] == "False"), None)

    condition = wait_for(ready_false, what="Ready=False on the broken DAG")
    assert condition["reason"] == "InvalidDAG"
    assert "cycle" in condition["message"] and "nowhere" in condition["message"]
    assert api.wait_run(fine_run)["status"]["state"] == "success"
    held = api.run(broken_run)["status"]
    assert held["state"] == "queued"
    assert any(c["type"] == "Admitted" and c["reason"] == "InvalidDAG" for c in held["conditions"])
    events = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=broken", "-o", "yaml"
    ).stdout
    assert "InvalidDAG" in events and "Warning" in events
    fine = api.dag("fine")["status"]["conditions"]
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in fine)


def test_a_pod_stuck_pending_fails_its_try_after_the_pending_timeout(api: Api, start_operator: Any) -> None:
    start_operator("--pending-timeout=2s")
    pulling = kwok(stuck=True, waiting_reason="ImagePullBackOff")
    api.apply(dag_manifest("stuck", [{"name": "waits", "bash": "true", "pod": pulling}]))
    run = api.create_run("stuck", "2024-01-01T00:00:00Z")

    finished = api.wait_run(run, timeout=30)

    assert finished["status"]["state"] == "failed"
    message = finished["status"]["tasks"]["waits"]["message"]
    assert "pending after 2s" in message and "ImagePullBackOff" in message


def test_a_run_with_an_unreadable_logical_date_is_held_naming_the_field(
    api: Api, operator: OperatorProcess
) -> None:
    # The CRD takes any string (users write dates as they like); the model refuses this one.
    api.apply(dag_manifest("dated", [{"name": "only", "bash": "true"}]))
    held = api.create_run("dated", "next tuesday", name="dated-bad")
    fine = api.create_run("dated", "2024-01-01T00:00:00Z")

    def invalid_spec() -> dict[str, Any] | None:
        conditions = (api.run(held).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Admitted" and c["reason"] == "InvalidSpec"), None)

    condition = wait_for(invalid_spec, what="Admitted=False/InvalidSpec on the run")
    assert condition["status"] == "False"
    assert condition["message"].startswith("spec.logicalDate: not a date or time: 'next tuesday'")
    assert api.run(held)["status"]["state"] == "queued" and api.pods(held) == []
    assert api.wait_run(fine)["status"]["state"] == "success"


def test_fan_outs_wider_than_the_launch_budget_create_each_pod_once(
    api: Api, start_operator: Callable[..., OperatorProcess]
) -> None:
    # A budget of 40 manifests in hand across runs, at least 20 a pass: two runs of 60 tasks
    # launched together take several passes each (workqueue.CONTINUE), sharing the budget.
    start_operator(constants={"MAX_CREATES": 40, "MIN_PASS_CREATES": 20})
    width = 60
    tasks = [{"name": f"t{i:03d}", "bash": "true"} for i in range(width)]
    api.apply(dag_manifest("wide", tasks, maxActiveTasks=width))
    runs = [api.create_run("wide", f"2024-01-0{day}T00:00:00Z") for day in (1, 2)]
    for run in runs:
        done = api.wait_run(run, timeout=180)
        assert done["status"]["state"] == "success"
        assert set(task_states(done).values()) == {"success"} and len(task_states(done)) == width
        pods = api.pods(run)
        assert len(pods) == width == len({pod.metadata.name for pod in pods}), "one Pod per task, none twice"
