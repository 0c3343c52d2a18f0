"""Scenarios for the run state machine, driven one decide() call at a time.

The engine is pure, so these tests need no mocks: a `Driver` plays the shell. It
keeps the status the engine returned, the latest attempt of every task (which the
test sets, as a Pod or a subprocess would report it) and a fake clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeflowlite.api.dag import DAGSpec, TriggerRule, effective_task
from kubeflowlite.api.dagrun import DAGRunStatus, RunState, TaskState
from kubeflowlite.core import durations, engine, retries
from kubeflowlite.core.engine import (
    NO_XCOM,
    Attempt,
    AttemptPhase,
    Decision,
    RunInput,
    StartTry,
    StopTry,
    decide,
)

T0 = datetime(2020, 2, 9, 14, 55, tzinfo=UTC)
OK, FAIL, RUNNING, PENDING = (
    AttemptPhase.succeeded,
    AttemptPhase.failed,
    AttemptPhase.running,
    AttemptPhase.pending,
)


class Driver:
    """Plays the shell around decide(): keeps the status, the observed attempts and the clock."""

    def __init__(
        self,
        tasks: list[dict[str, Any]],
        *,
        previous_run: dict[str, TaskState] | None = None,
        **spec: Any,
    ) -> None:
        self.spec = DAGSpec.model_validate({"tasks": tasks, **spec})
        self.status = DAGRunStatus()
        self.attempts: dict[str, Attempt] = {}
        self.now = T0
        self.previous_run = previous_run
        self.decision: Decision | None = None
        self.launch = True

    def input(self, clear: tuple[str, tuple[str, ...]] | None = None) -> RunInput:
        return RunInput(
            dag=self.spec,
            status=self.status,
            attempts=dict(self.attempts),
            now=self.now,
            previous_run=self.previous_run,
            clear=clear,
        )

    def step(self, clear: tuple[str, tuple[str, ...]] | None = None) -> Decision:
        """One decide() call; like a shell, launch what it asks for (observed as pending from now on)."""
        self.decision = decide(self.input(clear))
        self.status = self.decision.status
        if self.launch:
            for start in self.decision.start:
                known = self.attempts.get(start.task)
                if known is None or known.try_number < start.try_number:
                    self.attempts[start.task] = Attempt(start.task, start.try_number, PENDING)
        return self.decision

    def report(
        self,
        task: str,
        phase: AttemptPhase,
        *,
        try_number: int | None = None,
        xcom: Any = NO_XCOM,
        exit_code: int | None = None,
        message: str | None = None,
    ) -> None:
        """The shell observed `task`'s try (by default the try the status says is current)."""
        number = try_number if try_number is not None else self.status.tasks[task].try_number
        finished = phase in (OK, FAIL)
        previous = self.attempts.get(task)
        started = previous.start_time if previous and previous.try_number == number else None
        self.attempts[task] = Attempt(
            task=task,
            try_number=number,
            phase=phase,
            start_time=started or (self.now if phase is not PENDING else None),
            end_time=self.now if finished else None,
            exit_code=exit_code
            if exit_code is not None
            else (0 if phase is OK else 1 if phase is FAIL else None),
            message=message,
            xcom=xcom,
        )

    def finish(self, *tasks: str, phase: AttemptPhase = OK) -> None:
        for task in tasks:
            self.report(task, phase)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def run_state(self) -> RunState:
        return self.status.state

    def state(self, task: str) -> TaskState:
        return self.status.tasks[task].state

    def states(self) -> dict[str, str]:
        return {name: status.state.value for name, status in self.status.tasks.items()}

    def started(self) -> list[str]:
        assert self.decision is not None
        return [start.task for start in self.decision.start]


def bash(name: str, *upstream: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "bash": f"echo {name}", "dependsOn": list(upstream), **fields}


def empty(name: str, *upstream: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "empty", "dependsOn": list(upstream), **fields}


# --- the tutorial, end to end -----------------------------------------------------------------


TUTORIAL = [
    bash("print_date"),
    bash("sleep", "print_date", retries=3),
    bash("templated", "print_date"),
]


