"""Tasks the controller runs itself: external-task sensors and triggerDag, on a real cluster."""

from __future__ import annotations

from operator_harness import (
    Api,
    OperatorProcess,
    dag_manifest,
    kwok,
    task_states,
    wait_for,
)

DAY = "2024-01-02T00:00:00Z"


def test_an_external_task_sensor_waits_for_the_other_dags_task(api: Api, operator: OperatorProcess) -> None:
    api.apply(dag_manifest("upstream", [{"name": "produce", "bash": "true", "pod": kwok(delay="3s")}]))
    sensor = {"dag": "upstream", "task": "produce", "offset": "-1d", "pokeInterval": "1s", "timeout": "1m"}
    api.apply(
        dag_manifest(
            "downstream",
            [{"name": "wait", "sensor": sensor}, {"name": "consume", "bash": "true", "dependsOn": ["wait"]}],
        )
    )
    waiting = api.create_run("downstream", DAY)
    wait_for(
        lambda: (
            (api.run(waiting).get("status") or {}).get("tasks", {}).get("wait", {}).get("state") == "running"
        ),
        what="the sensor to poke",
    )
    assert not [p for p in api.pods(waiting) if p.metadata.labels["kubeflowlite.io/task"] == "wait"]  # no Pod

    api.create_run("upstream", "2024-01-01T00:00:00Z")  # the watched run: the day before

    finished = api.wait_run(waiting)
    assert task_states(finished) == {"wait": "success", "consume": "success"}
    assert "upstream.produce" in finished["status"]["tasks"]["wait"]["message"]


def test_a_sensor_times_out_into_a_failed_try(api: Api, operator: OperatorProcess) -> None:
    sensor = {"dag": "never", "pokeInterval": "1s", "timeout": "2s"}
    api.apply(dag_manifest("impatient", [{"name": "wait", "sensor": sensor}]))
    run = api.create_run("impatient", DAY)

    finished = api.wait_run(run, timeout=30)

    assert finished["status"]["state"] == "failed"
    assert "timed out after 2s" in finished["status"]["tasks"]["wait"]["message"]


def test_trigger_dag_creates_the_run_with_conf_and_waits_for_it(api: Api, operator: OperatorProcess) -> None:
    api.apply(dag_manifest("target", [{"name": "work", "bash": "echo {{ dag_run.conf.who }}"}]))
    trigger = {"dag": "target", "conf": {"who": "{{ ds }}"}, "waitForCompletion": True, "pokeInterval": "1s"}
    api.apply(dag_manifest("controller", [{"name": "kick", "triggerDag": trigger}]))
    run = api.create_run("controller", DAY)

    finished = api.wait_run(run)

    assert finished["status"]["state"] == "success"
    triggered = [r for r in api.runs() if r["spec"]["dagName"] == "target"]
    assert len(triggered) == 1
    assert triggered[0]["spec"]["conf"] == {"who": "2024-01-02"}
    assert triggered[0]["spec"]["logicalDate"] == DAY
    assert triggered[0]["status"]["state"] == "success"
    work = api.pods(triggered[0]["metadata"]["name"])[0]
    assert work.spec.containers[0].command[-1] == "echo 2024-01-02"
    assert api.configmap(f"{run}-xcom").data == {"kick": f'"{triggered[0]["metadata"]["name"]}"'}


def test_trigger_dag_fails_when_the_triggered_run_fails(api: Api, operator: OperatorProcess) -> None:
    api.apply(dag_manifest("doomed", [{"name": "work", "bash": "false", "pod": kwok(outcome="failure")}]))
    trigger = {"dag": "doomed", "waitForCompletion": True, "pokeInterval": "1s"}
    api.apply(dag_manifest("hopeful", [{"name": "kick", "triggerDag": trigger}]))
    run = api.create_run("hopeful", DAY)

    finished = api.wait_run(run)

    assert finished["status"]["state"] == "failed"
    assert "failed" in finished["status"]["tasks"]["kick"]["message"]
