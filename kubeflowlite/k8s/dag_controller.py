"""The DAG reconcile: validate, schedule due runs, keep the DAG's status and run history.

One pass, level-triggered, computed from the DAG and its DAGRuns in the view:

1. Validate with the core's loader (every problem, with its path). The `Ready`
   condition says True, or False with reason InvalidDAG and the full message;
   an Event is posted only when the condition changes, and an invalid DAG is
   simply not scheduled: no exception, no retry loop.
2. Schedule (valid, unpaused DAGs with a schedule): the runs that are due (core
   schedule: catchup, startDate/endDate) are created oldest first while
   maxActiveRuns has room, each named `dagrun_name(dag, logical date, scheduled)`,
   so a restart re-creating one gets AlreadyExists, never a duplicate.
   `status.nextRun` is the scheduler's memory as well as a printer column: every
   scheduled interval before it has been created, so runs deleted by the history
   limits are never created again.
3. History: finished runs beyond successfulRunsHistoryLimit / failedRunsHistoryLimit
   are deleted, oldest logical date first (CronJob's rule).
4. Status: nextRun, lastRun (the most recently created run), lastRunState;
   written only when it differs. Runs of this DAG that have not started are
   queued for a look (the DAG changed, or a slot may have opened).

Returns when the next scheduled run becomes due (the work queue's timer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubeflowlite.api.dag import Condition, DAGSpec
from kubeflowlite.api.dagrun import RunType
from kubeflowlite.api.times import format_time, parse_time
from kubeflowlite.core import runstatus
from kubeflowlite.core.schedule import RunInterval, Schedule
from kubeflowlite.k8s import kube, names
from kubeflowlite.k8s import run_rules as rules
from kubeflowlite.k8s.run_controller import RunController, run_key
from kubeflowlite.k8s.run_manifest import dagrun_manifest
from kubeflowlite.k8s.view import ClusterView, Obj

logger = logging.getLogger(__name__)

CONDITION_READY = "Ready"


# --- pure decisions -------------------------------------------------------------------------------


def ready_condition(problem: str | None, *, generation: int | None) -> Condition:
    """Ready=True for a valid DAG, Ready=False/InvalidDAG with every problem otherwise."""
    if problem is None:
        return Condition(
            type=CONDITION_READY,
            status="True",
            reason="Valid",
            message="the DAG is valid",
            observed_generation=generation,
        )
    return Condition(
        type=CONDITION_READY,
        status="False",
        reason="InvalidDAG",
        message=problem,
        observed_generation=generation,
    )


def logical_date_of(run: Obj) -> datetime | None:
    try:
        return parse_time((run.get("spec") or {}).get("logicalDate") or "")
    except ValueError:
        return None


@dataclass(frozen=True)
class SchedulePlan:
    """What the scheduler does for one DAG now."""

    create: list[RunInterval]
    next_run: datetime | None
    """Logical date of the next scheduled run not created yet (status.nextRun)."""
    wake_at: datetime | None


def plan_schedule(
    spec: DAGSpec, runs: Iterable[Obj], *, next_run: datetime | None, now: datetime
) -> SchedulePlan:
    """The scheduled runs to create now, given the DAG's runs and its status.nextRun (pure).

    `next_run` is the scheduler's memory: intervals before it were handled earlier
    (their runs may since have been deleted by the history limits).
    """
    schedule = Schedule.from_spec(spec)
    runs = list(runs)
    scheduled = [
        date
        for run in runs
        if (run.get("spec") or {}).get("runType") == RunType.scheduled.value
        and (date := logical_date_of(run)) is not None
    ]
    last = max(scheduled) if scheduled else None
    due = schedule.due_runs(last, now)
    handled = [i for i in due if next_run is not None and i.logical_date < next_run]
    if handled:
        last = handled[-1].logical_date if last is None else max(last, handled[-1].logical_date)
        due = [i for i in due if i not in handled]
    active = sum(1 for run in runs if not rules.run_finished(run))
    create = due[: max(0, spec.max_active_runs - active)]
    if create:
        last = create[-1].logical_date if last is None else max(last, create[-1].logical_date)
    if len(due) > len(create):
        # More are due but maxActiveRuns is full: a finishing run wakes the DAG, no timer needed.
        return SchedulePlan(create=create, next_run=due[len(create)].logical_date, wake_at=None)
    wake = schedule.next_wakeup(last, now)
    if wake is None:
        return SchedulePlan(create=create, next_run=None, wake_at=None)
    upcoming = schedule.due_runs(last, wake)
    following = (upcoming[0] if spec.catchup else upcoming[-1]).logical_date if upcoming else None
    return SchedulePlan(create=create, next_run=following, wake_at=wake if wake > now else None)


def runs_over_limits(runs: Iterable[Obj], *, successful: int | None, failed: int | None) -> list[str]:
    """Names of finished runs beyond the history limits, oldest logical date first."""
    doomed: list[str] = []
    for state, limit in (("success", successful), ("failed", failed)):
        if limit is None:
            continue
        finished = [r for r in runs if (r.get("status") or {}).get("state") == state]
        finished.sort(key=lambda r: (logical_date_of(r) or datetime.min.replace(tzinfo=UTC), _name(r)))
        excess = len(finished) - limit
        doomed.extend(_name(r) for r in finished[: max(0, excess)])
    return doomed


def latest_run(runs: Iterable[Obj]) -> Obj | None:
    """The most recently created run (creation time, then logical date)."""
    return max(
        runs,
        key=lambda r: (
            str((r.get("metadata") or {}).get("creationTimestamp") or ""),
            str(logical_date_of(r)),
            _name(r),
        ),
        default=None,
    )


def run_manifest(*, namespace: str, dag: Obj, interval: RunInterval, run_type: RunType) -> dict[str, Any]:
    """A DAGRun of `dag` for `interval` with its deterministic name, owned by the DAG."""
    return dagrun_manifest(
        namespace=namespace, dag=dag, logical_date=interval.logical_date, run_type=run_type
    )


def _name(run: Obj) -> str:
    return str((run.get("metadata") or {}).get("name") or "")


# --- the reconcile --------------------------------------------------------------------------------


class DAGController:
    """Reconciles DAGs; shares the run controller's view of runs (its status memory included)."""

    def __init__(
        self,
        *,
        client: kube.Kube,
        view: ClusterView,
        runs: RunController,
        enqueue: Callable[[Hashable], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.view = view
        self.runs = runs
        self.enqueue = enqueue
        self.clock = clock

    async def reconcile(self, namespace: str, name: str) -> float | None:
        dag = self.view.dag(namespace, name)
        runs = self.runs.runs_of_dag(namespace, name)
        for run in runs:
            if not rules.run_started(run) or dag is None:
                self.enqueue(run_key(namespace, _name(run)))
        if dag is None or (dag.get("metadata") or {}).get("deletionTimestamp"):
            return None
        now = self.clock()
        metadata = dag.get("metadata") or {}
        status = dict(dag.get("status") or {})
        spec, problem = self.runs.dag_spec(dag)
        condition = ready_condition(problem, generation=metadata.get("generation"))
        await self._announce(dag, status, condition)

        plan = None
        if spec is not None and not spec.paused and spec.schedule:
            next_run_text = status.get("nextRun")
            plan = plan_schedule(
                spec, runs, next_run=parse_time(next_run_text) if next_run_text else None, now=now
            )
            for interval in plan.create:
                await self._create_run(namespace, dag, interval)
        if spec is not None:
            doomed = runs_over_limits(
                runs, successful=spec.successful_runs_history_limit, failed=spec.failed_runs_history_limit
            )
            for run_name in doomed:
                await self.client.delete(kube.DAGRUNS, namespace, run_name)

        latest = latest_run(runs)
        wanted = {
            "conditions": _conditions_wire(status.get("conditions") or [], condition, now),
            "observedGeneration": metadata.get("generation"),
            "lastRun": _name(latest) if latest is not None else None,
            "lastRunState": ((latest.get("status") or {}).get("state") or "queued")
            if latest is not None
            else None,
        }
        if plan is not None:
            wanted["nextRun"] = format_time(plan.next_run) if plan.next_run else None
            if plan.create:
                wanted["lastRun"] = names.dagrun_name(name, plan.create[-1].logical_date, RunType.scheduled)
                wanted["lastRunState"] = "queued"
        elif spec is not None and not spec.schedule:
            wanted["nextRun"] = None
        patch = {k: v for k, v in wanted.items() if status.get(k) != v}
        if patch:
            await self.client.patch(kube.DAGS, namespace, name, {"status": patch}, subresource="status")
        if plan is None or plan.wake_at is None:
            return None
        return max(0.0, (plan.wake_at - self.clock()).total_seconds())

    async def _announce(self, dag: Obj, status: dict[str, Any], condition: Condition) -> None:
        """Post an Event when the Ready condition changes (not on every reconcile)."""
        current = next((c for c in status.get("conditions") or [] if c.get("type") == CONDITION_READY), None)
        if current is not None and (current.get("status"), current.get("reason"), current.get("message")) == (
            condition.status,
            condition.reason,
            condition.message,
        ):
            return
        if condition.status == "True" and current is None:
            return  # a valid new DAG: nothing to tell
        try:
            await self.client.create_event(
                dag,
                reason=condition.reason,
                message=condition.message if condition.status == "False" else "the DAG is valid again",
                warning=condition.status == "False",
            )
        except kube.ApiError as error:
            logger.warning("could not post an event: %s", error)

    async def _create_run(self, namespace: str, dag: Obj, interval: RunInterval) -> None:
        manifest = run_manifest(namespace=namespace, dag=dag, interval=interval, run_type=RunType.scheduled)
        try:
            await self.client.create(kube.DAGRUNS, namespace, manifest)
        except kube.ApiError as error:
            if not error.conflict:
                raise


def _conditions_wire(
    existing: list[dict[str, Any]], condition: Condition, now: datetime
) -> list[dict[str, Any]]:
    """The conditions list with Ready set (wire form); lastTransitionTime kept while the status holds."""
    parsed = [Condition.model_validate(c) for c in existing]
    return [c.to_wire() for c in runstatus.set_condition(parsed, condition, now=now)]
