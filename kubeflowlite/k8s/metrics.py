"""The operator's Prometheus metrics: outcomes that name their DAG and task, levels, operator health.

Served on `--metrics-port` (the Helm chart's metrics Service scrapes it). Every
label is bounded: namespace, DAG, task and state, never a run id or a try number.
Histograms are per DAG, not per task: a histogram series is ~20 samples, and a DAG
may have 10,000 tasks (with per-task duration and start delay histograms, one such
DAG made a scrape of 620,000 lines, 68 MiB of text, 5.5 s and 340 MiB of the
operator's memory to produce). Counters keep the task: the alerts name it.

Outcomes (counters and histograms) are recorded by the run controller from the
status transition it has just written (`outcomes.Transition`): the status is the
record of what happened, the controller its only writer, so each final state is
counted exactly once per operator process: a run already finished when the
operator starts is not counted again, a task that finished while it was down is
counted when the restarted operator writes that state.

The first failure of a DAG must be alertable: `increase()` sees nothing in a
counter series born at 1. So the outcome series (counters and histograms) of every
valid DAG and of each of its tasks are created at 0 as soon as the operator sees
the DAG (`LevelPublisher.publish`), before any run of it can finish; the alert
rules cover a series born at 1 as well (helm/kubeflowlite/files/alert-rules.yaml).

Levels (gauges) are recomputed from the watched objects every few seconds
(`outcomes.dag_levels`): running and queued task instances per DAG, whether the
DAG is ready and paused, its schedule interval and last success.

The API request counter is fed by kube.Kube's request hook, so "API writes per
task instance" can be read straight from the operator:
`sum(kubeflowlite_api_requests_total{verb=~"create|patch|delete"}) / sum(kubeflowlite_task_instances_finished_total)`.
"""

from __future__ import annotations

import contextlib
import math
import platform
import threading
import time
from collections.abc import Iterable, Sequence

import prometheus_client
import prometheus_client.metrics
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from kubeflowlite.k8s import outcomes

REGISTRY = CollectorRegistry(auto_describe=True)
"""Our own registry: importing the module twice in one process (tests) never re-registers."""

# No `_created` series beside every counter and histogram: in the text exposition Prometheus stores each
# as one more series, no alert or panel reads them, and they doubled the exposition of a DAG's per-task
# counters (a 10,000-task DAG: 40,000 lines to 20,000; its scrape's peak memory +15 MiB to +10 MiB).
prometheus_client.disable_created_metrics()

_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_DELAY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _Series:
    """One labelled series of a `CompactFamily`: what `.labels(...)` gives (made per call, never kept)."""

    __slots__ = ("_family", "_values")

    def __init__(self, family: CompactFamily, values: list[float]) -> None:
        self._family = family
        self._values = values

    def inc(self, amount: float = 1.0) -> None:
        with self._family._lock:
            self._values[0] += amount

    def observe(self, amount: float) -> None:
        values, bounds = self._values, self._family.bounds
        with self._family._lock:
            for i, bound in enumerate(bounds):
                if amount <= bound:
                    values[i] += 1
                    break
            values[-2] += amount


