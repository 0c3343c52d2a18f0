"""What the cluster commands decide, without a cluster: clear selections, backfill plans, views.

The objects they write are built here too (a DAGRun to trigger, the `spec.clear`
and `spec.paused` patches), so the CLI and the web UI write exactly the same thing.

`kubeflowlite clear`, `backfill`, `get`, `dags` and `runs` do a little reading, one
decision and a little writing; the decisions live here as pure functions over
DAGRun/DAG objects (plain dicts as the API returns them) so they are tested fast,
and cli.cluster stays a thin layer of API calls and printing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.times import parse_time
from kubeflowlite.core import durations
from kubeflowlite.core.schedule import RunInterval
from kubeflowlite.core.validation import task_graph

Obj = Mapping[str, Any]

STATE_STYLES = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "dark_orange",
    "up_for_retry": "yellow",
    "running": "cyan",
    "queued": "grey70",
    "scheduled": "grey70",
    "skipped": "magenta",
    "none": "grey50",
}
FAILED_STATES = frozenset({"failed", "upstream_failed"})


class PlanError(ValueError):
    """A request that cannot be carried out as asked; the message is for the user."""


# --- what the commands write ------------------------------------------------------------------------


def clear_patch(tasks: Sequence[str]) -> tuple[dict[str, Any], str]:
    """The merge patch that asks the operator to clear `tasks` (a new request id each time), and that id."""
    request_id = uuid.uuid4().hex[:12]
    return {"spec": {"clear": {"id": request_id, "tasks": list(tasks)}}}, request_id


def pause_patch(paused: bool) -> dict[str, Any]:
    """The merge patch of `pause` / `unpause`."""
    return {"spec": {"paused": paused}}


# --- clear ------------------------------------------------------------------------------------------


def clear_selection(
    spec: DAGSpec,
    states: Mapping[str, str],
    *,
    pattern: str | None,
    downstream: bool,
    upstream: bool,
    only_failed: bool,
) -> list[str]:
    """Airflow's `tasks clear` selection: tasks matching `pattern` (all if None), widened, then filtered.

    `states` maps task id -> current state. The result keeps the DAG's task order.
    """
    graph = task_graph(spec)
    order = [task.name for task in spec.tasks]
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error as error:
        raise PlanError(f"--task is not a valid regular expression: {error}") from None
    chosen = {name for name in order if regex is None or regex.search(name)}
    if not chosen:
        raise PlanError(f"no task matches {pattern!r} (tasks: {', '.join(order)})")
    widened = set(chosen)
    for name in chosen:
        if downstream:
            widened |= graph.descendants(name)
        if upstream:
            widened |= graph.ancestors(name)
    if only_failed:
        widened = {name for name in widened if states.get(name) in FAILED_STATES}
    return [name for name in order if name in widened]


# --- backfill ---------------------------------------------------------------------------------------


@dataclass
class BackfillPlan:
    """What `backfill` does: runs to create, runs to delete first, runs whose failed tasks to clear."""

    create: list[RunInterval] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    clear: dict[str, list[str]] = field(default_factory=dict)
    """Run name -> failed task ids to clear (--rerun-failed-tasks)."""
    existing: list[str] = field(default_factory=list)
    """Runs left as they are."""


def plan_backfill(
    intervals: Sequence[RunInterval],
    runs: Iterable[Obj],
    *,
    reset: bool,
    rerun_failed: bool,
) -> BackfillPlan:
    """Runs for every interval; an interval that already has a run keeps it unless asked otherwise.

    --reset-dagruns deletes the existing run(s) of the interval and creates a fresh
    backfill run; --rerun-failed-tasks clears the failed tasks of an existing run.
    """
    by_date: dict[datetime, list[Obj]] = {}
    for run in runs:
        try:
            by_date.setdefault(parse_time((run.get("spec") or {}).get("logicalDate") or ""), []).append(run)
        except ValueError:
            continue
    plan = BackfillPlan()
    for interval in intervals:
        existing = by_date.get(interval.logical_date, [])
        if not existing:
            plan.create.append(interval)
            continue
        if reset:
            plan.delete.extend(_name(run) for run in existing)
            plan.create.append(interval)
            continue
        for run in existing:
            failed = [
                task
                for task, instance in ((run.get("status") or {}).get("tasks") or {}).items()
                if instance.get("state") in FAILED_STATES
            ]
            if rerun_failed and failed:
                plan.clear[_name(run)] = failed
            else:
                plan.existing.append(_name(run))
    return plan


# --- views --------------------------------------------------------------------------------------------


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _styled(state: str | None) -> Text:
    value = state or "-"
    return Text(value, style=STATE_STYLES.get(value, ""))


def seconds_between(start: str | None, end: str | None, now: datetime) -> float | None:
    if not start:
        return None
    try:
        finish = parse_time(end) if end else now
        return max(0.0, (finish - parse_time(start)).total_seconds())
    except ValueError:
        return None


def human_seconds(seconds: float | None) -> str:
    return "-" if seconds is None else durations.format_elapsed(seconds)


def run_tree(run: Obj, *, now: datetime) -> Tree:
    """`get RUN`: the run's tasks as a tree (downstream under upstream), with state, try and duration."""
    spec_obj = run.get("spec") or {}
    status = run.get("status") or {}
    title = Text.assemble(
        (_name(run), "bold"),
        f"  dag {spec_obj.get('dagName')}  logical date {spec_obj.get('logicalDate')}  ",
        _styled(status.get("state") or "queued"),
        f"  tasks {status.get('tasksSummary') or '-'}  duration {status.get('duration') or '-'}",
    )
    tree = Tree(title)
    snapshot = status.get("dagSpec")
    instances: Mapping[str, Any] = status.get("tasks") or {}
    if not snapshot:
        reason = next(
            (c.get("message") for c in status.get("conditions") or [] if c.get("status") == "False"), None
        )
        tree.add(Text(f"not started{': ' + reason if reason else ''}", style="grey50"))
        return tree
    spec = DAGSpec.model_validate(snapshot)
    children: dict[str, list[str]] = {task.name: [] for task in spec.tasks}
    for task in spec.tasks:
        for parent in task.depends_on:
            children.setdefault(parent, []).append(task.name)

    def label(name: str) -> Text:
        instance = instances.get(name) or {}
        seconds = seconds_between(instance.get("startTime"), instance.get("endTime"), now)
        line = Text.assemble(
            (name, "bold"),
            "  ",
            _styled(instance.get("state") or "none"),
            f"  try {instance.get('tryNumber', 0)}",
        )
        if seconds is not None:
            line.append(f"  {human_seconds(seconds)}")
        if instance.get("message") and instance.get("state") not in ("success", "running"):
            line.append(f"  {instance['message'][:120]}", style="grey50")
        return line

    def add(node: Tree, name: str, path: tuple[str, ...]) -> None:
        branch = node.add(label(name))
        for child in children.get(name, []):
            if child not in path:
                add(branch, child, (*path, child))

    for task in spec.tasks:
        if not task.depends_on:
            add(tree, task.name, (task.name,))
    return tree


