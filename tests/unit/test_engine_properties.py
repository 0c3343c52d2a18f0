"""Property tests: random DAGs driven to the end by a simulated shell.

Hypothesis draws a DAG (edges i -> j for i < j, random trigger rules, task types,
branch and short-circuit flags, retries, timeouts, maxActiveTasks) and the outcome
of every try (success, failure, or hanging until a timeout; what a branch chooses;
what a short-circuit returns). `simulate` plays the shell: it launches what the
engine starts, lets tries run for a few steps, kills what it stops, advances a fake
clock, and sometimes loses a status write (a crash between launching and
persisting). After every call it checks the invariants below.

The shell passes the status the engine returned and names the tasks whose attempt
changed since (or, in some scenarios, names none, so the engine looks at every
attempt): the engine answers from its memory of that status. Every decision is
compared with the one a process with no memory (`remember=False`) makes from the
same input: the incremental engine must decide exactly as the full pass does.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeflowlite.api.dag import DAGSpec, TriggerRule
from kubeflowlite.api.dagrun import FINISHED_TASK_STATES, DAGRunStatus, RunState, TaskState
from kubeflowlite.core.engine import NO_XCOM, Attempt, AttemptPhase, Decision, RunInput, decide
from kubeflowlite.core.xcom import branch_targets, is_falsy

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MAX_TRIES = 3
TIMEOUT_SECONDS = 10
WAITING = (TaskState.none, TaskState.scheduled)
HANG = "hang"
"""A try that never ends by itself: it runs until the engine's execution timeout stops it."""


@dataclass(frozen=True)
class TryPlan:
    outcome: AttemptPhase | str
    steps: int
    """How many simulation steps the try stays pending/running before it ends."""
    xcom: Any = NO_XCOM


@dataclass(frozen=True)
class Scenario:
    spec: DAGSpec
    tries: dict[str, tuple[TryPlan, ...]]
    lost_writes: frozenset[int]
    hints: bool = True
    """The shell names the tasks whose attempt changed (else it passes every attempt, unnamed)."""

    @property
    def names(self) -> list[str]:
        return [task.name for task in self.spec.tasks]

    def upstream(self, name: str) -> list[str]:
        return next(task.depends_on for task in self.spec.tasks if task.name == name)

    def rule(self, name: str) -> TriggerRule:
        task = next(task for task in self.spec.tasks if task.name == name)
        return task.trigger_rule or TriggerRule.all_success

    def downstream(self, name: str) -> list[str]:
        return [task.name for task in self.spec.tasks if name in task.depends_on]

    def descendants(self, name: str) -> set[str]:
        found: set[str] = set()
        todo = self.downstream(name)
        while todo:
            task = todo.pop()
            if task not in found:
                found.add(task)
                todo.extend(self.downstream(task))
        return found

    def branch(self, name: str) -> bool:
        return next(task.branch for task in self.spec.tasks if task.name == name)

    def short_circuit(self, name: str) -> bool:
        return next(task.short_circuit for task in self.spec.tasks if task.name == name)

    def leaves(self) -> set[str]:
        inner = {up for task in self.spec.tasks for up in task.depends_on}
        return {name for name in self.names if name not in inner}


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(min_value=1, max_value=8))
    names = [f"t{i}" for i in range(n)]
    upstream = [sorted(draw(st.sets(st.sampled_from(names[:j]), max_size=3))) if j else [] for j in range(n)]
    downstream = {name: [names[j] for j in range(n) if name in upstream[j]] for name in names}
    tasks: list[dict[str, Any]] = []
    tries: dict[str, tuple[TryPlan, ...]] = {}
    for j, name in enumerate(names):
        is_empty = draw(st.integers(min_value=0, max_value=4)) == 0
        task: dict[str, Any] = {"name": name, "dependsOn": upstream[j]}
        if is_empty:
            task["type"] = "empty"
        else:
            task["bash"] = "true"
            task["retries"] = draw(st.integers(min_value=0, max_value=MAX_TRIES - 1))
            task["retryDelay"] = draw(st.sampled_from(["0s", "3s", "1m"]))
            task["retryExponentialBackoff"] = draw(st.booleans())
            if draw(st.booleans()):
                task["executionTimeout"] = f"{TIMEOUT_SECONDS}s"
            task["branch"] = bool(downstream[name]) and draw(st.integers(min_value=0, max_value=3)) == 0
            task["shortCircuit"] = draw(st.integers(min_value=0, max_value=4)) == 0
        if draw(st.integers(min_value=0, max_value=3)) > 0:
            task["triggerRule"] = draw(st.sampled_from(list(TriggerRule))).value
        tasks.append(task)

        plans = []
        for _ in range(MAX_TRIES):
            outcomes: list[AttemptPhase | str] = [
                AttemptPhase.succeeded,
                AttemptPhase.succeeded,
                AttemptPhase.failed,
            ]
            if "executionTimeout" in task:
                outcomes.append(HANG)
            outcome = draw(st.sampled_from(outcomes))
            xcom: Any = NO_XCOM
            if task.get("branch"):
                xcom = draw(
                    st.one_of(
                        st.lists(st.sampled_from(downstream[name]), max_size=2, unique=True),
                        st.sampled_from([*downstream[name], None, "not-a-task"]),
                    )
                )
            elif task.get("shortCircuit"):
                xcom = draw(st.sampled_from([True, False, "false", "yes", 0, NO_XCOM]))
            plans.append(
                TryPlan(outcome=outcome, steps=draw(st.integers(min_value=0, max_value=2)), xcom=xcom)
            )
        tries[name] = tuple(plans)
    spec = DAGSpec.model_validate(
        {"tasks": tasks, "maxActiveTasks": draw(st.integers(min_value=1, max_value=4))}
    )
    lost = draw(st.sets(st.integers(min_value=0, max_value=40), max_size=4))
    return Scenario(spec=spec, tries=tries, lost_writes=frozenset(lost), hints=draw(st.booleans()))


