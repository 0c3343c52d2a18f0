"""What a status write made happen (counted once), the per-DAG gauges, and their Prometheus series."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import DAGRunStatus, RunState, TaskInstanceStatus, TaskState
from kubeflowlite.api.times import parse_time
from kubeflowlite.k8s import metrics, outcomes

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
POD_A1 = "run-a-1"


def instance(state: TaskState, try_number: int = 1, **fields: str) -> TaskInstanceStatus:
    return TaskInstanceStatus(state=state, try_number=try_number, **fields)


def test_a_task_that_finishes_is_reported_once_per_try() -> None:
    old = DAGRunStatus(
        state=RunState.running,
        tasks={"a": instance(TaskState.running, start_time="2024-05-01T11:00:00Z", pod_name=POD_A1)},
    )
    done = instance(
        TaskState.success, start_time="2024-05-01T11:00:00Z", end_time="2024-05-01T11:00:30Z", pod_name=POD_A1
    )
    new = DAGRunStatus(state=RunState.running, tasks={"a": done, "b": instance(TaskState.skipped)})
    moved = outcomes.transition(old, new, due=None, pods_created={})
    assert moved.tasks_finished == (
        outcomes.TaskFinished("a", "success", 30.0),
        outcomes.TaskFinished("b", "skipped", None),
    )
    assert moved.tasks_started == ()  # a's try had started before this write
    assert outcomes.transition(new, new, due=None, pods_created={}).empty


def test_a_retried_task_that_fails_again_is_a_new_final_state_only_after_its_last_try() -> None:
    first = DAGRunStatus(state=RunState.running, tasks={"a": instance(TaskState.up_for_retry, 1)})
    second = DAGRunStatus(state=RunState.running, tasks={"a": instance(TaskState.failed, 2)})
    assert outcomes.transition(DAGRunStatus(), first, due=None, pods_created={}).tasks_finished == ()
    assert [
        t.state for t in outcomes.transition(first, second, due=None, pods_created={}).tasks_finished
    ] == ["failed"]


def test_a_try_start_is_measured_from_its_pod_creation() -> None:
    created = datetime(2024, 5, 1, 11, 0, tzinfo=UTC)
    old = DAGRunStatus(state=RunState.running, tasks={"a": instance(TaskState.queued, pod_name=POD_A1)})
    new = DAGRunStatus(
        state=RunState.running,
        tasks={"a": instance(TaskState.running, start_time="2024-05-01T11:00:04Z", pod_name=POD_A1)},
    )
    assert outcomes.transition(old, new, due=None, pods_created={POD_A1: created}).tasks_started == (
        ("a", 4.0),
    )
    # the same try seen again (e.g. after an operator restart found it running) is not a new start
    assert outcomes.transition(new, new, due=None, pods_created={POD_A1: created}).tasks_started == ()
    # a task without a Pod (sensor, skipped) has no start delay
    assert outcomes.transition(old, new, due=None, pods_created={}).tasks_started == ()


def test_a_run_start_and_end_are_reported_once() -> None:
    due = datetime(2024, 5, 1, 11, 0, tzinfo=UTC)
    queued = DAGRunStatus()
    running = DAGRunStatus(state=RunState.running, start_time="2024-05-01T11:00:02Z")
    failed = DAGRunStatus(
        state=RunState.failed, start_time="2024-05-01T11:00:02Z", end_time="2024-05-01T11:01:02Z"
    )
    assert outcomes.transition(queued, running, due=due, pods_created={}).run_start_delay == 2.0
    assert outcomes.transition(running, failed, due=due, pods_created={}).run_finished == ("failed", 60.0)
    assert outcomes.transition(failed, failed, due=due, pods_created={}).empty
    # cleared and finished again: a new final state
    again = failed.model_copy(
        update={"end_time": parse_time("2024-05-01T12:00:00Z"), "state": RunState.success}
    )
    assert outcomes.transition(failed, again, due=due, pods_created={}).run_finished == ("success", 3598.0)


_STATES = st.sampled_from(list(TaskState))


@given(st.lists(st.tuples(_STATES, st.integers(1, 3)), min_size=1, max_size=12))
def test_counting_every_write_of_a_history_counts_each_final_state_once(
    history: list[tuple[TaskState, int]],
) -> None:
    """However a task's status moves (and repeats, as re-reconciles do), finals are counted once each."""
    statuses = [DAGRunStatus(tasks={"a": instance(state, try_number)}) for state, try_number in history]
    counted = 0
    previous = DAGRunStatus()
    for status in [*statuses, *statuses[-1:]]:  # the last write repeated: a reconcile with nothing new
        counted += len(outcomes.transition(previous, status, due=None, pods_created={}).tasks_finished)
        previous = status
    expected = 0
    last: tuple[TaskState, int] | None = None
    for state, try_number in history:
        if state.finished and (state, try_number) != last:
            expected += 1
        last = (state, try_number)
    assert counted == expected


