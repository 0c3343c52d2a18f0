"""End to end: a failed DAG run reaches a person, and the dashboard shows what happened.

A real operator (outside the cluster, against the hermetic apiserver) runs two DAGs: one
whose run succeeds, one whose run fails. Debian's Prometheus, started here on loopback,
scrapes the operator every second and evaluates the alerting rules exactly as
`helm template` renders them from the chart; Debian's Alertmanager routes what fires to a
webhook this test serves. The test checks that:

- the metrics in Prometheus equal what happened (exact counts per DAG and task);
- KubeflowliteDAGRunFailed fires for the failed DAG (and only it) with the run to look at,
  and the webhook receives it through Alertmanager; KubeflowliteTaskFailed names the task;
- Alertmanager configured with the shipped Slack example (helm/examples/alertmanager-slack.yaml,
  its Slack URL pointed at the test's receiver) posts a message naming the DAG, task, run,
  logical date and the command to run next;
- every query of every panel of the chart's Grafana dashboard returns data;
- a second Prometheus, started only after the failure (its first sample of the counter is
  already 1, so increase() sees nothing), fires the alert too.
"""
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import Api, OperatorProcess, dag_manifest, kwok, task_states
from ops_harness import Alertmanager, Prometheus, Webhook, chart_rules, helm, slack_example_config, wait_until  # noqa: F401

from kubeflowlite.ops import dashboard

DAY = "2024-03-01T00:00:00Z"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    receiver = Webhook()
    yield receiver
    receiver.stop()


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: Webhook) -> Iterator[Alertmanager]:
    server = Alertmanager(tmp_path / "alertmanager", config=slack_example_config(webhook=webhook))
    yield server
    server.stop()


def test_a_failed_run_fires_its_alert_through_alertmanager_and_every_dashboard_query_has_data(
    helm: str,
    namespace: str,
    api: Api,
    operator: OperatorProcess,
    alertmanager: Alertmanager,
    webhook: Webhook,
    tmp_path: Path,
) -> None:
    rules = chart_rules(helm, "prometheusRule.operatorJob=kubeflowlite")
    prometheus = Prometheus(
        tmp_path / "prometheus",
        targets=[f"127.0.0.1:{operator.metrics_port}"],
        rules=rules,
        alertmanager=alertmanager.address,
    )
    try:
        _run_and_check(namespace, api, prometheus, webhook)
    finally:
        prometheus.stop()
    # A Prometheus that first scrapes the operator after the failure (it was restarted, or the
    # operator's series were born at 1) sees no increase, and must fire all the same.
    late = Prometheus(
        tmp_path / "late-prometheus",
        targets=[f"127.0.0.1:{operator.metrics_port}"],
        rules=rules,
        alertmanager=None,
    )
    try:
        fired = wait_until(
            lambda: [
                a
                for a in late.alerts()
                if a["labels"]["alertname"] == "KubeflowliteDAGRunFailed"
                and a["labels"].get("namespace") == namespace
                and a["state"] == "firing"
            ],
            timeout=30,
            what="a Prometheus that never saw the counter at 0 to fire KubeflowliteDAGRunFailed",
            dump=late.log,
        )
        assert [a["labels"]["dag"] for a in fired] == ["etl"]
        increase = late.query(
            f'increase(kubeflowlite_dagruns_finished_total{{namespace="{namespace}", state="failed"}}[15m]) > 0'
        )
        assert increase == []  # increase() alone would have missed it: the case the rule's second half covers
    finally:
        late.stop()