def test_tutorial_runs_to_success() -> None:
    run = Driver(TUTORIAL, defaults={"retries": 1, "retryDelay": "5m"})
    first = run.step()
    assert first.start == [StartTry("print_date", 1)]
    assert run.run_state() is RunState.running
    assert run.status.start_time == T0
    assert run.states() == {"print_date": "queued", "sleep": "none", "templated": "none"}
    assert run.status.tasks_summary == "0/3"
    assert first.wake_at is None

    run.report("print_date", RUNNING)
    assert run.step().start == []
    assert run.state("print_date") is TaskState.running
    assert run.status.tasks["print_date"].start_time == T0

    run.advance(2)
    run.finish("print_date")
    assert run.step().start == [StartTry("sleep", 1), StartTry("templated", 1)]
    assert run.status.tasks["print_date"].end_time == T0 + timedelta(seconds=2)
    assert run.status.tasks["print_date"].exit_code == 0
    assert run.status.tasks_summary == "1/3"

    run.advance(5)
    run.finish("sleep", "templated")
    final = run.step()
    assert final.finished
    assert run.run_state() is RunState.success
    assert run.status.end_time == T0 + timedelta(seconds=7)
    assert run.states() == {"print_date": "success", "sleep": "success", "templated": "success"}
    assert run.status.tasks_summary == "3/3"
    assert final.start == [] and final.stop == [] and final.wake_at is None


def test_a_finished_run_stays_finished_with_its_end_time() -> None:
    run = Driver([bash("a")])
    run.step()
    run.finish("a")
    run.step()
    end = run.status.end_time
    run.advance(60)
    again = run.step()
    assert again.finished and run.status.end_time == end


def test_a_failed_task_fails_everything_downstream_and_the_run() -> None:
    run = Driver([bash("a"), bash("b", "a"), bash("c", "b"), bash("d")])
    run.step()
    run.finish("a", phase=FAIL)
    run.finish("d")
    run.step()
    assert run.states() == {"a": "failed", "b": "upstream_failed", "c": "upstream_failed", "d": "success"}
    assert run.status.tasks["a"].message == "exit code 1"
    assert run.status.tasks["b"].message == "trigger rule all_success: upstream 1 failed"
    assert run.run_state() is RunState.failed


def test_the_run_fails_only_when_a_leaf_fails() -> None:
    """Airflow's rule: a failed task whose failure a downstream all_done task absorbs does not fail the run."""
    run = Driver([bash("a"), bash("cleanup", "a", triggerRule="all_done")])
    run.step()
    run.finish("a", phase=FAIL)
    run.step()
    run.finish("cleanup")
    run.step()
    assert run.states() == {"a": "failed", "cleanup": "success"}
    assert run.run_state() is RunState.success


def test_a_run_whose_tasks_cannot_start_yet_stays_queued() -> None:
    run = Driver([bash("a", dependsOnPast=True)], previous_run={"a": TaskState.failed})
    decision = run.step()
    assert decision.start == []
    assert run.run_state() is RunState.queued
    assert run.status.start_time is None


# --- empty tasks ------------------------------------------------------------------------------


def test_empty_tasks_complete_without_a_process() -> None:
    run = Driver([empty("start"), bash("work", "start"), empty("end", "work")])
    decision = run.step()
    assert decision.start == [StartTry("work", 1)]
    assert run.states() == {"start": "success", "work": "queued", "end": "none"}
    assert run.status.tasks["start"].try_number == 0
    assert run.status.tasks["start"].start_time == run.status.tasks["start"].end_time == T0
    run.finish("work")
    assert run.step().start == []
    assert run.run_state() is RunState.success


def test_a_chain_of_empty_tasks_finishes_in_one_call() -> None:
    chain = [empty("t0")] + [empty(f"t{i}", f"t{i - 1}") for i in range(1, 200)]
    run = Driver(chain)
    decision = run.step()
    assert decision.finished and decision.start == []
    assert run.status.tasks_summary == "200/200"


def test_tasks_are_started_in_topological_order_whatever_the_file_order() -> None:
    run = Driver([empty("c", "b"), empty("b", "a"), bash("a"), bash("z", "c")])
    run.step()
    run.finish("a")
    assert run.step().start == [StartTry("z", 1)]
    assert run.states() == {"c": "success", "b": "success", "a": "success", "z": "queued"}


