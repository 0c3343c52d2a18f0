"""`promtool test rules` over the alerting rules exactly as `helm template` renders them from the chart.

Every alert has a case where it fires (with the labels and annotations a person gets:
namespace, DAG, task, and the command to run next) and one where it must not. The
first failure of a DAG, whose counter series is born at 1 because the operator had not
been scraped with it at 0 yet, fires too: that is the case `increase()` alone misses.
"""
# ruff: noqa: F811

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ops_harness import PROMTOOL, alert_names, chart_rules, helm  # noqa: F401

pytestmark = pytest.mark.cluster

NS = "team-a"
JOB = "kfl-kubeflowlite-metrics"
RUN = "etl-manual-20200209t000000"
DATE = "2020-02-09T00:00:00Z"


def runs_failed(dag: str, values: str) -> dict[str, str]:
    return {
        "series": f'kubeflowlite_dagruns_finished_total{{namespace="{NS}",dag="{dag}",state="failed"}}',
        "values": values,
    }


def tasks(dag: str, task: str, state: str, values: str) -> dict[str, str]:
    return {
        "series": f'kubeflowlite_task_instances_finished_total{{namespace="{NS}",dag="{dag}",task="{task}",state="{state}"}}',
        "values": values,
    }


def gauge(name: str, values: str, **labels: str) -> dict[str, str]:
    text = ",".join(f'{key}="{value}"' for key, value in {"namespace": NS, **labels}.items())
    return {"series": f"{name}{{{text}}}", "values": values}