def _run_and_check(namespace: str, api: Api, prometheus: Prometheus, webhook: Webhook) -> None:
    scope = f'namespace="{namespace}"'
    api.apply(
        dag_manifest(
            "etl",
            [
                {"name": "extract", "bash": "true"},
                {
                    "name": "transform",
                    "bash": "true",
                    "dependsOn": ["extract"],
                    "pod": kwok(outcome="failure"),
                },
                {"name": "load", "bash": "true", "dependsOn": ["transform"]},
            ],
        )
    )
    api.apply(
        dag_manifest(
            "report",
            [
                {"name": "query", "bash": "true", "pod": kwok(delay="1s")},
                {"name": "send", "bash": "true", "dependsOn": ["query"]},
            ],
            schedule="@daily",
            startDate="2099-01-01T00:00:00Z",  # scheduled, but no scheduled run during the test
        )
    )
    # Prometheus has scraped both DAGs' outcome series at 0 before anything ran: the failure is an increase
    wait_until(
        lambda: (
            prometheus.value(f'count(kubeflowlite_dagruns_finished_total{{{scope}, state="failed"}} == 0)')
            == 2
        ),
        timeout=30,
        what="Prometheus to scrape the failed-runs series of both DAGs at 0",
        dump=prometheus.log,
    )
    assert prometheus.targets_up()
    assert not [a for a in prometheus.alerts() if a["labels"].get("namespace") == namespace]

    failed = api.wait_run(api.create_run("etl", DAY))
    succeeded = api.wait_run(api.create_run("report", DAY))
    assert failed["status"]["state"] == "failed"
    assert task_states(failed) == {"extract": "success", "transform": "failed", "load": "upstream_failed"}
    assert succeeded["status"]["state"] == "success"
    run = failed["metadata"]["name"]

    # the metrics equal what happened
    def counted(expr: str, expected: float) -> bool:
        return prometheus.value(expr) == expected

    exact = {
        f'kubeflowlite_dagruns_finished_total{{{scope}, dag="etl", state="failed"}}': 1,
        f'kubeflowlite_dagruns_finished_total{{{scope}, dag="etl", state="success"}}': 0,
        f'kubeflowlite_dagruns_finished_total{{{scope}, dag="report", state="success"}}': 1,
        f'kubeflowlite_dagruns_finished_total{{{scope}, dag="report", state="failed"}}': 0,
        f'kubeflowlite_task_instances_finished_total{{{scope}, dag="etl", task="extract", state="success"}}': 1,
        f'kubeflowlite_task_instances_finished_total{{{scope}, dag="etl", task="transform", state="failed"}}': 1,
        f'kubeflowlite_task_instances_finished_total{{{scope}, dag="etl", task="load", state="upstream_failed"}}': 1,
        f'sum(kubeflowlite_task_instances_finished_total{{{scope}, dag="report", state="success"}})': 2,
        f"sum(kubeflowlite_task_instances_finished_total{{{scope}}})": 5,
        f"sum(kubeflowlite_dagruns_finished_total{{{scope}}})": 2,
        f"sum(kubeflowlite_task_start_delay_seconds_count{{{scope}}})": 4,
        f'kubeflowlite_dag_schedule_interval_seconds{{{scope}, dag="report"}}': 86400,
    }
    for expr, expected in exact.items():
        wait_until(
            lambda e=expr, x=expected: counted(e, x),
            timeout=20,
            what=f"{expr} == {expected}",
            dump=lambda e=expr: json.dumps(prometheus.query(e.replace("sum(", "(", 1))),
        )

    # the run-failed alert fires for etl (not for report), naming the run to look at
    def firing(name: str) -> list[dict[str, Any]]:
        return [
            a
            for a in prometheus.alerts()
            if a["labels"]["alertname"] == name
            and a["state"] == "firing"
            and a["labels"].get("namespace") == namespace
        ]

    alerts = wait_until(
        lambda: firing("KubeflowliteDAGRunFailed"), timeout=30, what="KubeflowliteDAGRunFailed to fire"
    )
    assert [a["labels"]["dag"] for a in alerts] == ["etl"]
    assert alerts[0]["annotations"]["run"] == run
    assert alerts[0]["annotations"]["logical_date"] == DAY
    assert alerts[0]["annotations"]["command"] == f"kubeflowlite get {run} -n {namespace}"
    task_alerts = wait_until(
        lambda: firing("KubeflowliteTaskFailed"), timeout=30, what="KubeflowliteTaskFailed to fire"
    )
    assert [(a["labels"]["dag"], a["labels"]["task"]) for a in task_alerts] == [("etl", "transform")]
    assert task_alerts[0]["annotations"]["command"] == f"kubeflowlite logs {run} transform -n {namespace}"

    # ... and Alertmanager delivers it to the webhook
    def delivered() -> list[dict[str, Any]]:
        return [
            a
            for a in webhook.alerts()
            if a["labels"].get("alertname") == "KubeflowliteDAGRunFailed"
            and a["labels"].get("namespace") == namespace
        ]

    received = wait_until(
        delivered,
        timeout=30,
        what="the webhook to receive the alert",
        dump=lambda: json.dumps(webhook.received),
    )
    assert received[0]["labels"]["dag"] == "etl"
    assert received[0]["status"] == "firing"
    assert received[0]["annotations"]["run"] == run

    # ... and through the shipped Slack example, a message a person can act on
    def slack_messages() -> list[dict[str, Any]]:
        return [
            attachment
            for body in webhook.posted("/slack")
            for attachment in body.get("attachments") or []
            if namespace in attachment.get("text", "")
        ]

    def slack(title: str) -> dict[str, Any] | None:
        return next((m for m in slack_messages() if m["title"] == title), None)

    run_message = wait_until(
        lambda: slack("[FIRING] KubeflowliteDAGRunFailed: DAG etl"),
        timeout=30,
        what="the Slack message of the failed run",
        dump=lambda: json.dumps(webhook.by_path)[-3000:],
    )
    assert f"Run: `{run}`" in run_message["text"] and f"Logical date: `{DAY}`" in run_message["text"]
    assert f"Next: `kubeflowlite get {run} -n {namespace}`" in run_message["text"]
    task_message = wait_until(
        lambda: slack("[FIRING] KubeflowliteTaskFailed: DAG etl, task transform"),
        timeout=30,
        what="the Slack message of the failed task",
    )
    assert "Task: `transform`" in task_message["text"] and f"Run: `{run}`" in task_message["text"]
    assert f"Next: `kubeflowlite logs {run} transform -n {namespace}`" in task_message["text"]
    assert (
        wait_until(lambda: webhook.posted("/slack")[0].get("channel"), timeout=5, what="a channel")
        == "#data-pipelines"
    )

    # every panel of the dashboard returns data for what just happened
    wait_until(
        lambda: (
            (
                prometheus.value(f'kubeflowlite_dag_last_success_timestamp_seconds{{{scope}, dag="report"}}')
                or 0
            )
            > 0
        ),
        timeout=20,
        what="report's last success in Prometheus",
    )
    document = json.loads(dashboard.DEFAULT_OUTPUT.read_text())
    empty = []
    for title, expr in dashboard.queries(document):
        concrete = (
            expr.replace("$namespace", namespace)  # a DNS label: no regex metacharacters
            .replace("$dag", ".*")
            .replace("$__rate_interval", "5m")
            .replace("$__range", "5m")
        )
        result = prometheus.query(concrete)
        if not result or all(sample["value"][1] == "NaN" for sample in result):
            empty.append(f"{title}: {concrete}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