class CompactFamily(Collector):
    """A labelled counter or histogram whose series are one list of floats each.

    prometheus_client keeps an object per series, with a lock and an object per bucket:
    about 14 KiB per task of a DAG for the per-task families, which are born for every
    task of every DAG (140 MiB for a DAG of 10,000 tasks). Here a series is a list
    (a counter: value, created; a histogram: a count per bucket, sum, created) under one
    lock per family; the exposition is the same as prometheus_client's (`_total`,
    `_bucket` with cumulative counts, `_count`, `_sum`, `_created`).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float] | None = None,
        registry: CollectorRegistry,
    ) -> None:
        self._name = name.removesuffix("_total") if buckets is None else name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds: tuple[float, ...] = () if buckets is None else (*buckets, math.inf)
        self._series: dict[tuple[str, ...], list[float]] = {}
        self._born: dict[tuple[str, ...], tuple[Sequence[str], Sequence[str], float]] = {}
        """Series at 0 not held (born_at_zero): first labels -> (values of the next, of the last, created)."""
        self._lock = threading.Lock()
        registry.register(self)

    def labels(self, *values: str) -> _Series:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self._name}: expected labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        found = self._series.get(key)
        if found is None:
            born = self._born.get(key[:-2])
            created = born[2] if born is not None else time.time()
            with self._lock:
                found = self._series.setdefault(key, [0.0] * (len(self.bounds) + 1) + [created])
        return _Series(self, found)

    def born_at_zero(self, first: Sequence[str], each: Sequence[str], last: Sequence[str]) -> None:
        """Expose a series at 0 for `(*first, one of each, one of last)` until it is observed, without
        holding one (a DAG of 10,000 tasks: 20,000 counter series); replaces what was born for `first`."""
        key = tuple(first)
        if len(key) + 2 != len(self.labelnames):
            raise ValueError(f"{self._name}: born_at_zero takes all labels but the last two")
        with self._lock:
            known = self._born.get(key)
            if known is None or (known[0], known[1]) != (each, last):
                self._born[key] = (each, last, known[2] if known is not None else time.time())

    def remove(self, *values: str) -> None:
        with self._lock:
            self._series.pop(tuple(str(v) for v in values), None)

    def _metric(self) -> Metric:
        return Metric(self._name, self.documentation, "histogram" if self.bounds else "counter")

    def describe(self) -> Iterable[Metric]:
        return [self._metric()]

    def collect(self) -> Iterable[Metric]:
        metric = self._metric()
        created = _created_series()
        with self._lock:
            series = [(key, list(values)) for key, values in self._series.items()]
            zeros = [
                (key, [0.0] * (len(self.bounds) + 1) + [born_at])
                for first, (each, last, born_at) in self._born.items()
                for one in each
                for other in last
                if (key := (*first, one, other)) not in self._series
            ]
        for key, values in series + zeros:
            labels = dict(zip(self.labelnames, key, strict=True))
            if not self.bounds:
                metric.add_sample(f"{self._name}_total", labels, values[0])
            else:
                total = 0.0
                for bound, count in zip(self.bounds, values, strict=False):
                    total += count
                    metric.add_sample(f"{self._name}_bucket", {**labels, "le": floatToGoString(bound)}, total)
                metric.add_sample(f"{self._name}_count", labels, total)
                metric.add_sample(f"{self._name}_sum", labels, values[-2])
            if created:
                metric.add_sample(f"{self._name}_created", labels, values[-1])
        return [metric]


def _created_series() -> bool:
    """Whether prometheus_client exposes `_created` series (PROMETHEUS_DISABLE_CREATED_SERIES: not)."""
    return bool(getattr(prometheus_client.metrics, "_use_created", True))


# -- outcomes ------------------------------------------------------------------------------------

TASKS_FINISHED = CompactFamily(
    "kubeflowlite_task_instances_finished_total",
    "Task instances that reached a final state (success, failed after its retries, skipped, upstream_failed).",
    ["namespace", "dag", "task", "state"],
    registry=REGISTRY,
)
TASK_DURATION = CompactFamily(
    "kubeflowlite_task_instance_duration_seconds",
    "Duration of the DAG's finished task instances (last try start to end).",
    ["namespace", "dag", "state"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
TASK_START_DELAY = CompactFamily(
    "kubeflowlite_task_start_delay_seconds",
    "From a try of one of the DAG's tasks being ready (its Pod created) to it running (its container started).",
    ["namespace", "dag"],
    buckets=_DELAY_BUCKETS,
    registry=REGISTRY,
)
RUNS_FINISHED = Counter(
    "kubeflowlite_dagruns_finished_total",
    "DAG runs that finished (success or failed).",
    ["namespace", "dag", "state"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "kubeflowlite_dagrun_duration_seconds",
    "Duration of finished DAG runs (start to end).",
    ["namespace", "dag", "state"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
RUN_START_DELAY = Histogram(
    "kubeflowlite_dagrun_start_delay_seconds",
    "From a run being due (a scheduled run: the end of its data interval; others: their creation) to its start.",
    ["namespace", "dag"],
    buckets=_DELAY_BUCKETS,
    registry=REGISTRY,
)

RUN_LAST_FAILURE = Gauge(
    "kubeflowlite_dagrun_last_failure_timestamp_seconds",
    "When the DAG's latest failed run failed (Unix time), labelled with that run and its logical date. "
    "One series per DAG: a newer failure replaces it (the alerts' annotations read the run from here).",
    ["namespace", "dag", "run", "logical_date"],
    registry=REGISTRY,
)
TASK_LAST_FAILURE = Gauge(
    "kubeflowlite_task_last_failure_timestamp_seconds",
    "When the task's latest failure (after its retries) happened, labelled with its run and logical date. "
    "One series per task: a newer failure replaces it.",
    ["namespace", "dag", "task", "run", "logical_date"],
    registry=REGISTRY,
)

# -- levels --------------------------------------------------------------------------------------

DAG_TASKS = Gauge(
    "kubeflowlite_dag_task_instances",
    "Task instances of the DAG's unfinished runs in an in-flight state (scheduled, queued, running, up_for_retry).",
    ["namespace", "dag", "state"],
    registry=REGISTRY,
)
DAG_RUNS = Gauge(
    "kubeflowlite_dag_runs",
    "Unfinished runs of the DAG, by state (queued, running).",
    ["namespace", "dag", "state"],
    registry=REGISTRY,
)
DAG_LAST_SUCCESS = Gauge(
    "kubeflowlite_dag_last_success_timestamp_seconds",
    "When the DAG's most recent successful run ended (Unix time); absent until one has.",
    ["namespace", "dag"],
    registry=REGISTRY,
)
DAG_SCHEDULE_INTERVAL = Gauge(
    "kubeflowlite_dag_schedule_interval_seconds",
    "Length of the DAG's current schedule interval; absent for manual and @once DAGs.",
    ["namespace", "dag"],
    registry=REGISTRY,
)
DAG_PAUSED = Gauge(
    "kubeflowlite_dag_paused", "1 if the DAG is paused.", ["namespace", "dag"], registry=REGISTRY
)
DAG_READY = Gauge(
    "kubeflowlite_dag_ready",
    "1 if the DAG is valid (condition Ready=True).",
    ["namespace", "dag"],
    registry=REGISTRY,
)
BUILD_INFO = Gauge(
    "kubeflowlite_build_info",
    "Always 1; the operator's version.",
    ["version", "python_version"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "kubeflowlite_leader",
    "1 while this operator process holds the leader Lease (or runs without leader election).",
    registry=REGISTRY,
)

# -- operator health -----------------------------------------------------------------------------

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

for _kind in ("dag", "run"):
    RECONCILE_ERRORS.labels(_kind)  # born at 0, so the first error is an increase


def record_request(verb: str, resource: str, code: int) -> None:
    """kube.Kube's request hook."""
    API_REQUESTS.labels(verb, resource, str(code)).inc()


