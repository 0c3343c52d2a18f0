"""Tasks the controller runs itself, without a Pod: external-task sensors and triggerDag.

A sensor only reads other DAGRuns and a triggerDag task only creates one; a Pod
for either would cost a container start to make one API call. They are the
controller-side implementation of the launcher port: each try produces the same
`Attempt` a Pod would, so the engine treats them like any task (retries,
execution timeouts, trigger rules).

They have no Pod to remember their progress, so the run's own status does: the
engine records a try as queued, then running with its start time, and every
reconcile re-evaluates the in-flight try from that record and the cluster view
(`evaluate`). The rules are pure functions of (task, try record, other runs, now);
the only I/O (`execute`) is creating the triggered DAGRun, with a deterministic
name, so a restart never triggers twice.

Sensor (Airflow's ExternalTaskSensor): the watched run is the other DAG's run at
this run's logical date plus `offset`; its state (or one task's state) is checked
every `pokeInterval` (the controller asks to be woken then) until it is in
`allowedStates` (success), in `failedStates` (failed at once), or `timeout` has
passed since the try started (failed).

triggerDag (Airflow's TriggerDagRunOperator): creates the other DAG's run at the
rendered `logicalDate` (default: this run's) with the rendered `conf`, pushes its
name as XCom, and with `waitForCompletion` stays running until that run ends,
failing if it failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from kubeflowlite.api.dag import ExternalTaskSensor, Task, TaskType, TriggerDag
from kubeflowlite.api.dagrun import RunType, TaskInstanceStatus
from kubeflowlite.api.times import parse_time
from kubeflowlite.core import durations, templating
from kubeflowlite.core import sensor as sensor_rule
from kubeflowlite.core.engine import NO_XCOM, Attempt, AttemptPhase
from kubeflowlite.k8s import kube, launch
from kubeflowlite.k8s.run_manifest import dagrun_manifest

ANNOTATION_TRIGGERED_BY = "kubeflowlite.io/triggered-by"
"""On a DAGRun created by a triggerDag task: `<namespace>/<run>/<task>` of the task that created it."""


def is_inline(task: Task) -> bool:
    """Does this task run in the controller (no Pod)?"""
    return task.effective_type() in (TaskType.sensor, TaskType.trigger_dag)


@dataclass(frozen=True)
class Outcome:
    """One evaluation of an in-flight inline try: the attempt, and when to look again."""

    attempt: Attempt
    wake_at: datetime | None = None


# --- sensor ----------------------------------------------------------------------------------------


def run_state(run: Mapping[str, Any], task: str | None) -> str | None:
    """The state of a DAGRun object (or of one of its tasks); None if not known yet."""
    status = run.get("status") or {}
    if task is None:
        return status.get("state") or "queued"
    instance = (status.get("tasks") or {}).get(task)
    return None if instance is None else instance.get("state") or "none"


def watched_runs(runs: Iterable[Mapping[str, Any]], logical_date: datetime) -> list[Mapping[str, Any]]:
    """The runs among `runs` whose logical date is `logical_date`."""
    found = []
    for run in runs:
        text = (run.get("spec") or {}).get("logicalDate")
        try:
            if text and parse_time(text) == logical_date:
                found.append(run)
        except ValueError:
            continue
    return found


def poke(
    sensor: ExternalTaskSensor,
    *,
    task: str,
    try_number: int,
    logical_date: datetime,
    started: datetime,
    runs: Iterable[Mapping[str, Any]],
    now: datetime,
) -> Outcome:
    """One poke of an external-task sensor try started at `started`; `runs` are the watched DAG's runs."""
    target = logical_date + durations.parse_signed_duration(sensor.offset)
    found = sensor_rule.poke(
        [run_state(run, sensor.task) for run in watched_runs(runs, target)],
        what=f"{sensor.dag}.{sensor.task}" if sensor.task else sensor.dag,
        target=target,
        allowed=sensor.allowed_states,
        failed=sensor.failed_states,
        timeout=sensor.timeout,
        poke_interval=sensor.poke_interval,
        started=started,
        now=now,
    )
    ended = None if found.phase is AttemptPhase.running else now
    return Outcome(
        _attempt(task, try_number, found.phase, started, ended, found.message), wake_at=found.wake_at
    )


# --- triggerDag -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerPlan:
    """The DAGRun a triggerDag try creates (or finds, after a restart)."""

    name: str
    manifest: dict[str, Any]


