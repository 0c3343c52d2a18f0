"""The run controller's pure judgements: Pods to attempts, admission, cleanup, status decoration, patches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import DAGRunStatus, RunState, TaskInstanceStatus, TaskState
from kubeflowlite.core import runstatus
from kubeflowlite.core.engine import AttemptPhase
from kubeflowlite.k8s import names, patches
from kubeflowlite.k8s import run_rules as rules

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RUN = "etl-manual-20240501t000000"


def pod(task: str, try_number: int, phase: str = "Running", **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": names.pod_name(RUN, task, try_number),
            "labels": {names.LABEL_RUN: RUN, names.LABEL_TASK: task, names.LABEL_TRY: str(try_number)},
            "annotations": {names.ANNOTATION_TASK_ID: task},
            "creationTimestamp": "2024-05-01T11:59:00Z",
            **metadata,
        },
        "status": {"phase": phase},
    }


def status(**tasks: TaskInstanceStatus) -> DAGRunStatus:
    return DAGRunStatus(state=RunState.running, tasks=tasks)


def run_obj(
    name: str, logical_date: str, state: str | None = None, *, started: bool = False
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {"dagName": "etl", "logicalDate": logical_date},
    }
    obj["status"] = {"state": state or "queued"}
    if started:
        obj["status"]["startTime"] = "2024-05-01T00:00:00Z"
    return obj


SPEC = DAGSpec.model_validate({"tasks": [{"name": "a", "bash": "true"}], "maxActiveRuns": 2})


class TestAttemptsFromPods:
    def fold(self, pods: list[dict[str, Any]], current: DAGRunStatus, **kwargs: Any) -> dict[str, Any]:
        return rules.attempts_from_pods(
            pods,
            status=current,
            now=NOW,
            pending_timeout=timedelta(minutes=10),
            pod_tasks=frozenset({"a", "b"}),
            run_name=RUN,
            **kwargs,
        )

    def test_the_newest_try_of_each_task_wins(self) -> None:
        attempts = self.fold(
            [pod("a", 1, "Failed"), pod("a", 2, "Running"), pod("b", 1, "Pending")], status()
        )
        assert attempts["a"].try_number == 2 and attempts["a"].phase is AttemptPhase.running
        assert attempts["b"].phase is AttemptPhase.pending

    def test_a_running_try_whose_pod_vanished_is_a_failed_attempt(self) -> None:
        running = TaskInstanceStatus(state=TaskState.running, try_number=2, start_time="2024-05-01T11:00:00Z")
        attempts = self.fold([pod("a", 1, "Failed")], status(a=running))
        assert attempts["a"].try_number == 2
        assert attempts["a"].phase is AttemptPhase.failed
        assert "disappeared while running" in (attempts["a"].message or "")

    def test_a_queued_try_without_a_pod_is_left_to_the_engine(self) -> None:
        queued = TaskInstanceStatus(state=TaskState.queued, try_number=1)
        assert self.fold([], status(a=queued)) == {}

    def test_inline_tasks_never_count_as_vanished(self) -> None:
        running = TaskInstanceStatus(state=TaskState.running, try_number=1)
        assert self.fold([], status(sensor=running)) == {}

    def test_pods_of_other_shapes_are_ignored(self) -> None:
        stray = pod("a", 1)
        stray["metadata"]["labels"][names.LABEL_TRY] = "x"
        assert self.fold([stray], status()) == {}

    def test_a_custom_fold_is_used(self) -> None:
        calls: list[str] = []

        def fold(p: dict[str, Any]) -> Any:
            calls.append(p["metadata"]["name"])
            return rules.observe.attempt_from_pod(p, now=NOW)

        self.fold([pod("a", 1)], status(), fold=fold)
        assert calls == [names.pod_name(RUN, "a", 1)]


def test_pending_deadline_is_the_earliest_pending_pod_plus_the_timeout() -> None:
    late = pod("b", 1, "Pending", creationTimestamp="2024-05-01T11:59:30Z")
    early = pod("a", 1, "Pending", creationTimestamp="2024-05-01T11:58:00Z")
    deadline = rules.pending_deadline([pod("c", 1, "Running"), late, early], timedelta(minutes=10))
    assert deadline == datetime(2024, 5, 1, 12, 8, tzinfo=UTC)
    assert rules.pending_deadline([pod("a", 1, "Running")], timedelta(minutes=10)) is None


class TestAdmission:
    def test_a_missing_dag_holds_the_run(self) -> None:
        hold = rules.admission(
            run=run_obj("r", "2024-01-01"), dag=None, dag_spec=None, dag_problem=None, runs_of_dag=[]
        )
        assert hold is not None and hold.reason == "DAGNotFound"

    def test_an_invalid_dag_holds_the_run_with_its_problems(self) -> None:
        hold = rules.admission(
            run=run_obj("r", "2024-01-01"),
            dag={},
            dag_spec=None,
            dag_problem="spec.tasks: cycle",
            runs_of_dag=[],
        )
        assert hold is not None and hold.reason == "InvalidDAG" and "cycle" in hold.message

    def test_a_paused_dag_holds_the_run(self) -> None:
        paused = SPEC.model_copy(update={"paused": True})
        hold = rules.admission(
            run=run_obj("r", "2024-01-01"), dag={}, dag_spec=paused, dag_problem=None, runs_of_dag=[]
        )
        assert hold is not None and hold.reason == "DAGPaused"

    def test_max_active_runs_counts_started_unfinished_runs(self) -> None:
        others = [
            run_obj("a", "2024-01-01", "running", started=True),
            run_obj("b", "2024-01-02", "running", started=True),
            run_obj("c", "2023-12-01", "success", started=True),
        ]
        me = run_obj("d", "2024-01-03")
        hold = rules.admission(run=me, dag={}, dag_spec=SPEC, dag_problem=None, runs_of_dag=[*others, me])
        assert hold is not None and hold.reason == "MaxActiveRuns"
        assert (
            rules.admission(run=me, dag={}, dag_spec=SPEC, dag_problem=None, runs_of_dag=[others[0], me])
            is None
        )

    def test_waiting_runs_start_oldest_logical_date_first(self) -> None:
        old, new = run_obj("old", "2024-01-01"), run_obj("new", "2024-01-02")
        single = SPEC.model_copy(update={"max_active_runs": 1})
        runs = [old, new]
        assert rules.admission(run=old, dag={}, dag_spec=single, dag_problem=None, runs_of_dag=runs) is None
        held = rules.admission(run=new, dag={}, dag_spec=single, dag_problem=None, runs_of_dag=runs)
        assert held is not None and "1 queued ahead" in held.message


def test_previous_run_states_come_from_the_run_just_before() -> None:
    older = run_obj("r1", "2024-01-01", "success")
    older["status"]["tasks"] = {"a": {"state": "success"}}
    previous = run_obj("r2", "2024-01-02", "failed")
    previous["status"]["tasks"] = {"a": {"state": "failed"}, "b": {"state": "bogus"}}
    me = run_obj("r3", "2024-01-03")
    assert rules.previous_run_states(me, [older, previous, me, run_obj("r4", "2024-01-04")]) == {
        "a": TaskState.failed
    }
    assert rules.previous_run_states(older, [older, me]) is None
    assert rules.runs_after(older, [older, previous, me]) == ["r3"]


class TestPodCleanup:
    success = TaskInstanceStatus(state=TaskState.success, try_number=2)

    def test_keep_deletes_nothing(self) -> None:
        assert rules.pods_to_clean("keep", [pod("a", 2, "Succeeded")], status(a=self.success)) == []

    def test_on_success_deletes_the_recorded_successful_try_only(self) -> None:
        pods = [pod("a", 1, "Failed"), pod("a", 2, "Succeeded"), pod("b", 1, "Failed")]
        assert rules.pods_to_clean("onSuccess", pods, status(a=self.success)) == [names.pod_name(RUN, "a", 2)]

    def test_on_success_does_not_wait_for_the_phase_to_catch_up(self) -> None:
        # A real node reports the container's end before the Pod's phase: the recorded
        # success is what counts (the run may be over before the phase changes).
        assert rules.pods_to_clean("onSuccess", [pod("a", 2, "Running")], status(a=self.success)) == [
            names.pod_name(RUN, "a", 2)
        ]

    def test_on_success_waits_until_the_status_records_the_success(self) -> None:
        running = TaskInstanceStatus(state=TaskState.running, try_number=2)
        assert rules.pods_to_clean("onSuccess", [pod("a", 2, "Succeeded")], status(a=running)) == []

    def test_on_run_end_deletes_everything_once_the_run_is_finished(self) -> None:
        pods = [
            pod("a", 1, "Failed"),
            pod("a", 2, "Succeeded"),
            pod("b", 1, deletionTimestamp="2024-05-01T12:00:00Z"),
        ]
        finished = DAGRunStatus(state=RunState.success, tasks={"a": self.success})
        assert rules.pods_to_clean("onRunEnd", pods, status(a=self.success)) == []
        assert rules.pods_to_clean("onRunEnd", pods, finished) == [
            pod("a", 1)["metadata"]["name"],
            pod("a", 2)["metadata"]["name"],
        ]


def test_pod_names_follow_the_current_try_of_pod_tasks() -> None:
    current = status(
        a=TaskInstanceStatus(state=TaskState.running, try_number=3),
        b=TaskInstanceStatus(state=TaskState.none, try_number=2),
        s=TaskInstanceStatus(state=TaskState.running, try_number=1),
    )
    namer = rules.pod_namer(RUN, frozenset({"a", "b"}))
    named = runstatus.with_pod_names(current, namer)
    assert named.tasks["a"].pod_name == names.pod_name(RUN, "a", 3)
    assert named.tasks["b"].pod_name is None  # cleared, waiting: no Pod of the current try yet
    assert named.tasks["s"].pod_name is None  # a sensor has no Pod
    assert runstatus.with_pod_names(named, namer) is named


def test_conditions_keep_their_transition_time_while_the_status_holds() -> None:
    first = runstatus.set_condition(
        [], runstatus.admitted_condition(runstatus.Hold("MaxActiveRuns", "waiting")), now=NOW
    )
    later = NOW + timedelta(minutes=5)
    same = runstatus.set_condition(
        first, runstatus.admitted_condition(runstatus.Hold("MaxActiveRuns", "still waiting")), now=later
    )
    started = runstatus.set_condition(same, runstatus.admitted_condition(None), now=later)
    assert (
        same[0].last_transition_time == first[0].last_transition_time and same[0].message == "still waiting"
    )
    assert started[0].status == "True" and started[0].last_transition_time == later


class TestMergePatch:
    def test_only_the_difference_is_sent_and_removed_keys_become_null(self) -> None:
        old = {
            "state": "running",
            "tasks": {"a": {"state": "running", "tryNumber": 1, "podName": "p"}, "b": {"state": "none"}},
        }
        new = {
            "state": "running",
            "tasks": {"a": {"state": "success", "tryNumber": 1}, "b": {"state": "none"}},
            "end": "x",
        }
        patch = patches.merge_patch(old, new)
        assert patch == {"tasks": {"a": {"state": "success", "podName": None}}, "end": "x"}
        assert patches.apply_merge_patch(old, patch) == new

    def test_lists_are_replaced_whole_and_equal_objects_give_no_patch(self) -> None:
        old = {"tries": [1, 2], "x": {"y": 1}}
        assert patches.merge_patch(old, {"tries": [1, 2, 3], "x": {"y": 1}}) == {"tries": [1, 2, 3]}
        assert patches.merge_patch(old, old) == {}