# --- retries ----------------------------------------------------------------------------------


def test_a_task_is_retried_after_its_delay_until_it_succeeds() -> None:
    run = Driver([bash("flaky", retries=2, retryDelay="30s"), bash("after", "flaky")])
    run.step()
    run.report("flaky", RUNNING)
    run.step()
    run.advance(10)
    run.report("flaky", FAIL, exit_code=3)
    first_failure = run.now
    decision = run.step()
    status = run.status.tasks["flaky"]
    assert status.state is TaskState.up_for_retry
    assert status.message == "exit code 3"
    assert status.next_try_at == first_failure + timedelta(seconds=30)
    assert decision.start == [] and decision.wake_at == first_failure + timedelta(seconds=30)
    assert run.state("after") is TaskState.none
    assert run.run_state() is RunState.running

    run.advance(29)
    assert run.step().start == []
    run.advance(1)
    decision = run.step()
    assert decision.start == [StartTry("flaky", 2)]
    assert run.status.tasks["flaky"].try_number == 2
    assert [(t.try_number, t.state, t.exit_code) for t in run.status.tasks["flaky"].tries] == [
        (1, TaskState.failed, 3)
    ]

    run.report("flaky", FAIL)
    run.step()
    run.advance(30)
    assert run.step().start == [StartTry("flaky", 3)]
    run.finish("flaky")
    assert run.step().start == [StartTry("after", 1)]
    status = run.status.tasks["flaky"]
    assert (status.state, status.try_number) == (TaskState.success, 3)
    assert [t.try_number for t in status.tries] == [1, 2]


def test_when_tries_run_out_the_task_fails() -> None:
    run = Driver([bash("a", retries=1, retryDelay="0s")])
    run.step()
    run.finish("a", phase=FAIL)
    assert run.step().start == [StartTry("a", 2)]
    run.finish("a", phase=FAIL)
    decision = run.step()
    assert decision.finished
    assert (run.state("a"), run.status.tasks["a"].try_number) == (TaskState.failed, 2)
    assert run.status.tasks["a"].next_try_at is None
    assert run.run_state() is RunState.failed


def test_defaults_apply_to_retries_and_a_task_overrides_them() -> None:
    run = Driver(
        [bash("uses_default"), bash("overrides", retries=0)],
        defaults={"retries": 1, "retryDelay": "1m"},
    )
    run.step()
    run.finish("uses_default", "overrides", phase=FAIL)
    run.step()
    assert run.states() == {"uses_default": "up_for_retry", "overrides": "failed"}
    assert run.status.tasks["uses_default"].next_try_at == T0 + timedelta(minutes=1)


def test_the_default_retry_delay_is_five_minutes() -> None:
    run = Driver([bash("a", retries=1)])
    run.step()
    run.finish("a", phase=FAIL)
    assert run.step().wake_at == T0 + timedelta(minutes=5)


def test_exponential_backoff_doubles_the_delay_up_to_the_cap() -> None:
    run = Driver([bash("a", retries=4, retryDelay="10s", retryExponentialBackoff=True, maxRetryDelay="25s")])
    run.step()
    delays = []
    for _ in range(4):
        run.finish("a", phase=FAIL)
        decision = run.step()
        assert decision.wake_at is not None
        delays.append((decision.wake_at - run.now).total_seconds())
        run.now = decision.wake_at
        assert len(run.step().start) == 1
    assert delays == [10, 20, 25, 25]


@pytest.mark.parametrize(
    ("failed_try", "exponential", "cap", "expected"),
    [
        (1, False, None, 60),
        (5, False, None, 60),
        (1, True, None, 60),
        (2, True, None, 120),
        (4, True, None, 480),
        (4, True, 300, 300),
        (1, False, 30, 30),
        (200, True, None, retries.MAX_DELAY.total_seconds()),
    ],
)
def test_retry_delay(failed_try: int, exponential: bool, cap: int | None, expected: float) -> None:
    delay = retries.retry_delay(
        failed_try=failed_try,
        delay=timedelta(seconds=60),
        exponential=exponential,
        max_delay=timedelta(seconds=cap) if cap is not None else None,
    )
    assert delay.total_seconds() == expected


