"""Whole-DAG checks, every problem at once, each with the path of the field at fault.

The pydantic models check each field on its own; what needs the whole DAG lives here:
task names that clash or point nowhere, cycles, cron and time zone, dates, durations,
template syntax, what each task runs. A DAG author fixing a file wants the full list
(`spec.tasks[2].dependsOn[0]: unknown upstream task 'x'`) rather than one error per
attempt, and the operator puts the same list in the DAG's Ready condition.

`task_graph` is the dependency graph of a spec (O(tasks + edges)); it is also what the
CLI's tree view and other callers use to walk the DAG in a stable order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kubeflowlite.api import names
from kubeflowlite.api.dag import DAG, DAGSpec, ExternalTaskSensor, Task, TaskDefaults, TaskType, TriggerDag
from kubeflowlite.api.times import format_time
from kubeflowlite.core import durations, schedule, templating

__all__ = [
    "CycleError",
    "InvalidDAGError",
    "Issue",
    "TaskGraph",
    "task_graph",
    "validate_dag",
]


@dataclass(frozen=True)
class Issue:
    """One problem in a DAG file: the wire path of the field (`spec.tasks[2].retries`) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidDAGError(Exception):
    """A DAG file or object with problems; str() lists each as `<source>: <path>: <message>`, one per line."""

    def __init__(self, issues: Iterable[Issue], source: str = "<input>") -> None:
        self.issues: list[Issue] = list(issues)
        self.source = source
        super().__init__(self._text())

    def _text(self) -> str:
        return "\n".join(f"{self.source}: {issue}" for issue in self.issues)

    def __str__(self) -> str:
        return self._text()


# -- the task graph ---------------------------------------------------------------------