_last_failures: dict[tuple[int, tuple[str, ...]], tuple[str, ...]] = {}
"""(gauge, (namespace, dag[, task])) -> the label values of its current last-failure series."""


def _replace_last_failure(gauge: Gauge, key: tuple[str, ...], labels: tuple[str, ...], when: float) -> None:
    previous = _last_failures.get((id(gauge), key))
    if previous is not None and previous != labels:
        _remove(gauge, *previous)
    _last_failures[(id(gauge), key)] = labels
    gauge.labels(*labels).set(when)


def record_transition(
    namespace: str,
    dag: str,
    transition: outcomes.Transition,
    *,
    run: str = "",
    logical_date: str = "",
    now: float | None = None,
) -> None:
    """Count what one status write made happen (the run controller calls this after the write)."""
    when = time.time() if now is None else now
    for task in transition.tasks_finished:
        TASKS_FINISHED.labels(namespace, dag, task.task, task.state).inc()
        if task.state == "failed":
            key = (namespace, dag, task.task)
            _replace_last_failure(TASK_LAST_FAILURE, key, (*key, run, logical_date), when)
        if task.seconds is not None:
            TASK_DURATION.labels(namespace, dag, task.state).observe(task.seconds)
    for _, delay in transition.tasks_started:
        TASK_START_DELAY.labels(namespace, dag).observe(delay)
    if transition.run_start_delay is not None:
        RUN_START_DELAY.labels(namespace, dag).observe(transition.run_start_delay)
    if transition.run_finished is not None:
        state, seconds = transition.run_finished
        RUNS_FINISHED.labels(namespace, dag, state).inc()
        if state == "failed":
            _replace_last_failure(
                RUN_LAST_FAILURE, (namespace, dag), (namespace, dag, run, logical_date), when
            )
        if seconds is not None:
            RUN_DURATION.labels(namespace, dag, state).observe(seconds)


