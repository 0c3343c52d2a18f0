"""What the UI's pages show, computed from API objects: pure functions, no I/O, no web framework.

Every page is (objects read from the API) -> (a view model) -> (a template). The
view models live here so the rules (which runs a grid page shows, how a cell is
named in the page, what a Gantt bar spans, what a trigger form may send) are
tested fast, without a server or a browser. Objects are plain dicts as the API
returns them; anything a user wrote stays a plain string here and is escaped by
the templates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import TaskState
from kubeflowlite.cli.cluster_plans import PlanError, clear_selection, human_seconds, seconds_between
from kubeflowlite.cli.options import parse_conf
from kubeflowlite.core.schedule import parse_time
from kubeflowlite.k8s import names

Obj = Mapping[str, Any]

RUNS_PER_PAGE = 25
"""Runs (grid columns) on one grid page."""
RECENT_RUNS = 8
"""Dots per DAG in the DAG list."""
STATES = tuple(state.value for state in TaskState)


def name_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def namespace_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _logical_date(run: Obj) -> str:
    return str((run.get("spec") or {}).get("logicalDate") or "")


def run_state(run: Obj) -> str:
    return str((run.get("status") or {}).get("state") or "queued")


def newest_first(runs: Iterable[Obj]) -> list[Obj]:
    """Runs by logical date, newest first (name breaks ties)."""
    return sorted(runs, key=lambda run: (_logical_date(run), name_of(run)), reverse=True)


# --- the DAG list ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DagRow:
    """One line of the DAG list."""

    namespace: str
    name: str
    description: str
    tags: list[str]
    schedule: str
    paused: bool
    next_run: str
    last_run_state: str
    recent: list[tuple[str, str]]
    """(run name, state) of the latest runs, newest first."""
    ready: bool | None
    """The Ready condition: None while the operator has not judged the DAG."""
    ready_message: str


def ready_condition(dag: Obj) -> tuple[bool | None, str]:
    for condition in (dag.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True", str(condition.get("message") or "")
    return None, ""


def dag_rows(dags: Iterable[Obj], runs: Iterable[Obj], *, tag: str | None = None) -> list[DagRow]:
    """The DAG list, by namespace and name; only DAGs carrying `tag` when one is given."""
    by_dag: dict[tuple[str, str], list[Obj]] = {}
    for run in runs:
        key = (namespace_of(run), str((run.get("spec") or {}).get("dagName") or ""))
        by_dag.setdefault(key, []).append(run)
    rows = []
    for dag in sorted(dags, key=lambda d: (namespace_of(d), name_of(d))):
        spec = dag.get("spec") or {}
        status = dag.get("status") or {}
        tags = [str(t) for t in spec.get("tags") or []]
        if tag and tag not in tags:
            continue
        recent = newest_first(by_dag.get((namespace_of(dag), name_of(dag)), []))[:RECENT_RUNS]
        ready, message = ready_condition(dag)
        rows.append(
            DagRow(
                namespace=namespace_of(dag),
                name=name_of(dag),
                description=str(spec.get("description") or ""),
                tags=tags,
                schedule=str(spec.get("schedule") or "manual"),
                paused=bool(spec.get("paused")),
                next_run=str(status.get("nextRun") or "-"),
                last_run_state=str(status.get("lastRunState") or (run_state(recent[0]) if recent else "-")),
                recent=[(name_of(run), run_state(run)) for run in recent],
                ready=ready,
                ready_message=message,
            )
        )
    return rows


def all_tags(dags: Iterable[Obj]) -> list[str]:
    return sorted({str(t) for dag in dags for t in (dag.get("spec") or {}).get("tags") or []})


# --- the grid ----------------------------------------------------------------------------------------


def task_ids(dag: Obj | None, runs: Iterable[Obj]) -> list[str]:
    """The grid's rows: the DAG's tasks in order, then tasks only earlier runs had."""
    order: list[str] = [str(t.get("name")) for t in ((dag or {}).get("spec") or {}).get("tasks") or []]
    seen = set(order)
    for run in runs:
        snapshot = (run.get("status") or {}).get("dagSpec") or {}
        for task in snapshot.get("tasks") or []:
            name = str(task.get("name"))
            if name not in seen:
                seen.add(name)
                order.append(name)
    return order


@dataclass(frozen=True)
class RunStates:
    """What the grid needs of a DAGRun: who it is and its task states (not its dagSpec, not its history).

    The live stream keeps and compares these, so a followed 1,000-task run costs
    a small dict per event instead of the whole object.
    """

    namespace: str
    dag: str
    name: str
    resource_version: str
    logical_date: str
    state: str
    tasks: Mapping[str, str]
    snapshot: frozenset[str] | None
    """The tasks of the run's dagSpec snapshot; None before the run started."""

    def task_state(self, task: str) -> str:
        found = self.tasks.get(task)
        if found is not None:
            return found
        if self.snapshot is not None and task not in self.snapshot:
            return "absent"  # the task was not part of the DAG when this run started
        return "none"

    def column(self, tasks: Sequence[str]) -> dict[str, str]:
        return {task: self.task_state(task) for task in tasks}