@dataclass
class Live:
    """A try the simulated shell is running."""

    try_number: int
    plan: TryPlan
    started: datetime | None = None
    steps_left: int = 0


@dataclass
class Shell:
    scenario: Scenario
    now: datetime = T0
    status: DAGRunStatus = field(default_factory=DAGRunStatus)
    attempts: dict[str, Attempt] = field(default_factory=dict)
    live: dict[str, Live] = field(default_factory=dict)
    launched: dict[str, list[int]] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    """Tasks whose attempt changed since the last call."""

    def input(self) -> RunInput:
        changed = frozenset(self.changed) if self.scenario.hints else None
        self.changed = set()
        return RunInput(
            dag=self.scenario.spec,
            status=self.status,
            attempts=dict(self.attempts),
            now=self.now,
            changed=changed,
        )

    def observe(self, attempt: Attempt) -> None:
        self.attempts[attempt.task] = attempt
        self.changed.add(attempt.task)

    def launch(self, task: str, try_number: int) -> None:
        known = self.attempts.get(task)
        if known is not None and known.try_number >= try_number:
            return  # already launched: StartTry is "make sure it exists"
        self.launched.setdefault(task, []).append(try_number)
        plan = self.scenario.tries[task][min(try_number, MAX_TRIES) - 1]
        self.live[task] = Live(try_number=try_number, plan=plan, steps_left=plan.steps)
        self.observe(Attempt(task, try_number, AttemptPhase.pending))

    def kill(self, task: str, try_number: int) -> None:
        live = self.live.get(task)
        if live is not None and live.try_number == try_number:
            del self.live[task]
            self.observe(
                Attempt(
                    task,
                    try_number,
                    AttemptPhase.failed,
                    live.started,
                    self.now,
                    exit_code=-15,
                    message="terminated",
                )
            )

    def progress(self) -> None:
        for task, live in list(self.live.items()):
            if live.started is None:
                live.started = self.now
                self.observe(Attempt(task, live.try_number, AttemptPhase.running, start_time=self.now))
            elif live.plan.outcome == HANG:
                continue
            elif live.steps_left > 0:
                live.steps_left -= 1
            else:
                del self.live[task]
                phase = AttemptPhase(live.plan.outcome)
                self.observe(
                    Attempt(
                        task,
                        live.try_number,
                        phase,
                        start_time=live.started,
                        end_time=self.now,
                        exit_code=0 if phase is AttemptPhase.succeeded else 1,
                        xcom=live.plan.xcom if phase is AttemptPhase.succeeded else NO_XCOM,
                    )
                )


def rule_holds(rule: TriggerRule, upstream: list[TaskState]) -> bool:
    """When a trigger rule lets a task run: Airflow's documented conditions, restated independently of core.triggers."""
    n = len(upstream)
    success, skipped, failed, upstream_failed = (
        upstream.count(state)
        for state in (TaskState.success, TaskState.skipped, TaskState.failed, TaskState.upstream_failed)
    )
    done = success + skipped + failed + upstream_failed
    holds = {
        TriggerRule.all_success: success == n,
        TriggerRule.all_failed: failed + upstream_failed == n,
        TriggerRule.all_done: done == n,
        TriggerRule.all_done_min_one_success: done == n and skipped == 0 and success >= 1,
        TriggerRule.all_skipped: skipped == n,
        TriggerRule.one_success: success >= 1,
        TriggerRule.one_failed: failed + upstream_failed >= 1,
        TriggerRule.one_done: success + failed >= 1,
        TriggerRule.none_failed: success + skipped == n,
        TriggerRule.none_failed_min_one_success: success + skipped == n and success >= 1,
        TriggerRule.none_skipped: done == n and skipped == 0,
        TriggerRule.always: True,
    }
    return n == 0 or holds[rule]


def could_still_hold(rule: TriggerRule, upstream: list[TaskState]) -> bool:
    """Whether some outcome of the unfinished upstream tasks would let the rule hold."""
    outcomes = [TaskState.success, TaskState.skipped, TaskState.failed, TaskState.upstream_failed]
    choices = [[state] if state in FINISHED_TASK_STATES else outcomes for state in upstream]
    return any(rule_holds(rule, list(completion)) for completion in itertools.product(*choices))


