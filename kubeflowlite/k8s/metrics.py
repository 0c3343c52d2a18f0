"""The operator's Prometheus metrics: outcomes, durations, reconcile latency, API requests.

Served on `--metrics-port` (the Helm chart's metrics Service scrapes it). The
API request counter is fed by kube.Kube's request hook, so "API writes per task
instance" can be read straight from the operator:
`sum(kubeflowlite_api_requests_total{verb=~"create|patch|delete"}) / sum(kubeflowlite_task_instances_finished_total)`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)
"""Our own registry: importing the module twice in one process (tests) never re-registers."""

_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

TASKS_FINISHED = Counter(
    "kubeflowlite_task_instances_finished_total",
    "Task instances that reached a final state, by state.",
    ["state"],
    registry=REGISTRY,
)
TASK_DURATION = Histogram(
    "kubeflowlite_task_instance_duration_seconds",
    "Duration of finished task instances (last try start to end), by state.",
    ["state"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
RUNS_FINISHED = Counter(
    "kubeflowlite_dagruns_finished_total", "DAG runs that finished, by state.", ["state"], registry=REGISTRY
)
RUN_DURATION = Histogram(
    "kubeflowlite_dagrun_duration_seconds",
    "Duration of finished DAG runs, by state.",
    ["state"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "kubeflowlite_reconcile_duration_seconds",
    "Time one reconcile took, by object kind (dag, run).",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "kubeflowlite_reconcile_errors_total",
    "Reconciles that raised and were retried with backoff, by object kind.",
    ["kind"],
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "kubeflowlite_api_requests_total",
    "Kubernetes API requests the operator sent, by verb, resource and HTTP status code.",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("kubeflowlite_workqueue_depth", "Keys waiting for a reconcile worker.", registry=REGISTRY)


def record_request(verb: str, resource: str, code: int) -> None:
    """kube.Kube's request hook."""
    API_REQUESTS.labels(verb, resource, str(code)).inc()


def task_finished(state: str, seconds: float | None) -> None:
    TASKS_FINISHED.labels(state).inc()
    if seconds is not None:
        TASK_DURATION.labels(state).observe(max(seconds, 0.0))


def run_finished(state: str, seconds: float | None) -> None:
    RUNS_FINISHED.labels(state).inc()
    if seconds is not None:
        RUN_DURATION.labels(state).observe(max(seconds, 0.0))


def serve(port: int, *, address: str = "0.0.0.0") -> None:
    """Serve /metrics on `port` from a daemon thread (0: do not serve)."""
    if port:
        start_http_server(port, addr=address, registry=REGISTRY)