# --- execution timeout ------------------------------------------------------------------------


def test_an_execution_timeout_fails_the_try_and_stops_it() -> None:
    run = Driver([bash("slow", executionTimeout="30s", retries=1, retryDelay="10s")])
    run.step()
    run.advance(5)  # the Pod was pending for 5 s: the timeout counts from the start of running
    run.report("slow", RUNNING)
    started = run.now
    assert run.step().wake_at == started + timedelta(seconds=30)
    run.advance(29)
    assert run.step().stop == []

    run.advance(1)
    decision = run.step()
    status = run.status.tasks["slow"]
    assert status.state is TaskState.up_for_retry
    assert status.message == "execution timeout after 30s"
    assert status.end_time == run.now
    assert decision.stop == [StopTry("slow", 1, "execution timeout after 30s")]
    assert decision.wake_at == run.now + timedelta(seconds=10)

    # The shell has not killed it yet: asked again; then its failure report changes nothing.
    run.advance(1)
    assert run.step().stop == [StopTry("slow", 1, "execution timeout after 30s")]
    run.report("slow", FAIL, exit_code=143)
    decision = run.step()
    assert decision.stop == []
    assert run.status.tasks["slow"].message == "execution timeout after 30s"

    run.advance(9)
    assert run.step().start == [StartTry("slow", 2)]
    run.report("slow", RUNNING)
    run.step()
    run.advance(31)
    run.step()
    assert run.state("slow") is TaskState.failed
    assert run.run_state() is RunState.failed


def test_a_success_reported_after_the_timeout_does_not_count() -> None:
    run = Driver([bash("slow", executionTimeout="1m")])
    run.step()
    run.report("slow", RUNNING)
    run.step()
    run.advance(60)
    run.step()
    run.finish("slow")
    run.step()
    assert run.state("slow") is TaskState.failed


# --- dependsOnPast ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "starts"),
    [
        (None, True),
        ({"a": TaskState.success}, True),
        ({"a": TaskState.skipped}, True),
        ({"other": TaskState.failed}, True),
        ({"a": TaskState.failed}, False),
        ({"a": TaskState.upstream_failed}, False),
        ({"a": TaskState.running}, False),
        ({"a": TaskState.none}, False),
    ],
)
def test_depends_on_past(previous: dict[str, TaskState] | None, starts: bool) -> None:
    run = Driver([bash("a"), bash("b")], defaults={"dependsOnPast": True}, previous_run=previous)
    run.step()
    assert ("a" in run.started()) is starts
    assert "b" in run.started()
    if not starts:
        assert run.state("a") is TaskState.none
        assert "dependsOnPast" in (run.status.tasks["a"].message or "")


def test_a_task_held_by_depends_on_past_starts_once_the_previous_run_succeeds() -> None:
    """previous_run changes between calls with nothing observed: the held task is looked at again."""
    run = Driver([bash("a", dependsOnPast=True), bash("b", "a")], previous_run={"a": TaskState.running})
    assert run.step().start == []
    assert run.step().start == []  # a remembered call: still held
    run.previous_run = {"a": TaskState.success}
    assert run.step().start == [StartTry("a", 1)]


def test_depends_on_past_is_off_by_default() -> None:
    run = Driver([bash("a")], previous_run={"a": TaskState.failed})
    assert run.step().start == [StartTry("a", 1)]


# --- maxActiveTasks ---------------------------------------------------------------------------


def test_max_active_tasks_bounds_queued_and_running_tries() -> None:
    run = Driver([bash(f"t{i}") for i in range(5)], maxActiveTasks=2)
    assert run.step().start == [StartTry("t0", 1), StartTry("t1", 1)]
    assert run.states() == {
        "t0": "queued",
        "t1": "queued",
        "t2": "scheduled",
        "t3": "scheduled",
        "t4": "scheduled",
    }
    run.report("t0", RUNNING)
    assert run.step().start == []
    run.finish("t0")
    assert run.step().start == [StartTry("t2", 1)]
    run.finish("t1", "t2")
    assert run.step().start == [StartTry("t3", 1), StartTry("t4", 1)]


