"""What the DAG list and the grid show, computed from API objects: pure functions, no I/O.

Every page is (objects read from the API) -> (a view model) -> (a template). The
view models live here and in `runview` (a run, its tries, its Gantt) and `forms`
(what a write may send), so the rules (which runs a grid page shows, what a Gantt
bar spans, what a trigger form may send) are tested fast, without a server or a
browser. Objects are plain dicts as the API
returns them; anything a user wrote stays a plain string here and is escaped by
the templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeflowlite.api.dagrun import TaskState

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


def logical_date(run: Obj) -> str:
    return str((run.get("spec") or {}).get("logicalDate") or "")


def run_state(run: Obj) -> str:
    return str((run.get("status") or {}).get("state") or "queued")


def newest_first(runs: Iterable[RunStates]) -> list[RunStates]:
    """Runs by logical date, newest first (name breaks ties)."""
    return sorted(runs, key=lambda run: (run.logical_date, run.name), reverse=True)


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


def dag_rows(dags: Iterable[Obj], runs: Iterable[RunStates], *, tag: str | None = None) -> list[DagRow]:
    """The DAG list, by namespace and name; only DAGs carrying `tag` when one is given."""
    by_dag: dict[tuple[str, str], list[RunStates]] = {}
    for run in runs:
        by_dag.setdefault((run.namespace, run.dag), []).append(run)
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
                last_run_state=str(status.get("lastRunState") or (recent[0].state if recent else "-")),
                recent=[(run.name, run.state) for run in recent],
                ready=ready,
                ready_message=message,
            )
        )
    return rows


def all_tags(dags: Iterable[Obj]) -> list[str]:
    return sorted({str(t) for dag in dags for t in (dag.get("spec") or {}).get("tags") or []})


# --- the grid ----------------------------------------------------------------------------------------


def task_ids(dag: Obj | None, runs: Iterable[RunStates]) -> list[str]:
    """The grid's rows: the DAG's tasks in order, then tasks only earlier runs had."""
    order: list[str] = [str(t.get("name")) for t in ((dag or {}).get("spec") or {}).get("tasks") or []]
    seen = set(order)
    for run in runs:
        for name in run.snapshot or ():
            if name not in seen:
                seen.add(name)
                order.append(name)
    return order


@dataclass(frozen=True)
class RunStates:
    """What the grid needs of a DAGRun: who it is and its task states (not its dagSpec, not its history).

    The UI's cache (`informer`) keeps one per run and the live stream compares
    them, so a 1,000-task run costs a small dict instead of the whole object.
    """

    namespace: str
    dag: str
    name: str
    resource_version: str
    logical_date: str
    state: str
    tasks: Mapping[str, str]
    snapshot: tuple[str, ...] | None
    """The tasks of the run's dagSpec snapshot, in order; None before the run started."""
    run_type: str = "manual"

    def task_state(self, task: str) -> str:
        return self._state(task, frozenset(self.snapshot) if self.snapshot is not None else None)

    def _state(self, task: str, snapshot: frozenset[str] | None) -> str:
        found = self.tasks.get(task)
        if found is not None:
            return found
        if snapshot is not None and task not in snapshot:
            return "absent"  # the task was not part of the DAG when this run started
        return "none"

    def column(self, tasks: Sequence[str]) -> dict[str, str]:
        snapshot = frozenset(self.snapshot) if self.snapshot is not None else None
        return {task: self._state(task, snapshot) for task in tasks}


def run_states(run: Obj) -> RunStates:
    status = run.get("status") or {}
    spec = run.get("spec") or {}
    snapshot = status.get("dagSpec")
    return RunStates(
        namespace=namespace_of(run),
        dag=str(spec.get("dagName") or ""),
        name=name_of(run),
        resource_version=str((run.get("metadata") or {}).get("resourceVersion") or ""),
        logical_date=logical_date(run),
        state=run_state(run),
        tasks={
            task: str((i or {}).get("state") or "none") for task, i in (status.get("tasks") or {}).items()
        },
        snapshot=tuple(str(t.get("name")) for t in snapshot.get("tasks") or []) if snapshot else None,
        run_type=str(spec.get("runType") or "manual"),
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


def grid(
    dag: Obj | None, runs: Iterable[RunStates], *, offset: int = 0, per_page: int = RUNS_PER_PAGE
) -> Grid:
    """A page of the grid: `per_page` runs from `offset` (0 = the newest runs)."""
    ordered = newest_first(runs)
    offset = max(0, min(offset, max(0, len(ordered) - 1)))
    page = list(reversed(ordered[offset : offset + per_page]))
    tasks = task_ids(dag, page)
    columns = [
        Column(
            name=run.name,
            logical_date=run.logical_date,
            state=run.state,
            run_type=run.run_type,
            resource_version=run.resource_version,
        )
        for run in page
    ]
    states = [list(run.column(tasks).values()) for run in page]
    rows = [list(row) for row in zip(*states, strict=True)] if states else [[] for _ in tasks]
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
