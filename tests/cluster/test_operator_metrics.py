"""The operator's metrics equal what happened: exact counts per DAG and task, also across a restart.

Read straight from the operator's /metrics (prometheus_client's text format, parsed
by prometheus_client's own parser). The restart test kills the operator with SIGKILL
while a task runs, lets the task finish while no operator is there, and starts a new
operator: it counts that task and its run exactly once, and does not count again the
run that had already finished before it started.
"""

from __future__ import annotations

from typing import Any

from operator_harness import Api, OperatorProcess, dag_manifest, kwok, task_states, wait_for
from ops_harness import samples, value

DAY = "2024-01-01T00:00:00Z"
DAY2 = "2024-01-02T00:00:00Z"


def test_outcomes_are_counted_exactly_with_namespace_dag_and_task(
    namespace: str, api: Api, operator: OperatorProcess
) -> None:
    tasks = [
        {"name": "extract", "bash": "true"},
        {
            "name": "transform",
            "bash": "true",
            "dependsOn": ["extract"],
            "retries": 1,
            "retryDelay": "1s",
            "pod": kwok(outcome="failure"),
        },
        {"name": "load", "bash": "true", "dependsOn": ["transform"]},
        {"name": "report", "bash": "true", "dependsOn": ["extract"]},
    ]
    api.apply(dag_manifest("etl", tasks))
    # the DAG's outcome series exist at 0 before anything ran: the first failure is an increase
    wait_for(
        lambda: (
            value(
                operator,
                "kubeflowlite_dagruns_finished_total",
                namespace=namespace,
                dag="etl",
                state="failed",
            )
            == 0
        ),
        what="the failed-runs series of etl at 0",
    )
    assert value(operator, "kubeflowlite_dag_ready", namespace=namespace, dag="etl") == 1
    zero = samples(operator, "kubeflowlite_task_instances_finished_total", namespace=namespace, dag="etl")
    assert set(zero) == {
        (("state", state), ("task", task))
        for task in ("extract", "transform", "load", "report")
        for state in ("success", "failed")
    }
    assert set(zero.values()) == {0}

    first = api.wait_run(api.create_run("etl", DAY))
    second = api.wait_run(api.create_run("etl", DAY2))
    for run in (first, second):
        assert run["status"]["state"] == "failed"
        assert task_states(run) == {
            "extract": "success",
            "transform": "failed",
            "load": "upstream_failed",
            "report": "success",
        }

    def counts() -> dict[tuple[tuple[str, str], ...], float]:
        return samples(operator, "kubeflowlite_task_instances_finished_total", namespace=namespace, dag="etl")

    expected_tasks = {
        (("state", "success"), ("task", "extract")): 2,
        (("state", "failed"), ("task", "extract")): 0,
        (("state", "success"), ("task", "transform")): 0,
        (("state", "failed"), ("task", "transform")): 2,
        (("state", "success"), ("task", "load")): 0,
        (("state", "failed"), ("task", "load")): 0,
        (("state", "upstream_failed"), ("task", "load")): 2,
        (("state", "success"), ("task", "report")): 2,
        (("state", "failed"), ("task", "report")): 0,
    }
    assert counts() == expected_tasks
    runs = samples(operator, "kubeflowlite_dagruns_finished_total", namespace=namespace, dag="etl")
    assert runs == {(("state", "failed"),): 2, (("state", "success"),): 0}
    # two tries of transform per run started, one of each other Pod task (extract, report); load never started
    assert value(operator, "kubeflowlite_task_start_delay_seconds_count", namespace=namespace, dag="etl") == 8
    assert samples(
        operator, "kubeflowlite_task_instance_duration_seconds_count", namespace=namespace, dag="etl"
    ) == {
        (("state", "success"),): 4,
        (("state", "failed"),): 2,
        (("state", "upstream_failed"),): 2,
    }, "per DAG: never a series per task"
    durations = samples(
        operator, "kubeflowlite_dagrun_duration_seconds_count", namespace=namespace, dag="etl"
    )
    assert durations == {(("state", "failed"),): 2, (("state", "success"),): 0}
    assert (
        value(operator, "kubeflowlite_dagrun_start_delay_seconds_count", namespace=namespace, dag="etl") == 2
    )
    # the latest failure names its run, and only the latest is kept
    last = samples(
        operator, "kubeflowlite_dagrun_last_failure_timestamp_seconds", namespace=namespace, dag="etl"
    )
    assert list(last) == [(("logical_date", DAY2), ("run", second["metadata"]["name"]))]
    # nothing is in flight any more; reconciling the finished runs again counts nothing
    wait_for(
        lambda: (
            value(operator, "kubeflowlite_dag_runs", namespace=namespace, dag="etl", state="running") == 0
        ),
        what="the running-runs gauge to drop to 0",
    )
    assert list(samples(operator, "kubeflowlite_build_info").values()) == [1.0]
    assert counts() == expected_tasks


def test_an_operator_restart_neither_counts_twice_nor_loses_what_finished_while_it_was_down(
    namespace: str, api: Api, start_operator: Any
) -> None:
    tasks = [
        {"name": "quick", "bash": "true"},
        {"name": "slow", "bash": "true", "dependsOn": ["quick"], "pod": kwok(delay="6s")},
    ]
    api.apply(dag_manifest("daily", tasks))
    first_operator = start_operator()
    done = api.wait_run(api.create_run("daily", DAY))
    assert done["status"]["state"] == "success"
    assert (
        value(
            first_operator,
            "kubeflowlite_dagruns_finished_total",
            namespace=namespace,
            dag="daily",
            state="success",
        )
        == 1
    )

    run = api.create_run("daily", DAY2)

    def slow_running() -> bool:
        return task_states(api.run(run)).get("slow") == "running"

    wait_for(slow_running, what="the slow task to be running")
    first_operator.kill()  # SIGKILL while slow's Pod runs; it finishes with no operator watching
    wait_for(
        lambda: all(p.status.phase == "Succeeded" for p in api.pods(run)) and len(api.pods(run)) == 2,
        what="slow's Pod to succeed while the operator is down",
        timeout=30,
    )
    assert api.run(run)["status"]["state"] == "running"  # nobody wrote it yet

    second_operator = start_operator()
    assert api.wait_run(run)["status"]["state"] == "success"

    def finished(**labels: str) -> float | None:
        return value(
            second_operator,
            "kubeflowlite_task_instances_finished_total",
            namespace=namespace,
            dag="daily",
            **labels,
        )

    wait_for(lambda: finished(task="slow", state="success") == 1, what="slow counted by the new operator")
    # the run finished before the restart is not counted again; the one that finished across it is
    assert (
        value(
            second_operator,
            "kubeflowlite_dagruns_finished_total",
            namespace=namespace,
            dag="daily",
            state="success",
        )
        == 1
    )
    # quick finished before the restart (the first operator counted it): the new one shows it at 0
    wait_for(lambda: finished(task="quick", state="success") == 0, what="quick's series at 0", timeout=15)
    assert finished(task="slow", state="success") == 1
    # the new operator never saw slow's try start, but it did see it finish: no start delay from it (0)
    assert (
        value(
            second_operator, "kubeflowlite_task_start_delay_seconds_count", namespace=namespace, dag="daily"
        )
        == 0
    )