def alert(name: str, at: str, *expected: dict[str, Any]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": list(expected)}


def fired(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    return {"exp_labels": labels, "exp_annotations": annotations}


RUN_FAILED = {
    "interval": "1m",
    "input_series": [
        runs_failed("etl", "0 0 1 1 1 1x30"),  # known at 0, then one run fails at 2m
        gauge(
            "kubeflowlite_dagrun_last_failure_timestamp_seconds",
            "_ _ 120x35",
            dag="etl",
            run=RUN,
            logical_date=DATE,
        ),
        runs_failed("load", "1x30"),  # the first failure after an operator start: born at 1
        runs_failed("fine", "0x30"),
    ],
    "alert_rule_test": [
        alert(
            "KubeflowliteDAGRunFailed",
            "3m",
            fired(
                {"namespace": NS, "dag": "etl", "severity": "warning"},
                {
                    "summary": f"DAG etl (namespace {NS}): a run failed",
                    "run": RUN,
                    "logical_date": DATE,
                    "description": f"1 run(s) of DAG etl in namespace {NS} failed in the last 15m. "
                    f"Latest: run {RUN}, logical date {DATE}.",
                    "command": f"kubeflowlite get {RUN} -n {NS}",
                },
            ),
            fired(
                {"namespace": NS, "dag": "load", "severity": "warning"},
                {
                    "summary": f"DAG load (namespace {NS}): a run failed",
                    "run": "",
                    "logical_date": "",
                    "description": f"1 run(s) of DAG load in namespace {NS} failed in the last 15m.",
                    "command": f"kubeflowlite runs load -n {NS}",
                },
            ),
        ),
        alert("KubeflowliteDAGRunFailed", "25m"),  # nothing new failed for longer than the window
    ],
}

TASK_FAILED = {
    "interval": "1m",
    "input_series": [
        tasks("etl", "extract", "failed", "0 0 1 1x30"),
        gauge(
            "kubeflowlite_task_last_failure_timestamp_seconds",
            "_ _ 120x35",
            dag="etl",
            task="extract",
            run=RUN,
            logical_date=DATE,
        ),
        tasks("etl", "load", "failed", "0x30"),
        tasks("other", "sync", "failed", "1x30"),  # born at 1
    ],
    "alert_rule_test": [
        alert(
            "KubeflowliteTaskFailed",
            "3m",
            fired(
                {"namespace": NS, "dag": "etl", "task": "extract", "severity": "warning"},
                {
                    "summary": f"DAG etl (namespace {NS}): task extract failed after its retries",
                    "run": RUN,
                    "logical_date": DATE,
                    "description": f"Task extract of DAG etl in namespace {NS} failed 1 time(s) in the last 15m, "
                    "all retries used.",
                    "command": f"kubeflowlite logs {RUN} extract -n {NS}",
                },
            ),
            fired(
                {"namespace": NS, "dag": "other", "task": "sync", "severity": "warning"},
                {
                    "summary": f"DAG other (namespace {NS}): task sync failed after its retries",
                    "run": "",
                    "logical_date": "",
                    "description": f"Task sync of DAG other in namespace {NS} failed 1 time(s) in the last 15m, "
                    "all retries used.",
                    "command": f"kubeflowlite runs other -n {NS}",
                },
            ),
        ),
        alert("KubeflowliteTaskFailed", "25m"),
    ],
}

FAILURE_RATIO = {
    "interval": "1m",
    "input_series": [
        tasks("flaky", "a", "failed", "0 1 2 3"),
        tasks("flaky", "a", "success", "0 0 0 1"),
        tasks("steady", "a", "failed", "0 0 0 1"),
        tasks("steady", "a", "success", "0 3 6 9"),
        tasks("tiny", "a", "failed", "0 0 0 1"),  # one of one failed: too few to call it a ratio
        tasks("tiny", "a", "success", "0 0 0 0"),
    ],
    "alert_rule_test": [
        alert(
            "KubeflowliteTaskFailureRatioHigh",
            "3m",
            fired(
                {"namespace": NS, "dag": "flaky", "severity": "warning"},
                {
                    "summary": f"DAG flaky (namespace {NS}): 75% of its tasks failed",
                    "description": f"More than 50% of the finished task instances of DAG flaky in namespace {NS} "
                    "failed over the last 1h.",
                    "command": f"kubeflowlite runs flaky -n {NS}",
                },
            ),
        ),
    ],
}

STALE = {
    "interval": "1m",
    "input_series": [
        gauge("kubeflowlite_dag_last_success_timestamp_seconds", "0x10", dag="hourly"),
        gauge("kubeflowlite_dag_schedule_interval_seconds", "60x10", dag="hourly"),
        gauge("kubeflowlite_dag_paused", "0x10", dag="hourly"),
        gauge("kubeflowlite_dag_last_success_timestamp_seconds", "0x10", dag="paused"),
        gauge("kubeflowlite_dag_schedule_interval_seconds", "60x10", dag="paused"),
        gauge("kubeflowlite_dag_paused", "1x10", dag="paused"),
        gauge("kubeflowlite_dag_last_success_timestamp_seconds", "0+60x10", dag="fresh"),
        gauge("kubeflowlite_dag_schedule_interval_seconds", "60x10", dag="fresh"),
        gauge("kubeflowlite_dag_paused", "0x10", dag="fresh"),
    ],
    "alert_rule_test": [
        alert(
            "KubeflowliteDAGStale",
            "5m",
            fired(
                {"namespace": NS, "dag": "hourly", "severity": "warning"},
                {
                    "summary": f"DAG hourly (namespace {NS}) has not succeeded for 5m 0s",
                    "description": f"The last successful run of DAG hourly in namespace {NS} ended 5m 0s ago, "
                    "more than 2 schedule intervals.",
                    "command": f"kubeflowlite runs hourly -n {NS}",
                },
            ),
        ),
        alert("KubeflowliteDAGStale", "1m"),
    ],
}

STUCK = {
    "interval": "1m",
    "input_series": [
        gauge("kubeflowlite_dag_task_instances", "2x25", dag="stuck", state="queued"),
        gauge("kubeflowlite_dag_task_instances", "2x25", dag="busy", state="queued"),
        gauge("kubeflowlite_task_start_delay_seconds_count", "0+1x25", dag="busy"),
    ],
    "alert_rule_test": [
        alert("KubeflowliteTasksStuckQueued", "10m"),  # not for 15 minutes yet
        alert(
            "KubeflowliteTasksStuckQueued",
            "20m",
            fired(
                {"namespace": NS, "dag": "stuck", "severity": "warning"},
                {
                    "summary": f"DAG stuck (namespace {NS}): 2 task(s) queued and none started for 15m",
                    "description": f"Task instances of DAG stuck in namespace {NS} are waiting and no try of this "
                    "DAG has started for 15m (unschedulable Pods, quota, a full node?).",
                    "command": f"kubeflowlite runs stuck -n {NS}; kubectl get pods -n {NS} -l kubeflowlite.io/dag=stuck",
                },
            ),
        ),
    ],
}

OPERATOR_DOWN = {
    "interval": "1m",
    "input_series": [{"series": f'up{{job="{JOB}",instance="10.0.0.1:9090"}}', "values": "1 1 1 0x10"}],
    "alert_rule_test": [
        alert("KubeflowliteOperatorDown", "4m"),
        alert(
            "KubeflowliteOperatorDown",
            "10m",
            fired(
                {"namespace": "kfl", "severity": "critical"},
                {
                    "summary": "The kubeflowlite operator (namespace kfl) is down",
                    "description": f"No successful scrape of job {JOB} for 5m: DAGs are not scheduled and runs "
                    "do not progress.",
                    "command": "kubectl get pods -n kfl -l app.kubernetes.io/component=operator; "
                    "kubectl logs -n kfl deploy/kfl-kubeflowlite",
                },
            ),
        ),
    ],
}

RECONCILE_ERRORS = {
    "interval": "1m",
    "input_series": [
        {"series": "kubeflowlite_reconcile_errors_total{kind='run'}", "values": "0+1x30"},
        {"series": "kubeflowlite_reconcile_errors_total{kind='dag'}", "values": "0 1 1x30"},
    ],
    "alert_rule_test": [
        alert(
            "KubeflowliteReconcileErrors",
            "20m",
            fired(
                {"kind": "run", "namespace": "kfl", "severity": "warning"},
                {
                    "summary": "The kubeflowlite operator keeps failing to reconcile run objects",
                    "description": "15 reconciles of run objects failed in the last 15m, for 15m on end "
                    "(they are retried with backoff).",
                    "command": 'kubectl logs -n kfl deploy/kfl-kubeflowlite | grep "reconcile of"',
                },
            ),
        ),
    ],
}

CASES = [RUN_FAILED, TASK_FAILED, FAILURE_RATIO, STALE, STUCK, OPERATOR_DOWN, RECONCILE_ERRORS]


@pytest.fixture(scope="module")
def rules(helm: str) -> dict[str, Any]:
    return chart_rules(helm)


def test_every_alert_of_the_chart_has_a_case_where_it_fires(rules: dict[str, Any]) -> None:
    tested = {
        test["alertname"]
        for case in CASES
        for test in case["alert_rule_test"]  # type: ignore[attr-defined]
        if test["exp_alerts"]
    }
    assert set(alert_names(rules)) == tested


def test_promtool_unit_tests_pass_on_the_rendered_rules(rules: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert promtool_test(rules, CASES, tmp_path, "1m") == ""


def promtool_test(rules: dict[str, Any], cases: list[dict[str, Any]], folder: Path, interval: str) -> str:
    """Run `promtool test rules`; its output, empty when every case passed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(yaml.safe_dump(rules))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": interval, "tests": cases}
    (folder / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yaml"], capture_output=True, text=True, cwd=folder, timeout=120
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr


def test_the_first_failure_of_a_dag_fires_even_when_its_series_is_born_at_one(
    rules: dict[str, Any], tmp_path: Path
) -> None:
    """The case increase() alone misses: the operator was never scraped with the counter at 0."""
    born_at_one = {
        "interval": "15s",
        "input_series": [runs_failed("first", "1x10")],
        "alert_rule_test": [
            alert(
                "KubeflowliteDAGRunFailed",
                "15s",
                fired(
                    {"namespace": NS, "dag": "first", "severity": "warning"},
                    {
                        "summary": f"DAG first (namespace {NS}): a run failed",
                        "run": "",
                        "logical_date": "",
                        "description": f"1 run(s) of DAG first in namespace {NS} failed in the last 15m.",
                        "command": f"kubeflowlite runs first -n {NS}",
                    },
                ),
            )
        ],
    }
    assert promtool_test(rules, [born_at_one], tmp_path / "chart", "15s") == ""
    # the same case against the rule without its born-at-1 half: silent, which is why that half exists
    increase_only = yaml.safe_load(yaml.safe_dump(rules))
    for rule in increase_only["groups"][0]["rules"]:
        if rule.get("alert") == "KubeflowliteDAGRunFailed":
            rule["expr"] = rule["expr"].split("\nor\n")[0]
    assert "got:[]" in promtool_test(increase_only, [born_at_one], tmp_path / "increase-only", "15s").replace(
        " ", ""
    ).replace("\n", "")