def test_empty_tasks_do_not_take_a_slot() -> None:
    run = Driver([bash("a"), empty("e1"), empty("e2", "e1"), bash("b")], maxActiveTasks=1)
    assert run.step().start == [StartTry("a", 1)]
    assert run.states() == {"a": "queued", "e1": "success", "e2": "success", "b": "scheduled"}


def test_a_due_retry_waits_for_a_slot_like_any_task() -> None:
    run = Driver([bash("a", retries=1, retryDelay="0s"), bash("b", "x"), bash("x")], maxActiveTasks=1)
    run.step()
    run.finish("a", phase=FAIL)
    assert run.step().start == [StartTry("a", 2)]
    run.report("a", RUNNING)
    decision = run.step()
    assert decision.start == [] and run.state("x") is TaskState.scheduled


# --- branching and short-circuit --------------------------------------------------------------


BRANCHING = [
    bash("pick", branch=True),
    bash("left", "pick"),
    bash("middle", "pick"),
    bash("right", "pick"),
    bash("after_left", "left"),
    bash("join", "left", "middle", "right", triggerRule="none_failed_min_one_success"),
]


def test_a_branch_skips_the_direct_downstream_tasks_it_did_not_choose() -> None:
    run = Driver(BRANCHING)
    run.step()
    run.report("pick", OK, xcom="middle")
    assert run.step().start == [StartTry("middle", 1)]
    assert run.states() == {
        "pick": "success",
        "left": "skipped",
        "middle": "queued",
        "right": "skipped",
        "after_left": "skipped",
        "join": "none",
    }
    assert run.status.tasks["left"].message == "not chosen by branch pick"
    run.finish("middle")
    assert run.step().start == [StartTry("join", 1)]
    run.finish("join")
    assert run.step().finished and run.run_state() is RunState.success


def test_a_branch_may_choose_several_tasks() -> None:
    run = Driver(BRANCHING)
    run.step()
    run.report("pick", OK, xcom=["left", "right"])
    assert run.step().start == [StartTry("left", 1), StartTry("right", 1)]
    assert run.state("middle") is TaskState.skipped


def test_a_bash_branch_may_print_a_json_list() -> None:
    run = Driver(BRANCHING)
    run.step()
    run.report("pick", OK, xcom='["left", "right"]')
    assert [s.task for s in run.step().start] == ["left", "right"]


@pytest.mark.parametrize("xcom", [None, NO_XCOM, []])
def test_a_branch_that_chooses_nothing_skips_every_direct_downstream_task(xcom: Any) -> None:
    run = Driver(BRANCHING)
    run.step()
    run.report("pick", OK, xcom=xcom)
    decision = run.step()
    assert decision.finished and decision.start == []
    assert run.states()["join"] == "skipped"
    assert run.run_state() is RunState.success


def test_a_branch_choosing_a_task_that_is_not_its_direct_downstream_fails() -> None:
    run = Driver(BRANCHING)
    run.step()
    run.report("pick", OK, xcom="after_left")
    run.step()
    assert run.state("pick") is TaskState.failed
    assert run.status.tasks["pick"].message == (
        "branch chose 'after_left', not a direct downstream task of 'pick' "
        "(direct downstream: left, middle, right)"
    )
    assert run.states()["left"] == "upstream_failed"
    assert run.run_state() is RunState.failed


def test_a_branch_with_a_bad_return_value_is_retried_like_any_failure() -> None:
    run = Driver(BRANCHING, defaults={"retries": 1, "retryDelay": "0s"})
    run.step()
    run.report("pick", OK, xcom={"not": "a task id"})
    assert run.step().start == [StartTry("pick", 2)]
    assert "branch return value must be a task id" in (run.status.tasks["pick"].tries[0].message or "")


SHORT_CIRCUIT = [
    bash("check", shortCircuit=True),
    bash("a", "check"),
    bash("b", "a"),
    bash("cleanup", "b", triggerRule="all_done"),
    bash("unrelated"),
]