def spec(schedule: str | None = None) -> DAGSpec:
    return DAGSpec.model_validate(
        {"schedule": schedule, "tasks": [{"name": "a", "bash": "true"}, {"name": "b", "bash": "true"}]}
    )


def test_dag_levels_count_in_flight_tasks_of_unfinished_runs_and_the_last_success() -> None:
    runs = [
        {"state": "running", "tasks": {"a": {"state": "running"}, "b": {"state": "queued"}}},
        {"state": "running", "tasks": {"a": {"state": "up_for_retry"}, "b": {"state": "none"}}},
        {"state": "queued"},
        {"state": "success", "endTime": "2024-05-01T10:00:00Z", "tasks": {"a": {"state": "running"}}},
        {"state": "success", "endTime": "2024-05-01T11:00:00Z"},
        {"state": "failed", "endTime": "2024-05-01T11:30:00Z"},
    ]
    levels = outcomes.dag_levels(
        namespace="ns", name="etl", paused=True, spec=spec("@daily"), runs=runs, now=NOW
    )
    assert levels.task_states == {"scheduled": 0, "queued": 1, "running": 1, "up_for_retry": 1}
    assert levels.run_states == {"queued": 1, "running": 2}
    assert levels.last_success == datetime(2024, 5, 1, 11, 0, tzinfo=UTC).timestamp()
    assert (levels.ready, levels.paused, levels.tasks) == (True, True, ("a", "b"))
    assert levels.schedule_interval_seconds == 86400.0


def test_schedule_interval_follows_the_cron_expression_and_is_absent_for_manual_dags() -> None:
    assert outcomes.schedule_interval_seconds(spec("*/5 * * * *"), NOW) == 300.0
    assert outcomes.schedule_interval_seconds(spec(None), NOW) is None
    assert outcomes.schedule_interval_seconds(spec("@once"), NOW) is None
    invalid = outcomes.dag_levels(namespace="ns", name="bad", paused=False, spec=None, runs=[], now=NOW)
    assert (invalid.ready, invalid.tasks, invalid.schedule_interval_seconds) == (False, (), None)


def sample(metric: Counter | Gauge | metrics.CompactFamily, **labels: str) -> float | None:
    counter = isinstance(metric, Counter) or (isinstance(metric, metrics.CompactFamily) and not metric.bounds)
    suffix = "_total" if counter else ""
    return metrics.REGISTRY.get_sample_value(metric._name + suffix, labels)


