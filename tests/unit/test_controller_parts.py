"""The operator's other pure parts: scheduling plans, inline tasks, launching, the XCom store's rules, the queue."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeflowlite.api.dag import DAGSpec, ExternalTaskSensor, TriggerDag
from kubeflowlite.core.engine import NO_XCOM, Attempt, AttemptPhase
from kubeflowlite.core.schedule import RunInterval
from kubeflowlite.k8s import dag_controller, inline_tasks, launch, names, taskscript, xcom_store
from kubeflowlite.k8s.workqueue import BACKOFF_BASE, CONTINUE, WorkQueue

DAY = datetime(2020, 1, 1, tzinfo=UTC)


def spec(**fields: Any) -> DAGSpec:
    return DAGSpec.model_validate({"tasks": [{"name": "t", "bash": "true"}], **fields})


def scheduled(day: int, state: str = "success") -> dict[str, Any]:
    date = f"2020-01-{day:02d}T00:00:00Z"
    return {
        "metadata": {"name": f"r{day}"},
        "spec": {"logicalDate": date, "runType": "scheduled"},
        "status": {"state": state},
    }


DAILY = {"schedule": "@daily", "startDate": "2020-01-01T00:00:00Z", "endDate": "2020-01-05T00:00:00Z"}
LATER = datetime(2024, 1, 1, tzinfo=UTC)


class TestSchedulePlan:
    def test_catchup_creates_every_due_interval_oldest_first(self) -> None:
        plan = dag_controller.plan_schedule(spec(catchup=True, **DAILY), [], next_run=None, now=LATER)
        assert [i.logical_date.day for i in plan.create] == [1, 2, 3, 4, 5]
        assert plan.next_run is None and plan.wake_at is None

    def test_existing_runs_are_not_created_again(self) -> None:
        plan = dag_controller.plan_schedule(
            spec(catchup=True, **DAILY), [scheduled(1), scheduled(2)], next_run=None, now=LATER
        )
        assert [i.logical_date.day for i in plan.create] == [3, 4, 5]

    def test_max_active_runs_caps_creation_and_next_run_names_the_first_waiting(self) -> None:
        plan = dag_controller.plan_schedule(
            spec(catchup=True, maxActiveRuns=2, **DAILY), [scheduled(1, "running")], next_run=None, now=LATER
        )
        assert [i.logical_date.day for i in plan.create] == [2]
        assert plan.next_run == datetime(2020, 1, 3, tzinfo=UTC) and plan.wake_at is None

    def test_next_run_remembers_runs_deleted_by_history_limits(self) -> None:
        plan = dag_controller.plan_schedule(
            spec(catchup=True, **DAILY), [scheduled(5)], next_run=datetime(2020, 1, 5, tzinfo=UTC), now=LATER
        )
        assert plan.create == []

    def test_a_future_interval_sets_the_wake_up(self) -> None:
        now = datetime(2020, 1, 2, 12, tzinfo=UTC)
        plan = dag_controller.plan_schedule(
            spec(catchup=True, **DAILY), [scheduled(1)], next_run=None, now=now
        )
        assert plan.create == []
        assert plan.next_run == datetime(2020, 1, 2, tzinfo=UTC)
        assert plan.wake_at == datetime(2020, 1, 3, tzinfo=UTC)

    def test_without_catchup_only_the_latest_interval(self) -> None:
        now = datetime(2020, 1, 3, 12, tzinfo=UTC)
        plan = dag_controller.plan_schedule(spec(catchup=False, **DAILY), [], next_run=None, now=now)
        assert [i.logical_date.day for i in plan.create] == [2]
        assert plan.next_run == datetime(2020, 1, 3, tzinfo=UTC)


def test_history_limits_delete_the_oldest_finished_runs() -> None:
    runs = [scheduled(d) for d in (3, 1, 2)] + [scheduled(4, "failed"), scheduled(5, "running")]
    assert dag_controller.runs_over_limits(runs, successful=1, failed=None) == ["r1", "r2"]
    assert dag_controller.runs_over_limits(runs, successful=None, failed=0) == ["r4"]
    assert dag_controller.runs_over_limits(runs, successful=None, failed=None) == []


def test_ready_condition_and_run_manifest() -> None:
    assert dag_controller.ready_condition(None, generation=3).status == "True"
    bad = dag_controller.ready_condition("spec.tasks[0]: cycle", generation=4)
    assert (bad.status, bad.reason, bad.observed_generation) == ("False", "InvalidDAG", 4)
    dag = {"metadata": {"name": "etl", "uid": "u1"}}
    interval = RunInterval(DAY, DAY, DAY + timedelta(days=1))
    manifest = dag_controller.run_manifest(
        namespace="ns", dag=dag, interval=interval, run_type=dag_controller.RunType.scheduled
    )
    assert manifest["metadata"]["name"] == "etl-scheduled-20200101t000000"
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert manifest["spec"] == {
        "dagName": "etl",
        "logicalDate": "2020-01-01T00:00:00Z",
        "runType": "scheduled",
    }


class TestSensor:
    sensor = ExternalTaskSensor(dag="up", task="load", offset="-1d", poke_interval="30s", timeout="1h")
    started = datetime(2020, 1, 2, 0, 5, tzinfo=UTC)

    def poke(self, runs: list[dict[str, Any]], now: datetime) -> inline_tasks.Outcome:
        return inline_tasks.poke(
            self.sensor,
            task="wait",
            try_number=1,
            logical_date=datetime(2020, 1, 2, tzinfo=UTC),
            started=self.started,
            runs=runs,
            now=now,
        )

    def watched(self, state: str, date: str = "2020-01-01T00:00:00Z") -> dict[str, Any]:
        return {
            "spec": {"logicalDate": date},
            "status": {"state": "running", "tasks": {"load": {"state": state}}},
        }

    def test_waits_and_asks_to_be_woken_at_the_poke_interval(self) -> None:
        now = self.started + timedelta(minutes=1)
        outcome = self.poke([self.watched("running"), self.watched("success", "2020-01-02T00:00:00Z")], now)
        assert outcome.attempt.phase is AttemptPhase.running
        assert outcome.wake_at == now + timedelta(seconds=30)

    def test_succeeds_on_an_allowed_state_and_fails_on_a_failed_one(self) -> None:
        now = self.started + timedelta(minutes=1)
        assert self.poke([self.watched("success")], now).attempt.phase is AttemptPhase.succeeded
        failed = self.poke([self.watched("failed")], now).attempt
        assert failed.phase is AttemptPhase.failed and "failed states" in (failed.message or "")

    def test_times_out(self) -> None:
        outcome = self.poke([], self.started + timedelta(hours=1))
        assert outcome.attempt.phase is AttemptPhase.failed
        assert "timed out after 1h" in (outcome.attempt.message or "")


def facts(**fields: Any) -> launch.RunFacts:
    dag_spec = DAGSpec.model_validate(
        {
            "tasks": [
                {"name": "push", "bash": "echo"},
                {
                    "name": "pull",
                    "bash": "echo {{ ti.xcom_pull(task_ids='push') }}",
                    "dependsOn": ["push"],
                    "pod": {"metadata": {"annotations": {"try": "{{ ti.try_number }}", "fixed": "x"}}},
                },
                {"name": "broken", "bash": "{{ nope.nothing }}"},
            ],
            **fields,
        }
    )
    return launch.RunFacts(
        namespace="ns",
        run_name="etl-manual-20200101t000000",
        run_uid="uid-1",
        dag_name="etl",
        spec=dag_spec,
        interval=RunInterval(DAY, DAY, DAY),
        run_type="manual",
    )


class TestLaunch:
    def test_a_pod_renders_xcom_values_and_templated_annotations(self) -> None:
        manifest = launch.pod_for_try(facts(), "pull", 2, xcoms={"push": '{"rows": 3}'}, now=DAY)
        assert isinstance(manifest, dict)
        assert manifest["spec"]["containers"][0]["command"] == taskscript.bash_command("echo {'rows': 3}")
        assert manifest["metadata"]["annotations"]["try"] == "2"
        assert manifest["metadata"]["annotations"]["fixed"] == "x"
        assert manifest["metadata"]["name"] == names.pod_name("etl-manual-20200101t000000", "pull", 2)

    def test_a_template_error_is_a_failed_try_without_a_pod(self) -> None:
        attempt = launch.pod_for_try(facts(), "broken", 1, xcoms={}, now=DAY)
        assert isinstance(attempt, Attempt)
        assert attempt.phase is AttemptPhase.failed and "template error" in (attempt.message or "")

    def test_run_id_is_airflows(self) -> None:
        assert facts().run_id.startswith("manual__2020-01-01")


class TestTriggerDag:
    def test_plan_renders_conf_and_date_into_a_deterministic_run(self) -> None:
        trigger = TriggerDag(
            dag="target", conf={"day": "{{ ds }}", "n": 3}, logical_date="{{ macros.ds_add(ds, 1) }}"
        )
        plan = inline_tasks.trigger_plan(
            trigger, facts=facts(), task=facts().task("push"), try_number=1, xcoms={}
        )
        assert plan.name == names.dagrun_name("target", datetime(2020, 1, 2, tzinfo=UTC), "manual")
        assert plan.manifest["spec"] == {
            "dagName": "target",
            "logicalDate": "2020-01-02T00:00:00Z",
            "conf": {"day": "2020-01-01", "n": 3},
            "runType": "manual",
        }
        assert (
            plan.manifest["metadata"]["annotations"][inline_tasks.ANNOTATION_TRIGGERED_BY]
            == "ns/etl-manual-20200101t000000/push"
        )
        assert "ownerReferences" not in plan.manifest["metadata"]  # the target DAG is not known

    def test_the_run_is_owned_by_the_dag_it_triggers(self) -> None:
        """Every creator of runs (scheduler, CLI, triggerDag) builds them with run_manifest."""
        target = {"metadata": {"name": "target", "uid": "u-target"}}
        plan = inline_tasks.trigger_plan(
            TriggerDag(dag="target"),
            facts=facts(),
            task=facts().task("push"),
            try_number=1,
            xcoms={},
            target=target,
        )
        assert plan.manifest["metadata"]["ownerReferences"] == [
            {"apiVersion": "kubeflowlite.io/v1alpha1", "kind": "DAG", "name": "target", "uid": "u-target"}
        ]

    def test_outcome_without_waiting_is_success_with_the_run_name_as_xcom(self) -> None:
        outcome = inline_tasks.trigger_outcome(
            TriggerDag(dag="t"), task="k", try_number=1, started=DAY, run_name="t-run", run=None, now=DAY
        )
        assert outcome.attempt.phase is AttemptPhase.succeeded and outcome.attempt.xcom == "t-run"

    @pytest.mark.parametrize(
        ("state", "phase"),
        [
            (None, AttemptPhase.running),
            ("running", AttemptPhase.running),
            ("success", AttemptPhase.succeeded),
            ("failed", AttemptPhase.failed),
        ],
    )
    def test_outcome_when_waiting_follows_the_triggered_run(
        self, state: str | None, phase: AttemptPhase
    ) -> None:
        run = None if state is None else {"status": {"state": state}}
        trigger = TriggerDag(dag="t", wait_for_completion=True, poke_interval="5s")
        outcome = inline_tasks.trigger_outcome(
            trigger, task="k", try_number=1, started=DAY, run_name="t-run", run=run, now=DAY
        )
        assert outcome.attempt.phase is phase
        if phase is AttemptPhase.running:
            assert outcome.wake_at == DAY + timedelta(seconds=5)


class TestXComRules:
    def attempt(self, value: Any, phase: AttemptPhase = AttemptPhase.succeeded) -> Attempt:
        return Attempt(task="t", try_number=1, phase=phase, xcom=value)

    def test_only_new_or_changed_values_are_stored(self) -> None:
        attempts = {
            "a": self.attempt({"x": 1}),
            "b": self.attempt("same"),
            "c": self.attempt(NO_XCOM),
            "d": self.attempt(1, AttemptPhase.running),
        }
        assert xcom_store.values_to_store(attempts, {"b": '"same"'}) == {"a": '{"x":1}'}

    def test_a_value_that_cannot_be_stored_fails_the_attempt(self) -> None:
        checked = xcom_store.checked_attempts({"a": self.attempt("x" * 5000)})
        assert checked["a"].phase is AttemptPhase.failed and "4096-byte limit" in (checked["a"].message or "")

    def test_decode_reads_one_value_or_a_list(self) -> None:
        stored = {"a": '{"x":1}', "b": "2"}
        assert xcom_store.decode(stored, "a") == {"x": 1}
        assert xcom_store.decode(stored, ["a", "missing", "b"]) == [{"x": 1}, None, 2]
        assert xcom_store.decode(stored, None) is None

    def test_the_configmap_is_owned_and_labelled(self) -> None:
        manifest = xcom_store.configmap_manifest(
            run_name="r", run_uid="u", namespace="ns", dag_name="d", data={"a": "1"}
        )
        assert manifest["metadata"]["name"] == "r-xcom"
        assert manifest["metadata"]["labels"][names.LABEL_RUN] == "r"
        assert manifest["metadata"]["ownerReferences"][0]["uid"] == "u"


class FakeClock:
    """Time that moves only when the test advances it: the work queue's clock and its timer wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self._moved = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def wait(self, event: asyncio.Event, timeout: float | None) -> None:
        deadline = None if timeout is None else self.now + timeout
        while not event.is_set() and (deadline is None or self.now < deadline):
            self._moved = moved = asyncio.Event()
            waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(moved.wait())]
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        self._moved.set()
        await settle()