class CycleError(ValueError):
    """The task dependencies have a cycle; `.cycle` is it, closed: ['a', 'b', 'a']."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(f"cycle: {' -> '.join(cycle)}")


class TaskGraph:
    """The dependency graph of a DAG's tasks, with a topological order stable in file order.

    Unknown upstream names are ignored (validation reports them); a cycle makes
    `task_graph` raise ValueError naming it. Duplicate names: the first task wins.
    """

    def __init__(self, names: tuple[str, ...], upstream: dict[str, tuple[str, ...]]) -> None:
        self.names = names
        self.upstream = upstream
        downstream: dict[str, list[str]] = {name: [] for name in names}
        for name in names:
            for parent in upstream[name]:
                downstream[parent].append(name)
        self.downstream: dict[str, tuple[str, ...]] = {
            name: tuple(children) for name, children in downstream.items()
        }
        self.topological_order = _topological_order(names, self.upstream, self.downstream)
        self.roots: tuple[str, ...] = tuple(name for name in names if not self.upstream[name])
        self.leaves: tuple[str, ...] = tuple(name for name in names if not self.downstream[name])

    def _reach(self, start: str, edges: dict[str, tuple[str, ...]]) -> frozenset[str]:
        if start not in edges:
            raise KeyError(f"no task {start!r}")
        seen: set[str] = set()
        stack = list(edges[start])
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(edges[name])
        return frozenset(seen)

    def descendants(self, task: str) -> frozenset[str]:
        """Every task downstream of `task`, directly or not (not `task` itself)."""
        return self._reach(task, self.downstream)

    def ancestors(self, task: str) -> frozenset[str]:
        """Every task upstream of `task`, directly or not (not `task` itself)."""
        return self._reach(task, self.upstream)


def _topological_order(
    names: tuple[str, ...], upstream: dict[str, tuple[str, ...]], downstream: dict[str, tuple[str, ...]]
) -> tuple[str, ...]:
    """Kahn's algorithm; among ready tasks the one earliest in the file goes first."""
    import heapq

    position = {name: index for index, name in enumerate(names)}
    waiting = {name: len(upstream[name]) for name in names}
    ready = [position[name] for name in names if waiting[name] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for child in downstream[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, position[child])
    if len(order) != len(names):
        raise CycleError(_find_cycle(names, upstream, {name for name in names if waiting[name] > 0}))
    return tuple(order)


def _find_cycle(names: tuple[str, ...], upstream: dict[str, tuple[str, ...]], stuck: set[str]) -> list[str]:
    """One cycle among the tasks Kahn's algorithm could not order, in dependency direction (a -> b: b depends on a)."""
    downstream: dict[str, list[str]] = {name: [] for name in stuck}
    for name in names:
        if name in stuck:
            for parent in upstream[name]:
                if parent in stuck:
                    downstream[parent].append(name)
    # Every stuck task lies on a cycle or downstream of one; walking upstream from any
    # stuck task must revisit a task, and the revisited stretch is a cycle.
    start = next(name for name in names if name in stuck)
    path: list[str] = []
    index: dict[str, int] = {}
    current = start
    while current not in index:
        index[current] = len(path)
        path.append(current)
        current = next(parent for parent in upstream[current] if parent in stuck)
    loop = path[index[current] :]
    loop.reverse()  # walked upstream; print downstream-wards
    first = min(range(len(loop)), key=lambda i: names.index(loop[i]))
    loop = loop[first:] + loop[:first]
    return [*loop, loop[0]]


def task_graph(spec: DAGSpec) -> TaskGraph:
    """The graph of `spec.tasks`; ValueError (`cycle: a -> b -> a`) if the dependencies have a cycle."""
    names: list[str] = []
    upstream: dict[str, tuple[str, ...]] = {}
    for task in spec.tasks:
        if task.name not in upstream:
            names.append(task.name)
            upstream[task.name] = ()
    known = set(upstream)
    seen_tasks: set[str] = set()
    for task in spec.tasks:
        if task.name in seen_tasks:
            continue
        seen_tasks.add(task.name)
        upstream[task.name] = tuple(dict.fromkeys(p for p in task.depends_on if p in known))
    return TaskGraph(tuple(names), upstream)


# -- validation -------------------------------------------------------------------------


def validate_dag(dag: DAG) -> list[Issue]:
    """Every problem of `dag` that its field types alone do not catch, in file order."""
    issues: list[Issue] = []
    issues += _check_name(dag.metadata.name)
    spec = dag.spec
    issues += _check_schedule(spec)
    issues += _check_defaults(spec.defaults)
    issues += _check_tasks(spec)
    issues += _check_python_source(spec)
    return issues


PYTHON_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*\.py$")
"""A shipped module's path (spec.pythonSource.modules): relative, `/`-separated identifiers, ending in .py."""


def _check_python_source(spec: DAGSpec) -> list[Issue]:
    """A Python task calls a function of spec.pythonSource, so the DAG must carry it; module paths stay inside."""
    if spec.python_source is not None:
        return [
            Issue(
                "spec.pythonSource.modules",
                f"invalid module path {path!r}: a relative path of Python identifiers ending in .py "
                "(e.g. helpers.py, lib/util.py)",
            )
            for path in spec.python_source.modules or {}
            if not PYTHON_MODULE_PATH.match(path)
        ]
    return [
        Issue(f"spec.tasks[{index}].python", "a Python task needs spec.pythonSource (the DAG file's source)")
        for index, task in enumerate(spec.tasks)
        if task.python is not None
    ]


def _check_name(name: str) -> list[Issue]:
    if not names.is_dag_name(name):
        return [Issue("metadata.name", f"invalid DAG name {name!r}: {names.DAG_NAME_RULE}")]
    return []


def _check_schedule(spec: DAGSpec) -> list[Issue]:
    issues: list[Issue] = []
    if spec.schedule is not None and spec.schedule.strip() != schedule.ONCE:
        try:
            schedule.validate_cron(spec.schedule)
        except ValueError as error:
            issues.append(Issue("spec.schedule", str(error)))
    try:
        schedule.load_timezone(spec.timezone)
    except ValueError as error:
        issues.append(Issue("spec.timezone", str(error)))
    start, end = spec.start_date, spec.end_date
    if start is not None and end is not None and end < start:
        issues.append(
            Issue("spec.endDate", f"endDate {format_time(end)} is before startDate {format_time(start)}")
        )
    if spec.schedule is not None and spec.schedule.strip() == schedule.ONCE and spec.start_date is None:
        issues.append(Issue("spec.startDate", "schedule @once needs a startDate (the time of its one run)"))
    return issues


_DURATION_FIELDS = (
    ("retry_delay", "retryDelay"),
    ("max_retry_delay", "maxRetryDelay"),
    ("execution_timeout", "executionTimeout"),
)


def _duration(issues: list[Issue], path: str, text: str | None, *, signed: bool = False) -> None:
    if text is None:
        return
    try:
        (durations.parse_signed_duration if signed else durations.parse_duration)(text)
    except ValueError as error:
        issues.append(Issue(path, str(error)))


def _check_defaults(defaults: TaskDefaults) -> list[Issue]:
    issues: list[Issue] = []
    for attribute, wire in _DURATION_FIELDS:
        _duration(issues, f"spec.defaults.{wire}", getattr(defaults, attribute))
    for index, variable in enumerate(defaults.env or []):
        _template(issues, f"spec.defaults.env[{index}].value", variable.value)
    _pod_templates(issues, "spec.defaults.pod", defaults.pod)
    return issues


def _template(issues: list[Issue], path: str, text: str) -> None:
    problem = templating.check_syntax(text)
    if problem is not None:
        where = f" (line {problem.line})" if problem.line is not None else ""
        issues.append(Issue(path, f"template syntax error: {problem.message}{where}"))


def _pod_templates(issues: list[Issue], path: str, pod: dict[str, Any] | None) -> None:
    if not pod:
        return
    metadata = pod.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(annotations, dict):
        for key, value in annotations.items():
            if isinstance(value, str):
                _template(issues, f"{path}.metadata.annotations[{key}]", value)


def _check_tasks(spec: DAGSpec) -> list[Issue]:
    issues: list[Issue] = []
    first_index: dict[str, int] = {}
    for index, task in enumerate(spec.tasks):
        if task.name in first_index:
            issues.append(
                Issue(
                    f"spec.tasks[{index}].name",
                    f"duplicate task name {task.name!r} (also spec.tasks[{first_index[task.name]}])",
                )
            )
        else:
            first_index[task.name] = index
    for index, task in enumerate(spec.tasks):
        issues += _check_task(spec, index, task, first_index)
    try:
        graph = task_graph(spec)
    except CycleError as error:
        if len(error.cycle) == 2:  # a task depending on itself, already reported on its dependsOn entry
            return issues
        first = min(first_index[name] for name in error.cycle)
        issues.append(
            Issue(f"spec.tasks[{first}].dependsOn", f"dependency cycle: {' -> '.join(error.cycle)}")
        )
    else:
        for index, task in enumerate(spec.tasks):
            if task.branch and first_index.get(task.name) == index and not graph.downstream[task.name]:
                issues.append(
                    Issue(
                        f"spec.tasks[{index}].branch",
                        "a branch task needs downstream tasks to choose from (none depends on it)",
                    )
                )
    return issues


def _check_task(spec: DAGSpec, index: int, task: Task, known: dict[str, int]) -> Iterator[Issue]:
    path = f"spec.tasks[{index}]"
    if not names.is_task_name(task.name):
        yield Issue(f"{path}.name", f"invalid task name {task.name!r}: {names.TASK_NAME_RULE}")
    seen: set[str] = set()
    for position, upstream in enumerate(task.depends_on):
        where = f"{path}.dependsOn[{position}]"
        if upstream not in known:
            yield Issue(where, f"unknown upstream task {upstream!r}")
        elif upstream == task.name:
            yield Issue(where, f"task {task.name!r} depends on itself")
        if upstream in seen:
            yield Issue(where, f"{upstream!r} is listed twice")
        seen.add(upstream)
    yield from _check_runnable(path, task)
    kind = task.effective_type()
    if task.skip_exit_code is not None and kind not in (TaskType.bash, TaskType.container, None):
        yield Issue(
            f"{path}.skipExitCode",
            f"{kind.value} tasks have no exit code of their own to skip on"
            + (" (a Python task skips with 99, AirflowSkipException)" if kind is TaskType.python else ""),
        )
    issues: list[Issue] = []
    for attribute, wire in _DURATION_FIELDS:
        _duration(issues, f"{path}.{wire}", getattr(task, attribute))
    if task.sensor is not None:
        _check_sensor(issues, f"{path}.sensor", task.sensor)
    if task.trigger_dag is not None:
        _check_trigger(issues, f"{path}.triggerDag", task.trigger_dag)
    if task.bash is not None:
        _template(issues, f"{path}.bash", task.bash)
    for position, item in enumerate(task.command or []):
        _template(issues, f"{path}.command[{position}]", item)
    for position, item in enumerate(task.args or []):
        _template(issues, f"{path}.args[{position}]", item)
    for position, variable in enumerate(task.env or []):
        _template(issues, f"{path}.env[{position}].value", variable.value)
    _pod_templates(issues, f"{path}.pod", task.pod)
    yield from issues


def _check_sensor(issues: list[Issue], path: str, sensor: ExternalTaskSensor) -> None:
    _duration(issues, f"{path}.offset", sensor.offset, signed=True)
    _duration(issues, f"{path}.pokeInterval", sensor.poke_interval)
    _duration(issues, f"{path}.timeout", sensor.timeout)


def _check_trigger(issues: list[Issue], path: str, trigger: TriggerDag) -> None:
    _duration(issues, f"{path}.pokeInterval", trigger.poke_interval)
    if trigger.logical_date is not None:
        _template(issues, f"{path}.logicalDate", trigger.logical_date)
    for key, value in trigger.conf.items():
        if isinstance(value, str):
            _template(issues, f"{path}.conf[{key}]", value)


_RUN_FIELDS = "set bash, command, args, python or type: empty"


def _check_runnable(path: str, task: Task) -> Iterator[Issue]:
    """What the task runs must be unambiguous and consistent with its `type`."""
    has_bash = task.bash is not None
    has_container = task.command is not None or task.args is not None
    if has_bash and has_container:
        which = "command" if task.command is not None else "args"
        yield Issue(
            f"{path}.{which}",
            f"bash and {which} are exclusive: a task runs a shell script or a container command",
        )
    kind = task.type
    if kind is None:
        special = [
            name
            for name, value in (
                ("sensor", task.sensor),
                ("triggerDag", task.trigger_dag),
                ("python", task.python),
            )
            if value
        ]
        if len(special) >= 2:
            yield Issue(f"{path}.{special[1]}", f"{' and '.join(special)} are exclusive")
        elif special and (has_bash or has_container):
            which = "bash" if has_bash else "command/args"
            yield Issue(
                f"{path}.{special[0]}",
                f"{special[0]} and {which} are exclusive: the task would ignore {which}",
            )
        elif task.effective_type() is None:
            yield Issue(path, f"nothing to run: {_RUN_FIELDS}")
        return
    if kind is TaskType.bash and not has_bash:
        yield Issue(f"{path}.type", "type: bash needs bash (the script to run)")
    elif kind is TaskType.container and not has_container:
        yield Issue(f"{path}.type", "type: container needs command or args")
    elif kind is TaskType.sensor and task.sensor is None:
        yield Issue(f"{path}.type", "type: sensor needs sensor (what to wait for)")
    elif kind is TaskType.trigger_dag and task.trigger_dag is None:
        yield Issue(f"{path}.type", "type: triggerDag needs triggerDag (which DAG to trigger)")
    elif kind is TaskType.python and task.python is None:
        yield Issue(f"{path}.type", "type: python needs python (the function to call)")
    if kind is TaskType.empty and (has_bash or has_container):
        yield Issue(f"{path}.type", "type: empty runs nothing, but bash/command/args is set")
    if kind is not TaskType.bash and kind is not TaskType.empty and has_bash:
        yield Issue(f"{path}.bash", f"bash is set but type is {kind.value}")
    if kind is not TaskType.container and kind is not TaskType.empty and has_container and not has_bash:
        yield Issue(f"{path}.command", f"command/args are set but type is {kind.value}")
    if kind is not TaskType.sensor and task.sensor is not None:
        yield Issue(f"{path}.sensor", f"sensor is set but type is {kind.value}")
    if kind is not TaskType.trigger_dag and task.trigger_dag is not None:
        yield Issue(f"{path}.triggerDag", f"triggerDag is set but type is {kind.value}")
    if kind is not TaskType.python and task.python is not None:
        yield Issue(f"{path}.python", f"python is set but type is {kind.value}")