def test_publishing_levels_creates_outcome_counters_at_zero_and_removes_gone_dags() -> None:
    publisher = metrics.LevelPublisher()
    levels = outcomes.dag_levels(
        namespace="unit-ns",
        name="etl",
        paused=False,
        spec=spec("@hourly"),
        runs=[{"state": "success", "endTime": "2024-05-01T11:00:00Z"}],
        now=NOW,
    )
    publisher.publish([levels])
    assert sample(metrics.RUNS_FINISHED, namespace="unit-ns", dag="etl", state="failed") == 0
    assert sample(metrics.TASKS_FINISHED, namespace="unit-ns", dag="etl", task="b", state="failed") == 0
    for histogram, labels in (
        ("kubeflowlite_task_instance_duration_seconds", {"state": "success"}),
        ("kubeflowlite_task_start_delay_seconds", {}),
        ("kubeflowlite_dagrun_duration_seconds", {"state": "failed"}),
        ("kubeflowlite_dagrun_start_delay_seconds", {}),
    ):  # rate() needs a 0 sample before the first observation, like increase() does
        count = metrics.REGISTRY.get_sample_value(
            f"{histogram}_count", {"namespace": "unit-ns", "dag": "etl", **labels}
        )
        assert count == 0, histogram
    assert sample(metrics.DAG_SCHEDULE_INTERVAL, namespace="unit-ns", dag="etl") == 3600
    assert sample(metrics.DAG_READY, namespace="unit-ns", dag="etl") == 1
    assert sample(metrics.DAG_TASKS, namespace="unit-ns", dag="etl", state="running") == 0
    # the run history limit deleted the successful run: the last success stays
    publisher.publish(
        [outcomes.dag_levels(namespace="unit-ns", name="etl", paused=False, spec=spec(), runs=[], now=NOW)]
    )
    assert sample(metrics.DAG_LAST_SUCCESS, namespace="unit-ns", dag="etl") == levels.last_success
    assert sample(metrics.DAG_SCHEDULE_INTERVAL, namespace="unit-ns", dag="etl") is None  # now manual
    publisher.publish([])
    assert sample(metrics.DAG_READY, namespace="unit-ns", dag="etl") is None
    assert sample(metrics.DAG_LAST_SUCCESS, namespace="unit-ns", dag="etl") is None