async def settle() -> None:
    """Let every ready task run until nothing is left to do (no wall-clock time passes)."""
    for _ in range(100):
        await asyncio.sleep(0)


class TestWorkQueue:
    """The queue on a fake clock: no test here waits for wall-clock time."""

    def test_keys_are_deduplicated_and_never_reconciled_twice_at_once(self) -> None:
        seen: list[Hashable] = []
        running: set[Hashable] = set()
        overlaps: list[Hashable] = []
        gate = asyncio.Event()

        async def handler(key: Hashable) -> float | None:
            if key in running:
                overlaps.append(key)
            running.add(key)
            seen.append(key)
            await gate.wait()
            running.discard(key)
            return None

        async def scenario() -> None:
            clock = FakeClock()
            queue = WorkQueue(handler, workers=4, clock=clock, wait=clock.wait)
            queue.start()
            for _ in range(5):
                queue.add("a")
            queue.add("b")
            await settle()
            assert sorted(seen) == ["a", "b"]  # five adds of "a": one reconcile
            queue.add("a")  # while "a" is being reconciled: once more afterwards, not now
            await settle()
            assert sorted(seen) == ["a", "b"] and queue.busy
            gate.set()
            await settle()
            assert sorted(seen) == ["a", "a", "b"] and not queue.busy
            await queue.stop()

        asyncio.run(scenario())
        assert overlaps == []

    def test_a_requested_delay_is_a_timer_and_the_earliest_timer_wins(self) -> None:
        calls: list[tuple[str, float]] = []

        async def scenario() -> None:
            clock = FakeClock()

            async def handler(key: Hashable) -> float | None:
                calls.append((str(key), clock.now))
                return 5.0 if key == "timer" and len(calls) == 1 else None

            queue = WorkQueue(handler, workers=2, clock=clock, wait=clock.wait)
            queue.start()
            queue.add("timer")
            await settle()
            await clock.advance(4.9)
            assert calls == [("timer", 0.0)]
            await clock.advance(0.1)
            assert calls == [("timer", 0.0), ("timer", 5.0)]
            queue.add_after("k", 10)
            queue.add_after("k", 3)  # earlier: replaces the 10 s timer
            queue.add_after("k", 7)  # later than the one set: ignored
            await clock.advance(3)
            await clock.advance(20)
            assert calls[2:] == [("k", 8.0)] and queue.timer("k") is None
            await queue.stop()

        asyncio.run(scenario())

    def test_a_costly_reconcile_batches_the_events_that_arrive_after_it(self) -> None:
        calls: list[tuple[str, float]] = []

        async def scenario() -> None:
            clock = FakeClock()

            async def handler(key: Hashable) -> float | None:
                calls.append((str(key), clock.now))
                if key == "big":
                    clock.now += 0.5  # its reconcile cost half a second
                return None

            queue = WorkQueue(handler, workers=2, clock=clock, wait=clock.wait, cost_clock=clock, spacing=1.0)
            queue.start()
            queue.add("big")
            await settle()
            for _ in range(3):  # Pod events right after it ended
                queue.add("big")
            queue.add("small")
            await settle()
            assert calls == [("big", 0.0), ("small", 0.5)], "the small run goes at once, the big one waits"
            await clock.advance(0.49)
            assert len(calls) == 2
            await clock.advance(0.01)
            assert calls[2:] == [("big", 1.0)], "one reconcile for the three events, as long after as it cost"
            await queue.stop()

        asyncio.run(scenario())

    def test_a_costly_reconcile_that_continues_goes_again_at_once_behind_the_waiting_keys(self) -> None:
        calls: list[tuple[str, float]] = []

        async def scenario() -> None:
            clock = FakeClock()

            async def handler(key: Hashable) -> float | None:
                calls.append((str(key), clock.now))
                if key == "wide":
                    clock.now += 0.5  # a launch pass: costly, with Pods left for the next one
                    return CONTINUE if len([c for c in calls if c[0] == "wide"]) < 3 else None
                return None

            queue = WorkQueue(handler, workers=1, clock=clock, wait=clock.wait, cost_clock=clock, spacing=4.0)
            queue.start()
            queue.add("wide")
            queue.add("small")
            await settle()
            # Not held back 4 x 0.5 s between its passes, and the small run waits for none of them
            # but the one already running when it was added.
            assert calls == [("wide", 0.0), ("small", 0.5), ("wide", 0.5), ("wide", 1.0)]
            queue.add("wide")  # an event after its last pass, which did not continue: spaced again
            await settle()
            assert len(calls) == 4
            await clock.advance(2.0)
            assert calls[4:] == [("wide", 3.5)]
            await queue.stop()

        asyncio.run(scenario())

    def test_a_failing_reconcile_is_retried_with_exponential_backoff(self) -> None:
        calls: list[float] = []
        errors: list[str] = []

        async def scenario() -> None:
            clock = FakeClock()

            async def handler(key: Hashable) -> float | None:
                calls.append(clock.now)
                if len(calls) < 3:
                    raise RuntimeError("transient")
                return None

            queue = WorkQueue(
                handler,
                workers=1,
                clock=clock,
                wait=clock.wait,
                on_error=lambda key, error: errors.append(str(error)),
            )
            queue.start()
            queue.add("boom")
            await settle()
            await clock.advance(BACKOFF_BASE - 0.01)
            assert calls == [0.0]
            await clock.advance(0.01)  # first retry after BACKOFF_BASE
            await clock.advance(2 * BACKOFF_BASE - 0.01)
            assert len(calls) == 2
            await clock.advance(0.01)  # then twice as long
            await clock.advance(100)
            assert len(calls) == 3 and errors == ["transient", "transient"]  # success: no more retries
            await queue.stop()

        asyncio.run(scenario())


def test_the_tls_read_buffer_the_operator_sets_is_the_one_asyncio_reads() -> None:
    """operator.TLS_READ_BUFFER is set as asyncio.sslproto.SSLProtocol.max_size, an attribute of
    asyncio's own module: if a Python release renamed it, the setting would silently do nothing
    (and each TLS connection would hold asyncio's 256 KiB again), so this fails instead."""
    import inspect
    from asyncio import sslproto

    from kubeflowlite.k8s import operator

    assert isinstance(vars(sslproto.SSLProtocol).get("max_size"), int)
    assert "self.max_size" in inspect.getsource(sslproto.SSLProtocol)
    assert 16 * 1024 <= operator.TLS_READ_BUFFER < 256 * 1024  # a TLS record, asyncio's default