class LevelPublisher:
    """Sets the per-DAG gauges from `outcomes.DAGLevels`, removing the series of DAGs that are gone."""

    _GAUGES = (DAG_LAST_SUCCESS, DAG_SCHEDULE_INTERVAL, DAG_PAUSED, DAG_READY)

    def __init__(self) -> None:
        self._published: set[tuple[str, str]] = set()
        self._last_success: dict[tuple[str, str], float] = {}
        self._born: set[tuple[str, str, tuple[str, ...]]] = set()

    def publish(self, levels: Iterable[outcomes.DAGLevels]) -> None:
        seen: set[tuple[str, str]] = set()
        for level in levels:
            key = (level.namespace, level.dag)
            seen.add(key)
            ns, dag = key
            if (ns, dag, level.tasks) not in self._born:  # once per DAG version, not every refresh
                _born_at_zero(level)
                self._born.add((ns, dag, level.tasks))
            for state, count in level.task_states.items():
                DAG_TASKS.labels(ns, dag, state).set(count)
            for state, count in level.run_states.items():
                DAG_RUNS.labels(ns, dag, state).set(count)
            DAG_PAUSED.labels(ns, dag).set(1 if level.paused else 0)
            DAG_READY.labels(ns, dag).set(1 if level.ready else 0)
            _set_or_remove(DAG_SCHEDULE_INTERVAL, key, level.schedule_interval_seconds)
            last = max(level.last_success or 0.0, self._last_success.get(key, 0.0)) or None
            if last is not None:
                self._last_success[key] = last  # runs deleted by the history limit do not lower it
            _set_or_remove(DAG_LAST_SUCCESS, key, last)
        for key in self._published - seen:
            for gauge in self._GAUGES:
                _remove(gauge, *key)
            for state in (*outcomes.IN_FLIGHT_STATES, *outcomes.ACTIVE_RUN_STATES):
                _remove(DAG_TASKS, *key, state)
                _remove(DAG_RUNS, *key, state)
            self._last_success.pop(key, None)
        self._born = {born for born in self._born if born[:2] in seen}
        self._published = seen


def _born_at_zero(level: outcomes.DAGLevels) -> None:
    """Create the DAG's outcome series (counters and histograms) at 0 before anything is observed.

    Prometheus's increase() and rate() need a sample before the first event: a series born
    with its first failure (or duration) would show no increase at all.
    """
    ns, dag = level.namespace, level.dag
    RUN_START_DELAY.labels(ns, dag)
    TASK_START_DELAY.labels(ns, dag)
    for state in outcomes.RUN_FINAL_STATES:
        RUNS_FINISHED.labels(ns, dag, state)
        RUN_DURATION.labels(ns, dag, state)
    for state in outcomes.COUNTED_FROM_ZERO:
        TASK_DURATION.labels(ns, dag, state)
    TASKS_FINISHED.born_at_zero((ns, dag), level.tasks, outcomes.COUNTED_FROM_ZERO)


def _set_or_remove(gauge: Gauge, key: tuple[str, str], value: float | None) -> None:
    if value is None:
        _remove(gauge, *key)
    else:
        gauge.labels(*key).set(value)


def _remove(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


def serve(port: int, *, address: str = "0.0.0.0", version: str = "") -> None:
    """Serve /metrics on `port` from a daemon thread (0: do not serve)."""
    BUILD_INFO.labels(version, platform.python_version()).set(1)
    if port:
        start_http_server(port, addr=address, registry=REGISTRY)
