"""The one loop (core.loop) over a fake port, and the run states decided outside a pass.

Boundary: core.loop and core.engine as the shells call them; the port is a fake
that records what it was asked and answers from a script (which launches end at
once, what is observed). The real ports are tested with their shells
(test_local_runner: processes; test_run_controller: Pods over a fake API server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import DAGRunStatus, RunState, TaskInstanceStatus, TaskState
from kubeflowlite.core import engine, loop, runstatus, sensor
from kubeflowlite.core.engine import Attempt, AttemptPhase, StartTry, StopTry
from kubeflowlite.core.schedule import Schedule

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def spec(*tasks: dict[str, Any], **fields: Any) -> DAGSpec:
    return DAGSpec.model_validate({"tasks": list(tasks), **fields})


@dataclass
class FakeTries:
    """A port: `observed` is what observe answers; `fail_at_once` tasks end failed on launch."""

    observed: dict[str, Attempt] = field(default_factory=dict)
    fail_at_once: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    launched: list[StartTry] = field(default_factory=list)
    stopped: list[StopTry] = field(default_factory=list)

    def observe(self) -> Mapping[str, Attempt]:
        self.calls.append("observe")
        return dict(self.observed)

    def launch(self, starts: Sequence[StartTry]) -> Mapping[str, Attempt]:
        self.calls.append("launch " + ",".join(f"{s.task}#{s.try_number}" for s in starts))
        self.launched.extend(starts)
        return {
            s.task: Attempt(s.task, s.try_number, AttemptPhase.failed, NOW, NOW, message="refused")
            for s in starts
            if s.task in self.fail_at_once
        }

    def stop(self, stops: Sequence[StopTry]) -> None:
        self.calls.append("stop " + ",".join(s.task for s in stops))
        self.stopped.extend(stops)


@dataclass
class AsyncTries:
    """A synchronous fake port, awaited."""

    tries: loop.Launcher

    async def observe(self) -> Mapping[str, Attempt]:
        return self.tries.observe()

    async def launch(self, starts: Sequence[StartTry]) -> Mapping[str, Attempt]:
        return self.tries.launch(starts)

    async def stop(self, stops: Sequence[StopTry]) -> None:
        self.tries.stop(stops)


class TestOnePass:
    def test_observe_decide_launch_in_that_order(self) -> None:
        dag = spec({"name": "a", "bash": "true"}, {"name": "b", "bash": "true", "dependsOn": ["a"]})
        tries = FakeTries()
        outcome = loop.run_pass(loop.Ask(dag=dag, status=DAGRunStatus(), now=NOW), tries)
        assert tries.calls == ["observe", "launch a#1"]
        assert outcome.launched
        assert outcome.decision.status.tasks["a"].state is TaskState.queued
        assert outcome.decision.status.tasks["b"].state is TaskState.none

    def test_an_immediate_failure_is_decided_again_in_the_same_pass(self) -> None:
        # a fails at once (no retries): b's trigger rule (all_failed) lets it run, in this very pass.
        dag = spec(
            {"name": "a", "bash": "true", "retries": 0},
            {"name": "b", "bash": "true", "dependsOn": ["a"], "triggerRule": "all_failed"},
        )
        tries = FakeTries(fail_at_once={"a"})
        outcome = loop.run_pass(loop.Ask(dag=dag, status=DAGRunStatus(), now=NOW), tries)
        assert tries.calls == ["observe", "launch a#1", "launch b#1"]
        tasks = outcome.decision.status.tasks
        assert tasks["a"].state is TaskState.failed and tasks["a"].message == "refused"
        assert tasks["b"].state is TaskState.queued
        assert outcome.attempts["a"].phase is AttemptPhase.failed

    def test_a_pass_whose_launches_all_end_at_once_launched_nothing_that_runs(self) -> None:
        dag = spec({"name": "a", "bash": "true", "retries": 0})
        outcome = loop.run_pass(
            loop.Ask(dag=dag, status=DAGRunStatus(), now=NOW), FakeTries(fail_at_once={"a"})
        )
        assert not outcome.launched and outcome.decision.status.state is RunState.failed

    def test_a_try_past_its_timeout_is_stopped_after_the_launches(self) -> None:
        dag = spec({"name": "slow", "bash": "sleep 1", "executionTimeout": "10s", "retries": 0})
        first = loop.run_pass(loop.Ask(dag=dag, status=DAGRunStatus(), now=NOW), FakeTries())
        running = Attempt("slow", 1, AttemptPhase.running, NOW)
        tries = FakeTries(observed={"slow": running})
        later = NOW + timedelta(seconds=11)
        outcome = loop.run_pass(loop.Ask(dag=dag, status=first.decision.status, now=later), tries)
        assert tries.calls == ["observe", "stop slow"]
        assert tries.stopped[0].try_number == 1 and "timeout" in tries.stopped[0].reason
        assert outcome.decision.status.tasks["slow"].state is TaskState.failed

    def test_the_async_driver_makes_the_same_requests(self) -> None:
        dag = spec(
            {"name": "a", "bash": "true", "retries": 0},
            {"name": "b", "bash": "true", "dependsOn": ["a"], "triggerRule": "all_done"},
        )
        sync, asynchronous = FakeTries(fail_at_once={"a"}), FakeTries(fail_at_once={"a"})
        ask = loop.Ask(dag=dag, status=DAGRunStatus(), now=NOW, remember=False)
        one = loop.run_pass(ask, sync)
        other = asyncio.run(loop.run_pass_async(ask, AsyncTries(asynchronous)))
        assert sync.calls == asynchronous.calls
        assert one.decision.status == other.decision.status

    def test_unchanged_attempts_are_not_named_to_the_engine(self) -> None:
        attempt = Attempt("a", 1, AttemptPhase.running, NOW)
        changed = loop._changed({"a": attempt, "gone": attempt}, {"a": attempt, "b": attempt})
        assert changed == ["b", "gone"]
        assert loop._changed(None, {"a": attempt}) is None


@st.composite
def run_states(draw: st.DrawFn) -> tuple[DAGSpec, DAGRunStatus, dict[str, Attempt]]:
    """A DAG of up to 6 tasks, each at some state and try, some with an observed attempt."""
    count = draw(st.integers(1, 6))
    names = [f"t{i}" for i in range(count)]
    dag = spec(*({"name": name, "bash": "true"} for name in names))
    tasks, attempts = {}, {}
    for name in names:
        state = draw(st.sampled_from(list(TaskState)))
        number = draw(st.integers(0, 3))
        tasks[name] = TaskInstanceStatus(state=state, try_number=number)
        if number and draw(st.booleans()):
            tried = draw(st.integers(1, number + 1))
            phase = draw(st.sampled_from(list(AttemptPhase)))
            attempts[name] = Attempt(name, tried, phase, NOW - timedelta(minutes=1))
    return dag, DAGRunStatus(state=RunState.running, start_time="2024-05-01T11:00:00Z", tasks=tasks), attempts


class TestInterrupted:
    @given(run_states())
    def test_the_run_fails_finished_tasks_keep_their_state_and_nothing_is_left_in_flight(
        self, drawn: tuple[DAGSpec, DAGRunStatus, dict[str, Attempt]]
    ) -> None:
        dag, status, attempts = drawn
        final = engine.interrupted(dag, status, attempts, now=NOW)
        assert final.state is RunState.failed and final.end_time == datetime(2024, 5, 1, 12, tzinfo=UTC)
        for task, before in status.tasks.items():
            after = final.tasks[task]
            if before.state.finished:
                assert after == before
            else:
                assert after.state in (TaskState.failed, TaskState.none)
                assert engine.INTERRUPTED in (after.message or "")
                assert after.state is TaskState.none or after.next_try_at is None
        finished = sum(1 for t in final.tasks.values() if t.state.finished)
        assert final.tasks_summary == f"{finished}/{len(dag.tasks)}"

    def test_a_running_try_fails_with_its_observed_times(self) -> None:
        dag = spec(
            {"name": "a", "bash": "true"}, {"name": "b", "bash": "true"}, {"name": "c", "bash": "true"}
        )
        status = DAGRunStatus(
            state=RunState.running,
            tasks={
                "a": TaskInstanceStatus(state=TaskState.running, try_number=1),
                "b": TaskInstanceStatus(state=TaskState.up_for_retry, try_number=1),
                "c": TaskInstanceStatus(),
            },
        )
        killed = Attempt("a", 1, AttemptPhase.failed, NOW - timedelta(seconds=5), NOW, exit_code=-15)
        final = engine.interrupted(dag, status, {"a": killed}, now=NOW)
        assert final.tasks["a"].state is TaskState.failed and final.tasks["a"].exit_code == -15
        assert final.tasks["a"].start_time == datetime(2024, 5, 1, 11, 59, 55, tzinfo=UTC)
        assert final.tasks["b"].message == "run interrupted before the next try"
        assert final.tasks["c"].state is TaskState.none
        assert final.tasks["c"].message == "run interrupted before the task started"


class TestStalled:
    def decision(self, **fields: Any) -> engine.Decision:
        return engine.Decision(status=DAGRunStatus(state=RunState.running), **fields)

    def test_nothing_alive_nothing_to_start_nothing_due_is_stalled(self) -> None:
        done = Attempt("a", 1, AttemptPhase.succeeded, NOW, NOW)
        assert engine.stalled(self.decision(), {"a": done})

    def test_a_live_try_a_start_or_a_wake_up_is_progress(self) -> None:
        alive = Attempt("a", 1, AttemptPhase.pending, NOW)
        assert not engine.stalled(self.decision(), {"a": alive})
        assert not engine.stalled(self.decision(start=[StartTry("a", 1)]), {})
        assert not engine.stalled(self.decision(wake_at=NOW), {})
        assert not engine.stalled(engine.Decision(status=DAGRunStatus(state=RunState.success)), {})

    def test_a_depends_on_past_run_after_a_failed_one_is_stalled_and_then_failed(self) -> None:
        dag = spec({"name": "a", "bash": "true", "dependsOnPast": True})
        outcome = loop.run_pass(
            loop.Ask(dag=dag, status=DAGRunStatus(), now=NOW, previous_run={"a": TaskState.failed}),
            FakeTries(),
        )
        assert engine.stalled(outcome.decision, outcome.attempts)
        reasons = engine.waiting_reasons(outcome.decision.status)
        assert reasons and reasons[0].startswith("a: ")
        final = engine.stalled_status(outcome.decision.status, now=NOW)
        assert final.state is RunState.failed and final.tasks == outcome.decision.status.tasks


class TestHeld:
    def test_a_hold_is_written_once_and_a_new_reason_replaces_it(self) -> None:
        first = engine.held(DAGRunStatus(), runstatus.Hold("DAGPaused", "paused"), now=NOW)
        assert first is not None and first.state is RunState.queued
        (condition,) = first.conditions
        assert (condition.type, condition.status, condition.reason) == ("Admitted", "False", "DAGPaused")
        assert engine.held(first, runstatus.Hold("DAGPaused", "paused"), now=NOW + timedelta(1)) is None
        other = engine.held(first, runstatus.Hold("MaxActiveRuns", "waiting"), now=NOW + timedelta(1))
        assert other is not None and other.conditions[0].reason == "MaxActiveRuns"
        assert other.conditions[0].last_transition_time == condition.last_transition_time  # still False


class TestDecoration:
    def test_the_operator_adds_pod_names_and_admitted_and_both_add_the_run_facts(self) -> None:
        dag = spec({"name": "a", "bash": "true"})
        interval = Schedule.from_spec(dag).interval_for(NOW)
        status = DAGRunStatus(
            state=RunState.running,
            start_time="2024-05-01T11:00:00Z",
            tasks={"a": TaskInstanceStatus(state=TaskState.running, try_number=2)},
        )
        local = runstatus.decorated(status, spec=dag, interval=interval, now=NOW)
        operator = runstatus.decorated(
            status, spec=dag, interval=interval, now=NOW, pod_name=lambda t, n: f"{t}-{n}", admitted=True
        )
        assert local.duration == operator.duration == "1h"
        assert local.dag_spec == operator.dag_spec == dag
        assert local.tasks["a"].pod_name is None and not local.conditions
        assert operator.tasks["a"].pod_name == "a-2"
        assert [c.type for c in operator.conditions] == ["Admitted"]


class TestSensorRule:
    started = NOW

    def poke(self, states: list[str | None], now: datetime) -> sensor.Poke:
        return sensor.poke(
            states,
            what="up.load",
            target=datetime(2024, 4, 30, tzinfo=UTC),
            allowed={"success", "skipped"},
            failed={"failed"},
            timeout="1h",
            poke_interval="30s",
            started=self.started,
            now=now,
        )

    @given(
        st.lists(st.sampled_from(["success", "skipped", "failed", "running", None]), max_size=4),
        st.integers(0, 7200),
    )
    def test_allowed_wins_then_failed_then_the_timeout(self, states: list[str | None], seconds: int) -> None:
        now = self.started + timedelta(seconds=seconds)
        found = self.poke(states, now)
        if any(s in ("success", "skipped") for s in states):
            assert found.phase is AttemptPhase.succeeded
        elif "failed" in states:
            assert found.phase is AttemptPhase.failed and "failed states" in found.message
        elif seconds >= 3600:
            assert found.phase is AttemptPhase.failed and found.message.startswith(
                "sensor timed out after 1h"
            )
        else:
            assert found.phase is AttemptPhase.running
            assert found.wake_at == min(now + timedelta(seconds=30), self.started + timedelta(hours=1))

    def test_messages_name_the_watched_run(self) -> None:
        assert self.poke(["success"], NOW).message == "up.load at 2024-04-30T00:00:00Z is success"
        waiting = self.poke([], NOW).message
        assert (
            waiting == "waiting for up.load at 2024-04-30T00:00:00Z to be skipped/success (now: no run yet)"
        )


@dataclass
class Simulated:
    """A port whose tries succeed by the next observe, except those refused at launch."""

    refused: set[str]
    done: dict[str, Attempt] = field(default_factory=dict)
    pending: list[StartTry] = field(default_factory=list)

    def observe(self) -> Mapping[str, Attempt]:
        for start in self.pending:
            self.done[start.task] = Attempt(start.task, start.try_number, AttemptPhase.succeeded, NOW, NOW)
        self.pending = []
        return dict(self.done)

    def launch(self, starts: Sequence[StartTry]) -> Mapping[str, Attempt]:
        immediate = {}
        for start in starts:
            if start.task in self.refused and start.try_number == 1:
                immediate[start.task] = Attempt(
                    start.task, 1, AttemptPhase.failed, NOW, NOW, message="refused"
                )
                self.done[start.task] = immediate[start.task]
            else:
                self.pending.append(start)
        return immediate

    def stop(self, stops: Sequence[StopTry]) -> None:
        raise AssertionError(f"nothing runs long enough to be stopped: {stops}")


@given(
    st.integers(2, 8),
    st.sets(st.integers(0, 7)),
    st.sampled_from(["all_success", "all_done", "one_failed"]),
    st.integers(1, 4),
)
def test_the_loop_with_and_without_the_engines_memory_decides_alike(
    size: int, refused: set[int], rule: str, slots: int
) -> None:
    """Passes of a shell that keeps the engine's memory (local) and of one that does not (operator)
    give the same status at every pass, immediate refusals and retries included."""
    tasks = [{"name": "t0", "bash": "true", "retries": 1, "retryDelay": "0s"}]
    tasks += [
        {
            "name": f"t{i}",
            "bash": "true",
            "dependsOn": [f"t{i - 1}"],
            "triggerRule": rule,
            "retries": 1,
            "retryDelay": "0s",
        }
        for i in range(1, size)
    ]
    dag = spec(*tasks, maxActiveTasks=slots)
    refused_names = {f"t{i}" for i in refused if i < size}
    local, operator = Simulated(set(refused_names)), Simulated(set(refused_names))
    local_status = operator_status = DAGRunStatus()
    seen: Mapping[str, Attempt] | None = {}
    for _ in range(4 * size + 4):
        mine = loop.run_pass(loop.Ask(dag=dag, status=local_status, now=NOW, seen=seen), local)
        theirs = asyncio.run(
            loop.run_pass_async(
                loop.Ask(dag=dag, status=operator_status, now=NOW, remember=False), AsyncTries(operator)
            )
        )
        assert mine.decision.status == theirs.decision.status
        local_status, operator_status, seen = mine.decision.status, theirs.decision.status, mine.attempts
        if local_status.state.finished:
            break
    assert local_status.state.finished
    for name in refused_names:  # a refused first try was retried (retries: 1) and the retry succeeded
        instance = local_status.tasks[name]
        assert instance.try_number == 0 or (instance.try_number, instance.state) == (2, TaskState.success)