@pytest.mark.parametrize("xcom", [False, None, 0, "", "false", "False", "0", NO_XCOM, [], {}])
def test_a_falsy_short_circuit_skips_every_descendant_whatever_its_trigger_rule(xcom: Any) -> None:
    run = Driver(SHORT_CIRCUIT)
    run.step()
    run.report("check", OK, xcom=xcom)
    run.finish("unrelated")
    decision = run.step()
    assert run.states() == {
        "check": "success",
        "a": "skipped",
        "b": "skipped",
        "cleanup": "skipped",
        "unrelated": "success",
    }
    assert run.status.tasks["cleanup"].message == "short-circuited by check"
    assert decision.finished and run.run_state() is RunState.success


@pytest.mark.parametrize("xcom", [True, 1, "true", "yes", ["x"]])
def test_a_truthy_short_circuit_lets_everything_run(xcom: Any) -> None:
    run = Driver(SHORT_CIRCUIT)
    run.step()
    run.report("check", OK, xcom=xcom)
    assert "a" in [s.task for s in run.step().start]


def test_a_short_circuit_does_not_touch_a_descendant_already_running() -> None:
    run = Driver([bash("check", shortCircuit=True), bash("eager", "check", triggerRule="always")])
    assert run.step().start == [StartTry("check", 1), StartTry("eager", 1)]
    run.report("eager", RUNNING)
    run.report("check", OK, xcom=False)
    run.step()
    assert run.state("eager") is TaskState.running


# --- trigger rules in small DAGs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "outcome_a", "outcome_b", "expected"),
    [
        ("all_success", OK, OK, "run"),
        ("all_success", OK, FAIL, "upstream_failed"),
        ("all_failed", FAIL, FAIL, "run"),
        ("all_failed", FAIL, OK, "skipped"),
        ("all_done", FAIL, OK, "run"),
        ("all_done_min_one_success", FAIL, OK, "run"),
        ("all_done_min_one_success", FAIL, FAIL, "upstream_failed"),
        ("all_skipped", OK, OK, "skipped"),
        ("one_success", FAIL, OK, "run"),
        ("one_success", FAIL, FAIL, "upstream_failed"),
        ("one_failed", OK, FAIL, "run"),
        ("one_failed", OK, OK, "skipped"),
        ("one_done", FAIL, FAIL, "run"),
        ("none_failed", OK, OK, "run"),
        ("none_failed", OK, FAIL, "upstream_failed"),
        ("none_failed_min_one_success", OK, OK, "run"),
        ("none_failed_min_one_success", FAIL, OK, "upstream_failed"),
        ("none_skipped", FAIL, OK, "run"),
    ],
)
def test_trigger_rule_in_a_dag(
    rule: str, outcome_a: AttemptPhase, outcome_b: AttemptPhase, expected: str
) -> None:
    run = Driver([bash("a"), bash("b"), bash("t", "a", "b", triggerRule=rule)])
    run.step()
    run.finish("a", phase=outcome_a)
    run.finish("b", phase=outcome_b)
    decision = run.step()
    if expected == "run":
        assert StartTry("t", 1) in decision.start
        assert run.state("t") is TaskState.queued
    else:
        assert StartTry("t", 1) not in decision.start
        assert run.state("t").value == expected
        assert (run.status.tasks["t"].message or "").startswith(f"trigger rule {rule}: upstream ")


def test_skips_propagate_through_trigger_rules() -> None:
    """A skipped branch target skips its all_success downstream; none_failed lets its join run."""
    run = Driver(
        [
            bash("pick", branch=True),
            bash("a", "pick"),
            bash("b", "pick"),
            bash("after_a", "a"),
            bash("none_skipped", "a", "b", triggerRule="none_skipped"),
            bash("one_success", "a", "b", triggerRule="one_success"),
            bash("all_skipped", "a", triggerRule="all_skipped"),
        ]
    )
    run.step()
    run.report("pick", OK, xcom="b")
    run.step()
    assert run.states()["after_a"] == "skipped"
    assert run.states()["none_skipped"] == "skipped"
    assert run.states()["all_skipped"] == "queued"
    run.finish("b")
    run.step()
    assert run.states()["one_success"] == "queued"