def run_states(run: Obj) -> RunStates:
    status = run.get("status") or {}
    snapshot = status.get("dagSpec")
    return RunStates(
        namespace=namespace_of(run),
        dag=str((run.get("spec") or {}).get("dagName") or ""),
        name=name_of(run),
        resource_version=str((run.get("metadata") or {}).get("resourceVersion") or ""),
        logical_date=_logical_date(run),
        state=run_state(run),
        tasks={
            task: str((i or {}).get("state") or "none") for task, i in (status.get("tasks") or {}).items()
        },
        snapshot=frozenset(str(t.get("name")) for t in snapshot.get("tasks") or []) if snapshot else None,
    )


def task_state(run: Obj, task: str) -> str:
    return run_states(run).task_state(task)


def changed(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    """The entries whose value differs: what an update sends."""
    return {key: value for key, value in new.items() if old.get(key) != value}


@dataclass(frozen=True)
class Column:
    """One run of the grid."""

    name: str
    logical_date: str
    state: str
    run_type: str
    resource_version: str


@dataclass(frozen=True)
class Grid:
    """A page of the grid. Cells carry only their state: a 1,000 x 25 grid is one class per cell;
    the page finds a cell by its row (task) and column (run), and builds links on click."""

    tasks: list[str]
    columns: list[Column]
    """Oldest on the left, as in Airflow."""
    rows: list[list[str]]
    """Per task, per column: the state."""
    offset: int
    total: int
    per_page: int = RUNS_PER_PAGE
    watch_key: str = field(default="")
    """What the page tells the event stream: name:resourceVersion of every column."""

    @property
    def floor(self) -> str:
        """The oldest logical date a full first page shows: a newer run belongs on it ("" = any run does)."""
        if self.offset == 0 and len(self.columns) >= self.per_page:
            return self.columns[0].logical_date
        return ""

    @property
    def older_offset(self) -> int | None:
        return self.offset + self.per_page if self.offset + self.per_page < self.total else None

    @property
    def newer_offset(self) -> int | None:
        return max(0, self.offset - self.per_page) if self.offset > 0 else None


def grid(dag: Obj | None, runs: Iterable[Obj], *, offset: int = 0, per_page: int = RUNS_PER_PAGE) -> Grid:
    """A page of the grid: `per_page` runs from `offset` (0 = the newest runs)."""
    ordered = newest_first(runs)
    offset = max(0, min(offset, max(0, len(ordered) - 1)))
    page = list(reversed(ordered[offset : offset + per_page]))
    tasks = task_ids(dag, page)
    columns = [
        Column(
            name=name_of(run),
            logical_date=_logical_date(run),
            state=run_state(run),
            run_type=str((run.get("spec") or {}).get("runType") or "manual"),
            resource_version=str((run.get("metadata") or {}).get("resourceVersion") or ""),
        )
        for run in page
    ]
    states = [run_states(run) for run in page]
    rows = [[column.task_state(task) for column in states] for task in tasks]
    watch_key = ",".join(f"{c.name}:{c.resource_version}" for c in columns)
    return Grid(
        tasks=tasks,
        columns=columns,
        rows=rows,
        offset=offset,
        total=len(ordered),
        per_page=per_page,
        watch_key=watch_key,
    )


def belongs_on_first_page(run: RunStates, floor: str) -> bool:
    """A run not shown on a first page whose oldest run is at `floor` ("" = not full) should be on it."""
    return not floor or run.logical_date >= floor


def parse_watch_key(text: str) -> dict[str, str]:
    """`grid().watch_key` back to run name -> resourceVersion (names never contain ':' or ',')."""
    shown: dict[str, str] = {}
    for item in text.split(","):
        name, _, version = item.partition(":")
        if name:
            shown[name] = version
    return shown


# --- a run: details, Gantt, task instances ----------------------------------------------------------


@dataclass(frozen=True)
class RunDetails:
    name: str
    namespace: str
    dag: str
    state: str
    run_type: str
    logical_date: str
    data_interval: tuple[str, str]
    start: str
    end: str
    duration: str
    conf: str
    params: str
    summary: str
    message: str


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def run_details(run: Obj, *, now: datetime) -> RunDetails:
    spec = run.get("spec") or {}
    status = run.get("status") or {}
    snapshot = status.get("dagSpec") or {}
    seconds = seconds_between(status.get("startTime"), status.get("endTime"), now)
    message = next(
        (str(c.get("message") or "") for c in status.get("conditions") or [] if c.get("status") == "False"),
        "",
    )
    return RunDetails(
        name=name_of(run),
        namespace=namespace_of(run),
        dag=str(spec.get("dagName") or ""),
        state=run_state(run),
        run_type=str(spec.get("runType") or "manual"),
        logical_date=_logical_date(run),
        data_interval=(
            str(status.get("dataIntervalStart") or "-"),
            str(status.get("dataIntervalEnd") or "-"),
        ),
        start=str(status.get("startTime") or "-"),
        end=str(status.get("endTime") or "-"),
        duration=human_seconds(seconds),
        conf=_pretty(spec.get("conf") or {}),
        params=_pretty(snapshot.get("params") or {}),
        summary=str(status.get("tasksSummary") or "-"),
        message=message,
    )


@dataclass(frozen=True)
class TryRow:
    number: int
    state: str
    start: str
    end: str
    duration: str
    exit_code: str
    message: str
    pod: str


def tries(run: Obj, task: str, *, now: datetime) -> list[TryRow]:
    """Every try of a task instance, first to last (earlier tries, then the current one)."""
    instance = ((run.get("status") or {}).get("tasks") or {}).get(task) or {}
    rows: list[TryRow] = []

    def row(record: Mapping[str, Any], state: str, number: int) -> TryRow:
        exit_code = record.get("exitCode")
        return TryRow(
            number=number,
            state=state,
            start=str(record.get("startTime") or "-"),
            end=str(record.get("endTime") or "-"),
            duration=human_seconds(seconds_between(record.get("startTime"), record.get("endTime"), now)),
            exit_code="-" if exit_code is None else str(exit_code),
            message=str(record.get("message") or ""),
            pod=try_pod(name_of(run), task, number),
        )

    for record in instance.get("tries") or []:
        number = int(record.get("tryNumber") or 0)
        rows.append(row(record, str(record.get("state") or "none"), number))
    current = int(instance.get("tryNumber") or 0)
    if current and all(r.number != current for r in rows):
        rows.append(row(instance, str(instance.get("state") or "none"), current))
    return sorted(rows, key=lambda r: r.number)


@dataclass(frozen=True)
class Bar:
    """One try on the Gantt chart: where its queued and running segments sit, in % of the run's span."""

    task: str
    try_number: int
    state: str
    queued_left: float
    queued_width: float
    running_left: float
    running_width: float
    label: str


def _moment(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return parse_time(str(text))
    except ValueError:
        return None


def gantt(run: Obj, pods: Iterable[Obj], *, now: datetime) -> tuple[list[Bar], str]:
    """The Gantt of a run: per task and try, queued (Pod created -> started) and running time.

    Pods give the queued time (their creation); a try whose Pod is gone shows its
    running time only. Returns the bars and the run's span as text.
    """
    created: dict[str, datetime] = {}
    for pod in pods:
        moment = _moment((pod.get("metadata") or {}).get("creationTimestamp"))
        if moment is not None:
            created[name_of(pod)] = moment
    spans: list[tuple[str, TryRow, datetime | None, datetime, datetime]] = []
    order = task_ids(None, [run])
    for task in order:
        for attempt in tries(run, task, now=now):
            start = _moment(attempt.start if attempt.start != "-" else None)
            if start is None:
                continue
            end = _moment(attempt.end if attempt.end != "-" else None) or now
            queued = created.get(attempt.pod)
            spans.append((task, attempt, queued if queued and queued < start else None, start, end))
    if not spans:
        return [], "-"
    origin = min(q or s for _, _, q, s, _ in spans)
    finish = max(e for *_, e in spans)
    total = max((finish - origin).total_seconds(), 0.001)

    def pct(a: datetime, b: datetime) -> float:
        return round(100.0 * max((b - a).total_seconds(), 0.0) / total, 3)

    bars = [
        Bar(
            task=task,
            try_number=attempt.number,
            state=attempt.state,
            queued_left=pct(origin, queued) if queued else pct(origin, start),
            queued_width=pct(queued, start) if queued else 0.0,
            running_left=pct(origin, start),
            running_width=max(pct(start, end), 0.2),
            label=f"{task} try {attempt.number}: queued "
            f"{human_seconds((start - queued).total_seconds()) if queued else '-'}, running {attempt.duration}",
        )
        for task, attempt, queued, start, end in spans
    ]
    return bars, human_seconds(total)


@dataclass(frozen=True)
class PodInfo:
    name: str
    phase: str
    node: str
    waiting_reason: str
    waiting_message: str


def pod_info(pod: Obj) -> PodInfo:
    """A Pod's phase, node and (when stuck) why it waits."""
    status = pod.get("status") or {}
    reason, message = "", ""
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            reason, message = str(waiting.get("reason") or ""), str(waiting.get("message") or "")
            break
    if not reason:
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                reason, message = str(condition.get("reason") or ""), str(condition.get("message") or "")
    return PodInfo(
        name=name_of(pod),
        phase=str(status.get("phase") or "-"),
        node=str((pod.get("spec") or {}).get("nodeName") or "-"),
        waiting_reason=reason,
        waiting_message=message,
    )


def event_rows(events: Iterable[Obj]) -> list[tuple[str, str, str, str]]:
    """(time, type, reason, message) of a Pod's events, oldest first."""
    rows = [
        (
            str(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""),
            str(e.get("type") or ""),
            str(e.get("reason") or ""),
            str(e.get("message") or ""),
        )
        for e in events
    ]
    return sorted(rows)


def xcom_text(configmap: Obj | None, task: str) -> str | None:
    """A task's XCom value, pretty-printed JSON (the stored text if it is not JSON); None if it has none."""
    text = ((configmap or {}).get("data") or {}).get(task)
    if text is None:
        return None
    try:
        return _pretty(json.loads(text))
    except ValueError:
        return str(text)


def try_pod(run_name: str, task: str, try_number: int) -> str:
    """The Pod of one try (the operator's naming rule)."""
    return names.pod_name(run_name, task, try_number)


def pod_command(pod: Obj, container: str) -> str:
    """What a try's container runs, as its Pod says (templates already rendered): command, args, env."""
    spec = pod.get("spec") or {}
    main = next((c for c in spec.get("containers") or [] if c.get("name") == container), None)
    if main is None:
        return ""
    lines = [*(str(x) for x in main.get("command") or []), *(str(x) for x in main.get("args") or [])]
    lines += [f"# env {e.get('name')}={e.get('value', '')}" for e in main.get("env") or [] if "value" in e]
    return "\n".join(lines)


# --- forms ---------------------------------------------------------------------------------------------


class FormError(ValueError):
    """A form value the UI refuses to send; the message names the field."""


def parse_trigger(
    conf_text: str, date_text: str, *, now: datetime | None = None
) -> tuple[datetime, dict[str, Any]]:
    """The trigger form: (logical date, conf). Empty date = now (to the second), empty conf = {}."""
    try:
        conf = parse_conf(conf_text.strip() or None, ())
    except ValueError as error:
        raise FormError(str(error).replace("--conf", "conf")) from None
    if not date_text.strip():
        return (now or datetime.now(UTC)).replace(microsecond=0), conf
    try:
        return parse_time(date_text.strip()), conf
    except ValueError as error:
        raise FormError(f"logical date {date_text.strip()!r}: {error}") from None


def clear_tasks(run: Obj, task: str, *, downstream: bool, upstream: bool, only_failed: bool) -> list[str]:
    """Which tasks clearing `task` of `run` resets: the CLI's selection. PlanError when impossible."""
    status = run.get("status") or {}
    snapshot = status.get("dagSpec")
    if not snapshot:
        raise PlanError("the run has not started yet: nothing to clear")
    spec = DAGSpec.model_validate(snapshot)
    if task not in {t.name for t in spec.tasks}:
        raise PlanError(f"the run has no task {task!r}")
    states = {name: (i or {}).get("state") or "none" for name, i in (status.get("tasks") or {}).items()}
    return clear_selection(
        spec,
        states,
        pattern=f"^{re.escape(task)}$",
        downstream=downstream,
        upstream=upstream,
        only_failed=only_failed,
    )


LOG_TAILS = (200, 2000, 20000)
"""How many last lines of a log a page shows: the first, then "show more" steps up (then the whole log)."""
LOG_MAX_BYTES = 8 * 1024 * 1024
"""Never more than this of one log in one page."""


def log_tail(requested: str | None) -> int | None:
    """The tailLines of a log request: one of LOG_TAILS, or None for the whole log ("all")."""
    if requested == "all":
        return None
    try:
        value = int(requested or 0)
    except ValueError:
        value = 0
    return next((tail for tail in LOG_TAILS if tail >= value), None)


def more_log(tail: int | None) -> str | None:
    """The next "show more" step after `tail` lines ("all" last); None when the whole log is shown."""
    if tail is None:
        return None
    return next((str(step) for step in LOG_TAILS if step > tail), "all")