def trigger_plan(
    trigger: TriggerDag,
    *,
    facts: launch.RunFacts,
    task: Task,
    try_number: int,
    xcoms: Mapping[str, str],
    target: Mapping[str, Any] | None = None,
) -> TriggerPlan:
    """The run to create, rendered with the try's context (TemplateError if a template fails).

    `target` is the triggered DAG's object, when known: the run is then owned by it.
    """
    context = launch.context_for(facts, task, try_number, xcoms)
    logical_date = facts.interval.logical_date
    if trigger.logical_date is not None:
        rendered_date = templating.render_string(
            trigger.logical_date, context, field=f"tasks[{task.name}].triggerDag.logicalDate"
        )
        try:
            logical_date = parse_time(rendered_date)
        except ValueError as error:
            raise templating.TemplateError(f"tasks[{task.name}].triggerDag.logicalDate", str(error)) from None
    conf = {
        key: templating.render_string(value, context, field=f"tasks[{task.name}].triggerDag.conf[{key}]")
        if isinstance(value, str)
        else value
        for key, value in trigger.conf.items()
    }
    manifest = dagrun_manifest(
        namespace=facts.namespace,
        dag=target or {"metadata": {"name": trigger.dag}},
        logical_date=logical_date,
        run_type=RunType.manual,
        conf=conf,
        annotations={ANNOTATION_TRIGGERED_BY: f"{facts.namespace}/{facts.run_name}/{task.name}"},
    )
    name = str(manifest["metadata"]["name"])
    return TriggerPlan(name=name, manifest=manifest)


def trigger_outcome(
    trigger: TriggerDag,
    *,
    task: str,
    try_number: int,
    started: datetime,
    run_name: str,
    run: Mapping[str, Any] | None,
    now: datetime,
) -> Outcome:
    """The try's state once its run exists: done at once, or when the triggered run ends if waiting."""
    if not trigger.wait_for_completion:
        return Outcome(
            _attempt(
                task, try_number, AttemptPhase.succeeded, started, now, f"triggered {run_name}", xcom=run_name
            )
        )
    state = run_state(run, None) if run is not None else None
    if state == "success":
        message = f"triggered run {run_name} succeeded"
        return Outcome(
            _attempt(task, try_number, AttemptPhase.succeeded, started, now, message, xcom=run_name)
        )
    if state == "failed":
        return Outcome(
            _attempt(task, try_number, AttemptPhase.failed, started, now, f"triggered run {run_name} failed")
        )
    wake = now + durations.parse_duration(trigger.poke_interval)
    message = f"waiting for triggered run {run_name} ({state or 'not seen yet'})"
    return Outcome(_attempt(task, try_number, AttemptPhase.running, started, None, message), wake_at=wake)


# --- running them ----------------------------------------------------------------------------------


class RunLookup(Protocol):
    """The DAGRuns an inline task reads (the run controller's view, with its fresher statuses)."""

    def runs_of_dag(self, namespace: str, dag: str) -> list[Mapping[str, Any]]: ...

    def current_run(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def dag(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...


PERMANENT_CREATE_ERRORS = frozenset({400, 403, 422})


async def execute(
    task: Task,
    *,
    facts: launch.RunFacts,
    try_number: int,
    started: datetime,
    xcoms: Mapping[str, str],
    now: datetime,
    lookup: RunLookup,
    client: kube.Kube,
) -> Outcome:
    """Start or re-evaluate one try of a sensor or triggerDag task (`task` with the DAG defaults applied)."""
    if task.sensor is not None:
        return poke(
            task.sensor,
            task=task.name,
            try_number=try_number,
            logical_date=facts.interval.logical_date,
            started=started,
            runs=lookup.runs_of_dag(facts.namespace, task.sensor.dag),
            now=now,
        )
    trigger = task.trigger_dag
    if trigger is None:
        message = f"task {task.name!r} is neither a sensor nor a triggerDag task"
        return Outcome(launch.failed_at_once(task.name, try_number, message, now))
    try:
        target = lookup.dag(facts.namespace, trigger.dag)
        plan = trigger_plan(
            trigger, facts=facts, task=task, try_number=try_number, xcoms=xcoms, target=target
        )
    except templating.TemplateError as error:
        return Outcome(launch.failed_at_once(task.name, try_number, f"template error: {error}", now))
    run = lookup.current_run(facts.namespace, plan.name)
    if run is None:
        try:
            run = await client.create(kube.DAGRUNS, facts.namespace, plan.manifest)
        except kube.ApiError as error:
            if error.status in PERMANENT_CREATE_ERRORS:
                message = f"could not create DAGRun {plan.name}: {error.message}"
                return Outcome(launch.failed_at_once(task.name, try_number, message, now))
            if not error.conflict:
                raise
    return trigger_outcome(
        trigger, task=task.name, try_number=try_number, started=started, run_name=plan.name, run=run, now=now
    )


# --- shared ---------------------------------------------------------------------------------------


def try_started(status: TaskInstanceStatus | None, now: datetime) -> datetime:
    """When the in-flight try started, from the run's status (now, for a try that is only queued)."""
    if status is not None and status.start_time is not None:
        return status.start_time
    return now


def _attempt(
    task: str,
    try_number: int,
    phase: AttemptPhase,
    started: datetime,
    ended: datetime | None,
    message: str,
    *,
    xcom: Any = None,
) -> Attempt:
    return Attempt(
        task=task,
        try_number=try_number,
        phase=phase,
        start_time=started,
        end_time=ended,
        message=message[:1024],
        xcom=NO_XCOM if xcom is None else xcom,
    )