def test_always_starts_before_its_upstream_finishes() -> None:
    run = Driver([bash("a"), bash("watch", "a", triggerRule=TriggerRule.always.value)])
    assert run.step().start == [StartTry("a", 1), StartTry("watch", 1)]


def test_one_success_runs_without_waiting_for_the_other_upstream() -> None:
    run = Driver([bash("fast"), bash("slow"), bash("first", "fast", "slow", triggerRule="one_success")])
    run.step()
    run.finish("fast")
    assert run.step().start == [StartTry("first", 1)]
    assert run.state("slow") is TaskState.queued


# --- clear ------------------------------------------------------------------------------------


def test_clear_reruns_tasks_with_the_next_try_number() -> None:
    run = Driver([bash("a"), bash("b", "a"), bash("c", "b")])
    run.step()
    run.finish("a")
    run.step()
    run.finish("b")
    run.step()
    run.finish("c")
    run.step()
    assert run.run_state() is RunState.success

    run.advance(100)
    decision = run.step(clear=("req-1", ("b", "c")))
    assert decision.start == [StartTry("b", 2)]
    assert run.run_state() is RunState.running
    assert run.status.end_time is None
    assert run.status.cleared == ["req-1"]
    assert run.states() == {"a": "success", "b": "queued", "c": "none"}
    assert [(t.try_number, t.state) for t in run.status.tasks["b"].tries] == [(1, TaskState.success)]
    assert [(t.try_number, t.state) for t in run.status.tasks["c"].tries] == [(1, TaskState.success)]

    # The same request again (the spec still carries it) is a no-op.
    run.finish("b")
    decision = run.step(clear=("req-1", ("b", "c")))
    assert decision.start == [StartTry("c", 2)]
    run.finish("c")
    assert run.step(clear=("req-1", ("b", "c"))).finished
    assert run.status.tasks["c"].try_number == 2
    assert run.status.end_time == run.now


def test_after_a_clear_the_old_attempt_is_ignored() -> None:
    run = Driver([bash("a", dependsOnPast=True)], previous_run={"a": TaskState.success})
    run.step()
    run.finish("a", phase=FAIL)
    run.step()
    assert run.run_state() is RunState.failed
    run.previous_run = {"a": TaskState.failed}  # held back by dependsOnPast: stays cleared
    run.step(clear=("again", ("a",)))
    assert run.state("a") is TaskState.none
    assert run.status.tasks["a"].try_number == 1
    run.step()
    assert run.state("a") is TaskState.none  # the failed attempt of try 1 is not re-applied


def test_clearing_a_running_task_stops_its_try() -> None:
    run = Driver([bash("a")])
    run.step()
    run.report("a", RUNNING)
    run.step()
    decision = run.step(clear=("c1", ("a",)))
    assert decision.start == [StartTry("a", 2)]
    assert decision.stop == [StopTry("a", 1, "superseded by try 2")]


def test_a_cleared_try_that_cannot_rerun_yet_is_stopped_with_the_reason() -> None:
    run = Driver([bash("a", dependsOnPast=True)], previous_run={"a": TaskState.success})
    run.step()
    run.report("a", RUNNING)
    run.step()
    run.previous_run = {"a": TaskState.failed}
    decision = run.step(clear=("c1", ("a",)))
    assert decision.start == []
    assert decision.stop == [StopTry("a", 1, "the task was cleared")]


def test_a_task_waiting_for_a_slot_waits_again_when_its_upstream_is_cleared() -> None:
    run = Driver([bash("a"), bash("hog"), bash("b", "a")], maxActiveTasks=1)
    run.step()
    run.finish("a")
    run.step()
    assert run.states() == {"a": "success", "hog": "queued", "b": "scheduled"}
    run.step(clear=("c1", ("a",)))
    assert run.states() == {"a": "scheduled", "hog": "queued", "b": "none"}


def test_clear_of_an_unknown_task_is_ignored() -> None:
    run = Driver([bash("a")])
    run.step()
    run.step(clear=("c1", ("nope",)))
    assert run.status.cleared == ["c1"]


# --- restart safety ---------------------------------------------------------------------------