def test_recording_a_transition_counts_with_namespace_dag_and_task() -> None:
    moved = outcomes.Transition(
        tasks_finished=(outcomes.TaskFinished("extract", "failed", 3.0),),
        tasks_started=(("extract", 1.5),),
        run_start_delay=0.5,
        run_finished=("failed", 10.0),
    )
    before = sample(metrics.TASKS_FINISHED, namespace="rec", dag="etl", task="extract", state="failed") or 0
    metrics.record_transition(
        "rec", "etl", moved, run="etl-1", logical_date="2024-05-01T00:00:00Z", now=100.0
    )
    assert (
        sample(metrics.TASKS_FINISHED, namespace="rec", dag="etl", task="extract", state="failed")
        == before + 1
    )
    assert sample(metrics.RUNS_FINISHED, namespace="rec", dag="etl", state="failed") == 1
    registry: CollectorRegistry = metrics.REGISTRY
    assert (
        registry.get_sample_value(
            "kubeflowlite_task_start_delay_seconds_count", {"namespace": "rec", "dag": "etl"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "kubeflowlite_dagrun_duration_seconds_sum", {"namespace": "rec", "dag": "etl", "state": "failed"}
        )
        == 10.0
    )


def test_only_the_latest_failure_of_a_dag_and_task_keeps_a_series() -> None:
    failure = outcomes.Transition(
        tasks_finished=(outcomes.TaskFinished("t", "failed", None),), run_finished=("failed", None)
    )
    metrics.record_transition(
        "last", "etl", failure, run="etl-1", logical_date="2024-05-01T00:00:00Z", now=1.0
    )
    metrics.record_transition(
        "last", "etl", failure, run="etl-2", logical_date="2024-05-02T00:00:00Z", now=2.0
    )
    runs = {"namespace": "last", "dag": "etl"}
    gauge = "kubeflowlite_dagrun_last_failure_timestamp_seconds"
    assert (
        metrics.REGISTRY.get_sample_value(
            gauge, {**runs, "run": "etl-1", "logical_date": "2024-05-01T00:00:00Z"}
        )
        is None
    )
    assert (
        metrics.REGISTRY.get_sample_value(
            gauge, {**runs, "run": "etl-2", "logical_date": "2024-05-02T00:00:00Z"}
        )
        == 2.0
    )
    task = "kubeflowlite_task_last_failure_timestamp_seconds"
    labels = {**runs, "task": "t", "logical_date": "2024-05-02T00:00:00Z"}
    assert metrics.REGISTRY.get_sample_value(task, {**labels, "run": "etl-2"}) == 2.0


def test_histograms_are_per_dag_however_many_tasks_it_has() -> None:
    """A 10,000-task DAG must not make 10,000 histogram series (a scrape of 620,000 lines)."""
    wide = DAGSpec.model_validate({"tasks": [{"name": f"t{i}", "bash": "true"} for i in range(50)]})
    metrics.LevelPublisher().publish(
        [outcomes.dag_levels(namespace="wide", name="fan", paused=False, spec=wide, runs=[], now=NOW)]
    )
    metrics.record_transition(
        "wide",
        "fan",
        outcomes.Transition(
            tasks_finished=tuple(outcomes.TaskFinished(f"t{i}", "success", 1.0) for i in range(50)),
            tasks_started=tuple((f"t{i}", 0.5) for i in range(50)),
        ),
    )
    counts = {
        (family.name, tuple(sorted(s.labels.items())), s.value)
        for family in metrics.REGISTRY.collect()
        for s in family.samples
        if s.name.endswith("_count") and s.labels.get("namespace") == "wide"
    }
    assert counts == {
        (
            "kubeflowlite_task_instance_duration_seconds",
            (("dag", "fan"), ("namespace", "wide"), ("state", "success")),
            50,
        ),
        (
            "kubeflowlite_task_instance_duration_seconds",
            (("dag", "fan"), ("namespace", "wide"), ("state", "failed")),
            0,
        ),
        ("kubeflowlite_task_start_delay_seconds", (("dag", "fan"), ("namespace", "wide")), 50),
        ("kubeflowlite_dagrun_start_delay_seconds", (("dag", "fan"), ("namespace", "wide")), 0),
        (
            "kubeflowlite_dagrun_duration_seconds",
            (("dag", "fan"), ("namespace", "wide"), ("state", "success")),
            0,
        ),
        (
            "kubeflowlite_dagrun_duration_seconds",
            (("dag", "fan"), ("namespace", "wide"), ("state", "failed")),
            0,
        ),
    }
    assert sample(metrics.TASKS_FINISHED, namespace="wide", dag="fan", task="t7", state="success") == 1
    assert not [s.name for f in metrics.REGISTRY.collect() for s in f.samples if s.name.endswith("_created")]


def test_counters_born_at_zero_are_exposed_without_being_held() -> None:
    family = metrics.CompactFamily(
        "unit_born_total", "test", ["namespace", "dag", "task", "state"], registry=CollectorRegistry()
    )
    family.born_at_zero(("ns", "d"), ("a", "b"), ("success", "failed"))
    assert family._series == {}, "20,000 tasks: no series held until one is counted"

    def values() -> dict[tuple[str, str], float]:
        return {
            (s.labels["task"], s.labels["state"]): s.value
            for metric in family.collect()
            for s in metric.samples
            if s.name == "unit_born_total"
        }

    assert values() == {("a", "success"): 0, ("a", "failed"): 0, ("b", "success"): 0, ("b", "failed"): 0}
    family.labels("ns", "d", "a", "failed").inc()
    assert values()[("a", "failed")] == 1 and len(values()) == 4, "counted once, never twice"
    family.born_at_zero(("ns", "d"), ("a", "c"), ("success", "failed"))  # the DAG changed: b is gone
    assert set(values()) == {("a", "success"), ("a", "failed"), ("c", "success"), ("c", "failed")}