def runs_table(runs: Iterable[Obj], *, now: datetime) -> Table:
    """`runs [DAG]`: one row per DAGRun, newest logical date first."""
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "DAG", "LOGICAL DATE", "TYPE", "STATE", "TASKS", "STARTED", "DURATION"):
        table.add_column(column)
    ordered = sorted(
        runs, key=lambda r: ((r.get("spec") or {}).get("logicalDate") or "", _name(r)), reverse=True
    )
    for run in ordered:
        spec = run.get("spec") or {}
        status = run.get("status") or {}
        seconds = seconds_between(status.get("startTime"), status.get("endTime"), now)
        table.add_row(
            _name(run),
            spec.get("dagName", ""),
            spec.get("logicalDate", ""),
            spec.get("runType", "manual"),
            _styled(status.get("state") or "queued"),
            status.get("tasksSummary") or "-",
            status.get("startTime") or "-",
            human_seconds(seconds),
        )
    return table


def dags_table(dags: Iterable[Obj]) -> Table:
    """`dags`: one row per DAG with its schedule, pause state, validity and runs."""
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "SCHEDULE", "PAUSED", "READY", "LAST RUN", "LAST RUN STATE", "NEXT RUN"):
        table.add_column(column)
    for dag in sorted(dags, key=_name):
        spec = dag.get("spec") or {}
        status = dag.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        ready_text = Text("-")
        if ready is not None:
            ready_text = Text(
                "True" if ready.get("status") == "True" else f"False: {(ready.get('message') or '')[:80]}",
                style="green" if ready.get("status") == "True" else "red",
            )
        table.add_row(
            _name(dag),
            spec.get("schedule") or "-",
            str(bool(spec.get("paused"))).lower(),
            ready_text,
            status.get("lastRun") or "-",
            _styled(status.get("lastRunState")),
            status.get("nextRun") or "-",
        )
    return table