def test_the_same_input_gives_the_same_decision() -> None:
    run = Driver(BRANCHING, defaults={"retries": 1})
    run.step()
    run.report("pick", OK, xcom="left")
    given = run.input()
    first, second = decide(given), decide(given)
    assert first.status.to_wire() == second.status.to_wire()
    assert (first.start, first.stop, first.wake_at) == (second.start, second.stop, second.wake_at)
    assert given.status.tasks["pick"].state is TaskState.queued  # the input is not mutated


def test_deciding_again_on_its_own_status_changes_nothing() -> None:
    """Level-triggered: a repeated call (the shell had not observed its effect yet) is a fixpoint."""
    run = Driver(TUTORIAL, maxActiveTasks=1)
    run.launch = False
    first = run.step()
    again = run.step()
    assert again.status.to_wire() == first.status.to_wire()
    assert again.start == first.start == [StartTry("print_date", 1)]  # the launch is asked for until seen


def test_a_launch_whose_status_write_was_lost_is_adopted() -> None:
    run = Driver([bash("a"), bash("b", "a")])
    lost = run.status
    run.step()
    run.status = lost  # the shell launched try 1, then crashed before persisting the status
    run.report("a", RUNNING, try_number=1)
    decision = run.step()
    assert decision.start == []
    assert (run.state("a"), run.status.tasks["a"].try_number) == (TaskState.running, 1)


def test_a_retry_launched_before_a_crash_is_adopted_and_the_old_try_recorded() -> None:
    run = Driver([bash("a", retries=2, retryDelay="0s")])
    run.step()
    before_retry = run.status
    run.finish("a", phase=FAIL)
    assert run.step().start == [StartTry("a", 2)]  # a zero delay: the retry starts at once
    run.status = before_retry  # ... but this status write was lost
    run.report("a", OK, try_number=2)
    run.step()
    status = run.status.tasks["a"]
    assert (status.state, status.try_number) == (TaskState.success, 2)
    assert [(t.try_number, t.state) for t in status.tries] == [(1, TaskState.failed)]


def test_attempts_of_older_tries_are_ignored() -> None:
    run = Driver([bash("a", retries=1, retryDelay="0s")])
    run.step()
    run.finish("a", phase=FAIL)
    run.step()
    run.step()
    assert run.status.tasks["a"].try_number == 2
    run.report("a", OK, try_number=1)
    decision = run.step()
    assert run.state("a") is TaskState.queued
    assert decision.start == [StartTry("a", 2)]


def test_a_pending_attempt_keeps_the_task_queued_with_the_shells_message() -> None:
    run = Driver([bash("a")])
    run.step()
    run.report("a", PENDING, message="ImagePullBackOff: back-off pulling image")
    decision = run.step()
    assert decision.start == []
    assert run.state("a") is TaskState.queued
    assert run.status.tasks["a"].message == "ImagePullBackOff: back-off pulling image"


def test_attempts_of_tasks_not_in_the_dag_are_ignored() -> None:
    run = Driver([bash("a")])
    run.attempts["ghost"] = Attempt("ghost", 1, RUNNING)
    assert run.step().start == [StartTry("a", 1)]
    assert "ghost" not in run.status.tasks


# --- the spec ---------------------------------------------------------------------------------


def test_a_cyclic_graph_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        Driver([bash("a", "b"), bash("b", "a")]).step()


def test_the_task_fields_the_engine_uses_are_the_effective_ones() -> None:
    """The engine reads defaults without copying tasks; it must agree with api.dag.effective_task."""
    spec = DAGSpec.model_validate(
        {
            "defaults": {
                "retries": 2,
                "retryDelay": "7s",
                "triggerRule": "all_done",
                "executionTimeout": "1m",
            },
            "tasks": [bash("a"), bash("b", "a", retries=0, triggerRule="one_success", retryDelay="3s")],
        }
    )
    for task in spec.tasks:
        expected = effective_task(spec, task)
        plan = engine._compile(spec).by_name[task.name]
        assert (plan.retries, plan.rule, plan.execution_timeout_text) == (
            expected.retries,
            expected.trigger_rule,
            expected.execution_timeout,
        )
        assert plan.retry_delay == durations.parse_duration(expected.retry_delay or "")
