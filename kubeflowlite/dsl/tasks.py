"""The tasks of a Python-defined DAG, and the dependencies between them (`>>`, `<<`, chain, Label).

Each task records the spec fields the user set (Python values as written), its
upstream tasks and the file and line it was made on; kubeflowlite.dsl.compile turns
them into the spec's task fields. A task joins the DAG it is given (`dag=`) or the
one of the enclosing `with DAG(...)`. Standard library only, like dsl.model.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from kubeflowlite.dsl.model import (
    DAG,
    TASK_DEFAULT_FIELDS,
    DagDefinitionError,
    Location,
    caller_location,
    current_dag,
)

__all__ = [
    "BaseTask",
    "Bash",
    "Branch",
    "Command",
    "DependencyMixin",
    "Empty",
    "Label",
    "Python",
    "Sensor",
    "ShortCircuit",
    "Trigger",
    "chain",
    "no_mapping",
]


# -- dependencies -----------------------------------------------------------------------


def _tasks_of(value: Any, *, where: Location | None = None) -> list[BaseTask]:
    """The tasks `value` stands for: a task, an XComArg (its task), or a list/tuple/set of them."""
    if isinstance(value, BaseTask):
        return [value]
    operator = getattr(value, "operator", None)
    if isinstance(operator, BaseTask):
        return [operator]
    if isinstance(value, (list, tuple, set, frozenset)):
        found: list[BaseTask] = []
        for item in value:
            found += _tasks_of(item, where=where)
        return found
    raise DagDefinitionError(f"cannot make a dependency on {type(value).__name__} {value!r}", where)


class DependencyMixin:
    """`>>`, `<<`, set_upstream and set_downstream, for tasks and things that stand for tasks."""

    def _own_tasks(self) -> list[BaseTask]:
        raise NotImplementedError

    def set_upstream(self, other: Any) -> None:
        location = caller_location()
        for task in self._own_tasks():
            for upstream in _tasks_of(other, where=location):
                task._add_upstream(upstream, location)

    def set_downstream(self, other: Any) -> None:
        location = caller_location()
        for task in self._own_tasks():
            for downstream in _tasks_of(other, where=location):
                downstream._add_upstream(task, location)

    def __rshift__(self, other: Any) -> Any:
        if isinstance(other, Label):
            other._upstream += self._own_tasks()
            return other
        self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> Any:
        # [a, b] >> self
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> Any:
        # [a, b] << self
        self.set_downstream(other)
        return self


class Label:
    """An edge label (`a >> Label("on success") >> b`): documentation only, the edge is a -> b."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._upstream: list[BaseTask] = []

    def __rrshift__(self, other: Any) -> Label:
        self._upstream += _tasks_of(other, where=caller_location())
        return self

    def __rshift__(self, other: Any) -> Any:
        location = caller_location()
        for downstream in _tasks_of(other, where=location):
            for upstream in self._upstream:
                downstream._add_upstream(upstream, location)
        return other


def chain(*elements: Any) -> None:
    """Airflow's chain(a, b, [c, d], e): each element upstream of the next; two lists pair up item by item."""
    location = caller_location()
    for left, right in itertools.pairwise(elements):
        if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            if len(left) != len(right):
                raise DagDefinitionError(
                    f"chain: lists of different lengths ({len(left)} and {len(right)}) cannot be paired",
                    location,
                )
            for up, down in zip(left, right, strict=True):
                for task in _tasks_of(down, where=location):
                    for upstream in _tasks_of(up, where=location):
                        task._add_upstream(upstream, location)
            continue
        for task in _tasks_of(right, where=location):
            for upstream in _tasks_of(left, where=location):
                task._add_upstream(upstream, location)


# -- tasks ------------------------------------------------------------------------------


def no_mapping(what: str) -> DagDefinitionError:
    """The error for Airflow's dynamic task mapping (`.partial(...)`, `.expand(...)`), at the caller's line."""
    return DagDefinitionError(
        f"{what}: dynamic task mapping is not supported by kubeflowlite (a DAG's tasks are fixed when "
        "it is compiled; loop in the DAG file or inside one task)",
        caller_location(),
    )


