"""The kubeflowlite Grafana dashboard, built with Grafana's typed builders (grafana-foundation-sdk).

The chart ships the JSON this module generates (helm/kubeflowlite/dashboards/kubeflowlite.json,
in a ConfigMap labelled for Grafana's dashboard sidecar); a test fails when the committed file
and the generated one differ, and the operations end-to-end test runs every panel's query
against a real Prometheus after a DAG run. Regenerate with `make dashboard`
(`python -m kubeflowlite.ops.dashboard --output helm/kubeflowlite/dashboards/kubeflowlite.json`).

Only the metric names of kubeflowlite.k8s.metrics appear here. grafana-foundation-sdk is a
development dependency (the `test` extra): the operator never imports this module.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

UID = "kubeflowlite-overview"
DEFAULT_OUTPUT = (
    Path(__file__).resolve().parents[2] / "helm" / "kubeflowlite" / "dashboards" / "kubeflowlite.json"
)

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SCOPE = 'namespace=~"$namespace", dag=~"$dag"'
"""The label filter of every per-DAG query (the dashboard's two variables)."""


def _query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)


def _timeseries(title: str, description: str, unit: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
    panel = panel.height(8).span(12)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def _quantiles(metric: str, by: str, scope: str, legend: str) -> list[prometheus.Dataquery]:
    return [
        _query(
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{scope}}}[$__rate_interval])))",
            f"p{round(q * 100)} {legend}",
            ref,
        )
        for q, ref in ((0.5, "A"), (0.95, "B"))
    ]