def same(one: Decision, other: Decision) -> bool:
    return (one.status.to_wire(), one.start, one.stop, one.wake_at) == (
        other.status.to_wire(),
        other.start,
        other.stop,
        other.wake_at,
    )


def check_decision(scenario: Scenario, given: RunInput, decision: Decision) -> None:
    before, after = given.status.tasks, decision.status.tasks
    # What a process with no memory decides from the same input (level-triggered), and
    # a fixpoint when nothing new is observed.
    assert same(decision, decide(given, remember=False))
    assert same(decision, decide(replace(given, status=decision.status, changed=None), remember=False))

    in_flight = sum(1 for status in after.values() if status.state in (TaskState.queued, TaskState.running))
    assert in_flight <= scenario.spec.max_active_tasks

    for start in decision.start:
        assert (after[start.task].state, after[start.task].try_number) == (TaskState.queued, start.try_number)
        seen = given.attempts.get(start.task)
        assert seen is None or seen.try_number < start.try_number, f"StartTry of observed try {start}"

    for name in scenario.names:
        old = before[name].state if name in before else TaskState.none
        new = after[name].state
        if old in FINISHED_TASK_STATES:
            assert new is old, f"{name} left its final state {old.value} for {new.value}"
        began = new is TaskState.queued and after[name].try_number == 1 and old is TaskState.none
        ran_empty = new is TaskState.success and after[name].try_number == 0
        if old not in WAITING:
            continue
        upstream = [after[up].state for up in scenario.upstream(name)]
        if began or ran_empty:
            assert rule_holds(scenario.rule(name), upstream), (
                f"{name} started with {scenario.rule(name).value} over {[s.value for s in upstream]}"
            )
        if new in (TaskState.skipped, TaskState.upstream_failed) and (after[name].message or "").startswith(
            "trigger rule"
        ):
            assert not could_still_hold(scenario.rule(name), upstream), (
                f"{name} {new.value} too early: {scenario.rule(name).value} over {[s.value for s in upstream]}"
            )

    def waiting(name: str) -> bool:
        """Waiting before the call, and not launched by a decision whose status write was lost."""
        seen = given.attempts.get(name)
        return before[name].state in WAITING and (seen is None or seen.try_number <= before[name].try_number)

    # A branch or short-circuit task that just succeeded skips what it did not choose.
    for name in scenario.names:
        attempt = given.attempts.get(name)
        if (
            before.get(name) is None
            or before[name].state is TaskState.success
            or after[name].state is not TaskState.success
        ):
            continue
        if not (scenario.branch(name) or scenario.short_circuit(name)):
            continue
        assert attempt is not None
        if scenario.short_circuit(name) and is_falsy(attempt.xcom):
            for descendant in scenario.descendants(name):
                if waiting(descendant):
                    assert after[descendant].state is TaskState.skipped
        if scenario.branch(name):
            chosen = branch_targets(attempt.xcom)
            for child in scenario.downstream(name):
                if child not in chosen and waiting(child):
                    assert after[child].state is TaskState.skipped


def simulate(scenario: Scenario) -> tuple[Shell, int]:
    shell = Shell(scenario)
    limit = 20 + len(scenario.names) * MAX_TRIES * (TIMEOUT_SECONDS + 6) + len(scenario.lost_writes)
    for step in range(limit):
        given = shell.input()
        decision = decide(given)
        check_decision(scenario, given, decision)
        if step not in scenario.lost_writes:
            shell.status = decision.status
        for stop in decision.stop:
            shell.kill(stop.task, stop.try_number)
        for start in decision.start:
            shell.launch(start.task, start.try_number)
        if decision.finished and step not in scenario.lost_writes:
            return shell, step
        if not decision.start and not shell.live and not decision.finished:
            assert decision.wake_at is not None, (
                "the engine waits for nothing: no try runs and no timer is set"
            )
            shell.now = max(shell.now + timedelta(seconds=1), decision.wake_at or shell.now)
        else:
            shell.now += timedelta(seconds=1)
            shell.progress()
    raise AssertionError(f"the run did not finish within {limit} steps")


PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(scenarios())
def test_every_run_terminates_with_airflows_run_state(scenario: Scenario) -> None:
    shell, _ = simulate(scenario)
    status = shell.status
    assert all(task.state in FINISHED_TASK_STATES for task in status.tasks.values())
    leaves_failed = any(
        status.tasks[leaf].state in (TaskState.failed, TaskState.upstream_failed)
        for leaf in scenario.leaves()
    )
    assert status.state is (RunState.failed if leaves_failed else RunState.success)
    assert status.tasks_summary == f"{len(scenario.names)}/{len(scenario.names)}"


@PROPERTY_SETTINGS
@given(scenarios())
def test_tries_are_numbered_one_by_one_and_bounded_by_retries(scenario: Scenario) -> None:
    shell, _ = simulate(scenario)
    for task in scenario.spec.tasks:
        launched = shell.launched.get(task.name, [])
        assert launched == list(range(1, len(launched) + 1))
        assert len(launched) <= (task.retries or 0) + 1
        final = shell.status.tasks[task.name]
        if final.state is TaskState.success and task.type is None:
            assert final.try_number == len(launched) >= 1