class BaseTask(DependencyMixin):
    """A task of a DAG: its id, the spec fields the user set, its upstream tasks and its line.

    Keyword arguments are the task fields of the YAML spec in snake_case
    (`retries`, `retry_delay`, `execution_timeout`, `trigger_rule`, `env` as a dict,
    `pod`, `image`, `owner`, `depends_on_past`, `branch`, `short_circuit`, `skip_exit_code`, ...).
    """

    kind: ClassVar[str] = ""
    COMMON_FIELDS: ClassVar[tuple[str, ...]] = (
        *TASK_DEFAULT_FIELDS,
        "branch",
        "short_circuit",
        "ignore_downstream_trigger_rules",
        "skip_exit_code",
    )

    def __init__(self, task_id: str, *, dag: DAG | None = None, **fields: Any) -> None:
        self.location = caller_location()
        if not isinstance(task_id, str):
            raise DagDefinitionError(f"task_id must be a string, got {type(task_id).__name__}", self.location)
        self.task_id = task_id
        unknown = sorted(set(fields) - set(self.COMMON_FIELDS))
        if unknown:
            raise DagDefinitionError(
                f"task {task_id!r}: unknown argument {unknown[0]!r} (valid: {', '.join(self.COMMON_FIELDS)})",
                self.location,
            )
        self.fields: dict[str, Any] = {key: value for key, value in fields.items() if value is not None}
        self.upstream: list[BaseTask] = []
        owner = dag if dag is not None else current_dag()
        if owner is None:
            raise DagDefinitionError(
                f"task {task_id!r} is not in a DAG: create it inside `with DAG(...)` or pass dag=",
                self.location,
            )
        self.dag = owner
        owner.add_task(self)

    def _own_tasks(self) -> list[BaseTask]:
        return [self]

    @classmethod
    def partial(cls, **_: Any) -> Any:
        """Airflow's `Operator.partial(...).expand(...)`: refused (no dynamic task mapping)."""
        raise no_mapping(f"{cls.__name__}.partial")

    def _add_upstream(self, upstream: BaseTask, location: Location) -> None:
        if upstream.dag is not self.dag:
            raise DagDefinitionError(
                f"{upstream.task_id!r} (DAG {upstream.dag.dag_id!r}) and {self.task_id!r} "
                f"(DAG {self.dag.dag_id!r}) are in different DAGs",
                location,
            )
        if upstream is self:
            raise DagDefinitionError(f"task {self.task_id!r} cannot depend on itself", location)
        if upstream not in self.upstream:
            self.upstream.append(upstream)

    @property
    def upstream_task_ids(self) -> set[str]:
        return {task.task_id for task in self.upstream}

    @property
    def downstream_task_ids(self) -> set[str]:
        return {task.task_id for task in self.dag.tasks.values() if self in task.upstream}

    def spec_fields(self) -> dict[str, Any]:
        """The fields this kind of task sets itself (bash, command, python, ...), as Python values."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_id}>"


class Bash(BaseTask):
    """A shell script run with `sh -c` (Airflow's BashOperator); Jinja-templated."""

    kind = "bash"

    def __init__(self, task_id: str, bash: str, **fields: Any) -> None:
        super().__init__(task_id, **fields)
        self.bash = bash

    def spec_fields(self) -> dict[str, Any]:
        return {"bash": self.bash}


class Command(BaseTask):
    """A container entrypoint and its arguments (locally: the program, exec'd directly)."""

    kind = "container"

    def __init__(
        self,
        task_id: str,
        command: Sequence[str] | None = None,
        args: Sequence[str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(task_id, **fields)
        self.command = None if command is None else _string_list(command)
        self.args = None if args is None else _string_list(args)

    def spec_fields(self) -> dict[str, Any]:
        return {"command": self.command, "args": self.args}


def _string_list(value: Sequence[str] | str) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class Empty(BaseTask):
    """A task that runs nothing and succeeds (Airflow's EmptyOperator / DummyOperator)."""

    kind = "empty"

    def spec_fields(self) -> dict[str, Any]:
        return {"type": "empty"}


class Python(BaseTask):
    """A Python function called in the task's process or Pod (Airflow's PythonOperator).

    The function may be a lambda or use its file's imports, constants and helpers:
    the DAG file's source travels with the DAG, and the task's process imports it
    again to call the function. `args`/`kwargs` must be JSON values (or XComArgs,
    which pull the other task's XCom and make it upstream). The return value is the
    task's XCom. A function taking `**context` or named context arguments (`ds`,
    `ti`, `params`, ...) gets Airflow's context.
    """

    kind = "python"

    def __init__(
        self,
        task_id: str,
        python_callable: Callable[..., Any],
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        templates_dict: Mapping[str, str] | None = None,
        multiple_outputs: bool = False,
        **fields: Any,
    ) -> None:
        super().__init__(task_id, **fields)
        if not callable(python_callable):
            raise DagDefinitionError(
                f"task {task_id!r}: python_callable must be callable, got {type(python_callable).__name__}",
                self.location,
            )
        self.python_callable = python_callable
        self.args = list(args)
        self.kwargs = dict(kwargs or {})
        self.templates_dict = dict(templates_dict) if templates_dict is not None else None
        self.multiple_outputs = multiple_outputs
        for value in _walk(self.args) + _walk(list(self.kwargs.values())):
            operator = getattr(value, "operator", None)
            if isinstance(operator, BaseTask) and operator is not self:
                self._add_upstream(operator, self.location)

    @property
    def output(self) -> Any:
        """This task's return value as an XComArg, for passing to other tasks."""
        from kubeflowlite.dsl.taskflow import XComArg

        return XComArg(self)

    def spec_fields(self) -> dict[str, Any]:
        name = getattr(self.python_callable, "__qualname__", None) or repr(self.python_callable)
        return {
            "python": {
                "callable": name,
                "args": self.args,
                "kwargs": self.kwargs,
                "templates_dict": self.templates_dict,
                "multiple_outputs": self.multiple_outputs,
            }
        }


def _walk(values: Iterable[Any]) -> list[Any]:
    """Every value nested in lists, tuples and dict values (to find XComArgs in arguments)."""
    found: list[Any] = []
    for value in values:
        found.append(value)
        if isinstance(value, (list, tuple)):
            found += _walk(value)
        elif isinstance(value, dict):
            found += _walk(value.values())
    return found


class Branch(Python):
    """A Python function that returns the task id(s) to follow; the other direct downstream tasks are skipped."""

    def __init__(self, task_id: str, python_callable: Callable[..., Any], **fields: Any) -> None:
        super().__init__(task_id, python_callable, branch=True, **fields)


class ShortCircuit(Python):
    """A Python function whose falsy return value skips every task downstream of it."""

    def __init__(self, task_id: str, python_callable: Callable[..., Any], **fields: Any) -> None:
        super().__init__(task_id, python_callable, short_circuit=True, **fields)


class Sensor(BaseTask):
    """Wait for a task (or a whole run) of another DAG (Airflow's ExternalTaskSensor)."""

    kind = "sensor"

    def __init__(
        self,
        task_id: str,
        *,
        external_dag_id: str,
        external_task_id: str | None = None,
        offset: Any = None,
        allowed_states: Sequence[str] | None = None,
        failed_states: Sequence[str] | None = None,
        poke_interval: Any = None,
        timeout: Any = None,
        **fields: Any,
    ) -> None:
        super().__init__(task_id, **fields)
        self.sensor = {
            "dag": external_dag_id,
            "task": external_task_id,
            "offset": offset,
            "allowed_states": None if allowed_states is None else list(allowed_states),
            "failed_states": None if failed_states is None else list(failed_states),
            "poke_interval": poke_interval,
            "timeout": timeout,
        }

    def spec_fields(self) -> dict[str, Any]:
        return {"sensor": {key: value for key, value in self.sensor.items() if value is not None}}


class Trigger(BaseTask):
    """Start a run of another DAG (Airflow's TriggerDagRunOperator)."""

    kind = "triggerDag"

    def __init__(
        self,
        task_id: str,
        *,
        trigger_dag_id: str,
        conf: Mapping[str, Any] | None = None,
        logical_date: Any = None,
        wait_for_completion: bool | None = None,
        poke_interval: Any = None,
        **fields: Any,
    ) -> None:
        super().__init__(task_id, **fields)
        self.trigger = {
            "dag": trigger_dag_id,
            "conf": None if conf is None else dict(conf),
            "logical_date": logical_date,
            "wait_for_completion": wait_for_completion,
            "poke_interval": poke_interval,
        }

    def spec_fields(self) -> dict[str, Any]:
        return {"trigger_dag": {key: value for key, value in self.trigger.items() if value is not None}}