def _variables() -> list[dashboard.QueryVariable | dashboard.DatasourceVariable]:
    source = dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
    namespace = (
        dashboard.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query("label_values(kubeflowlite_dag_ready, namespace)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    dag = (
        dashboard.QueryVariable("dag")
        .label("DAG")
        .datasource(DATASOURCE)
        .query('label_values(kubeflowlite_dag_ready{namespace=~"$namespace"}, dag)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    return [source, namespace, dag]


def build() -> dashboard.Dashboard:
    """The dashboard: runs, tasks (failures, durations, delays, in flight), then operator health."""
    board = (
        dashboard.Dashboard("kubeflowlite")
        .uid(UID)
        .description("DAG runs and task instances of kubeflowlite, and the health of its operator.")
        .tags(["kubeflowlite"])
        .time("now-24h", "now")
        .refresh("1m")
        .timezone("browser")
    )
    for variable in _variables():
        board = board.with_variable(variable)
    sections: list[dashboard.Row | stat.Panel | table.Panel | timeseries.Panel] = [
        dashboard.Row("Runs"),
        stat.Panel()
        .title("Runs finished in the time range, by state")
        .description("DAG runs that reached success or failed in the selected time range.")
        .datasource(DATASOURCE)
        .height(6)
        .span(8)
        .with_target(
            _query(
                f"sum by (state) (increase(kubeflowlite_dagruns_finished_total{{{SCOPE}}}[$__range]))",
                "{{state}}",
            )
        ),
        stat.Panel()
        .title("Runs in progress, by state")
        .description("Unfinished DAG runs: queued (waiting to start) and running.")
        .datasource(DATASOURCE)
        .height(6)
        .span(8)
        .with_target(_query(f"sum by (state) (kubeflowlite_dag_runs{{{SCOPE}}})", "{{state}}")),
        stat.Panel()
        .title("Time since the last successful run")
        .description("Per DAG; compare with its schedule interval (the DAGStale alert fires at twice it).")
        .datasource(DATASOURCE)
        .unit("s")
        .height(6)
        .span(8)
        .with_target(
            _query(f"time() - kubeflowlite_dag_last_success_timestamp_seconds{{{SCOPE}}}", "{{dag}}")
        ),
        _timeseries(
            "Runs finished, by DAG and state",
            "Finished DAG runs per second.",
            "ops",
            _query(
                f"sum by (dag, state) (rate(kubeflowlite_dagruns_finished_total{{{SCOPE}}}[$__rate_interval]))",
                "{{dag}} {{state}}",
            ),
        ),
        _timeseries(
            "Run duration p50 / p95, by DAG",
            "How long finished runs took.",
            "s",
            *_quantiles("kubeflowlite_dagrun_duration_seconds", "dag", SCOPE, "{{dag}}"),
        ),
        dashboard.Row("Tasks"),
        table.Panel()
        .title("Failed tasks in the time range, by DAG and task")
        .description("Task instances that failed after their retries. See them with `kubeflowlite runs DAG`.")
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
        .with_target(
            _query(
                "sum by (namespace, dag, task) "
                f'(increase(kubeflowlite_task_instances_finished_total{{state="failed", {SCOPE}}}[$__range])) > 0',
                "{{dag}} {{task}}",
            ).instant()
        ),
        _timeseries(
            "Task duration p50 / p95, by DAG",
            "How long the DAG's task instances take (per DAG: a DAG may have thousands of tasks; "
            "a run's Gantt chart in the UI shows each task's).",
            "s",
            *_quantiles("kubeflowlite_task_instance_duration_seconds", "dag", SCOPE, "{{dag}}"),
        ),
        _timeseries(
            "Task start delay p50 / p95",
            "From a try being ready (its Pod created) to it running: scheduling and image pulls.",
            "s",
            *_quantiles("kubeflowlite_task_start_delay_seconds", "dag", SCOPE, "{{dag}}"),
        ),
        _timeseries(
            "Run start delay p50 / p95",
            "From a run being due to it starting: scheduler lag, maxActiveRuns, paused DAGs.",
            "s",
            *_quantiles("kubeflowlite_dagrun_start_delay_seconds", "dag", SCOPE, "{{dag}}"),
        ),
        _timeseries(
            "Running and queued tasks",
            "Task instances in flight, by DAG and state.",
            "short",
            _query(
                f'sum by (dag, state) (kubeflowlite_dag_task_instances{{state=~"running|queued|scheduled|up_for_retry", {SCOPE}}})',
                "{{dag}} {{state}}",
            ),
        ),
        dashboard.Row("Operator"),
        _timeseries(
            "Reconcile latency p50 / p95",
            "How long one reconcile of a DAG or a run takes.",
            "s",
            *_quantiles("kubeflowlite_reconcile_duration_seconds", "kind", "", "{{kind}}"),
        ),
        _timeseries(
            "Reconcile errors",
            "Reconciles that raised and are retried with backoff (the ReconcileErrors alert).",
            "ops",
            _query("sum by (kind) (rate(kubeflowlite_reconcile_errors_total[$__rate_interval]))", "{{kind}}"),
        ),
        _timeseries(
            "API requests",
            "Requests the operator sends to the Kubernetes API, by verb, resource and status code.",
            "reqps",
            _query(
                "sum by (verb, resource, code) (rate(kubeflowlite_api_requests_total[$__rate_interval]))",
                "{{verb}} {{resource}} {{code}}",
            ),
        ),
        _timeseries(
            "Work queue depth and leader",
            "Keys waiting for a reconcile worker; replicas holding the leader Lease (should be 1).",
            "short",
            _query("sum(kubeflowlite_workqueue_depth)", "queue depth", "A"),
            _query("sum(kubeflowlite_leader)", "leaders", "B"),
        ),
    ]
    for number, section in enumerate(sections, start=1):
        if isinstance(section, dashboard.Row):
            board = board.with_row(section.id(number))
        else:
            board = board.with_panel(section.id(number))
    return board


def render() -> str:
    """The dashboard as the JSON Grafana loads (stable: sorted keys, two-space indent)."""
    model = build().build()
    return json.dumps(json.loads(json.dumps(model, cls=JSONEncoder)), indent=2, sort_keys=True) + "\n"


def queries(document: dict[str, object]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target in a dashboard JSON document."""
    found = []
    for panel in document.get("panels") or []:  # type: ignore[attr-defined]
        for target in panel.get("targets") or []:
            found.append((str(panel.get("title")), str(target["expr"])))
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render())


if __name__ == "__main__":
    main()
