"""DAGs written in Python: `with DAG(...)`, where each task is defined and the DAGs a file made.

This is what a Python DAG file builds when it is imported: plain objects recording
what the user wrote (Python values such as `timedelta` and `datetime` included) and
the file and line of each DAG and task. Nothing here checks the values: compiling
(kubeflowlite.dsl.compile) turns a DAG into the API's DAG resource, and the one
validation of the YAML spec judges it, its errors mapped back to these lines.

Only the standard library is imported, because a Python task's process (a
subprocess or a Pod) imports its DAG file again to find its function: defining the
DAG there must stay cheap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubeflowlite.dsl.tasks import BaseTask

__all__ = ["DAG", "DagDefinitionError", "Location", "caller_location", "collecting", "current_dag"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Location:
    """Where in a DAG file something was defined."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def caller_location() -> Location:
    """The first frame outside the kubeflowlite package: the user's DAG file line."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep):
            return Location(filename, frame.f_lineno)
        frame = frame.f_back  # type: ignore[assignment]
    return Location("<unknown>", 0)


class DagDefinitionError(ValueError):
    """A mistake in a Python DAG file, reported with the file and line it was made on."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.location = location if location is not None else caller_location()
        self.detail = message
        super().__init__(f"{self.location}: {message}")


# -- the DAGs a file defines ------------------------------------------------------------

_dag_stack: list[DAG] = []
_collectors: list[list[DAG]] = []


def current_dag() -> DAG | None:
    """The DAG of the innermost `with DAG(...)` block, if any."""
    return _dag_stack[-1] if _dag_stack else None


class collecting:
    """`with collecting() as dags:` every DAG created inside the block is appended to `dags`.

    The loader imports a DAG file under it, so DAGs made in functions (Airflow's
    `@dag` factories) are found as well as module-level ones.
    """

    def __init__(self) -> None:
        self.dags: list[DAG] = []

    def __enter__(self) -> list[DAG]:
        _collectors.append(self.dags)
        return self.dags

    def __exit__(self, *exc: object) -> None:
        _collectors.remove(self.dags)


DAG_FIELDS = (
    "description",
    "schedule",
    "timezone",
    "start_date",
    "end_date",
    "catchup",
    "paused",
    "max_active_runs",
    "max_active_tasks",
    "tags",
    "params",
    "pod_cleanup",
    "successful_runs_history_limit",
    "failed_runs_history_limit",
)
"""Keyword arguments of DAG() that are fields of the spec (spec.<camelCase name>)."""

TASK_DEFAULT_FIELDS = (
    "image",
    "owner",
    "retries",
    "retry_delay",
    "retry_exponential_backoff",
    "max_retry_delay",
    "execution_timeout",
    "depends_on_past",
    "trigger_rule",
    "env",
    "connections",
    "pod",
)
"""Task fields that default_args may set for every task (spec.defaults)."""

_DEFAULT_ARGS_DAG_FIELDS = ("start_date", "end_date")
"""default_args keys that Airflow DAG files use for the DAG itself."""


class DAG:
    """A DAG being defined: `with DAG("tutorial", schedule="55 14 * * *", ...) as dag:` collects tasks.

    Every keyword is a field of the YAML spec in snake_case; durations may be
    `timedelta`s and dates `datetime`s (naive means UTC). `default_args` takes the
    task fields (`retries`, `retry_delay`, `owner`, ...) plus `start_date`/`end_date`.
    """

    def __init__(
        self,
        dag_id: str,
        *,
        default_args: Mapping[str, Any] | None = None,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> None:
        self.location = caller_location()
        if not isinstance(dag_id, str):
            raise DagDefinitionError(f"dag_id must be a string, got {type(dag_id).__name__}", self.location)
        unknown = sorted(set(fields) - set(DAG_FIELDS))
        if unknown:
            raise DagDefinitionError(
                f"DAG {dag_id!r}: unknown argument {unknown[0]!r} (valid: {', '.join(DAG_FIELDS)}, "
                "default_args, namespace, labels, annotations)",
                self.location,
            )
        self.dag_id = dag_id
        self.fields: dict[str, Any] = {key: value for key, value in fields.items() if value is not None}
        self.defaults: dict[str, Any] = {}
        for key, value in dict(default_args or {}).items():
            if key in _DEFAULT_ARGS_DAG_FIELDS:
                if value is not None:
                    self.fields.setdefault(key, value)
            elif key in TASK_DEFAULT_FIELDS:
                if value is not None:
                    self.defaults[key] = value
            else:
                raise DagDefinitionError(
                    f"DAG {dag_id!r}: default_args has unknown key {key!r} (valid: "
                    f"{', '.join(TASK_DEFAULT_FIELDS + _DEFAULT_ARGS_DAG_FIELDS)})",
                    self.location,
                )
        self.default_args = dict(default_args or {})
        self.namespace = namespace
        self.labels = dict(labels) if labels else None
        self.annotations = dict(annotations) if annotations else None
        self.tasks: dict[str, BaseTask] = {}
        for collector in _collectors:
            collector.append(self)

    @staticmethod
    def id_from_function(name: str) -> str:
        """The id of a DAG built by a @dag function called `name`: a Kubernetes name (`_` -> `-`)."""
        return name.replace("_", "-").lower()

    # -- context manager ------------------------------------------------------------------

    def __enter__(self) -> DAG:
        _dag_stack.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _dag_stack.remove(self)

    # -- tasks ----------------------------------------------------------------------------

    def add_task(self, task: BaseTask) -> None:
        if task.task_id in self.tasks:
            first = self.tasks[task.task_id].location
            raise DagDefinitionError(
                f"DAG {self.dag_id!r} already has a task {task.task_id!r} (defined at {first})", task.location
            )
        self.tasks[task.task_id] = task

    @property
    def task_ids(self) -> list[str]:
        return list(self.tasks)

    @property
    def task_dict(self) -> dict[str, BaseTask]:
        return dict(self.tasks)

    def get_task(self, task_id: str) -> BaseTask:
        return self.tasks[task_id]

    def unique_task_id(self, base: str) -> str:
        """`base`, or `base__1`, `base__2`, ... as Airflow names repeated TaskFlow calls."""
        if base not in self.tasks:
            return base
        index = 1
        while f"{base}__{index}" in self.tasks:
            index += 1
        return f"{base}__{index}"

    def compile(self) -> Any:
        """This DAG as the API's DAG resource (kubeflowlite.api.dag.DAG), validated; see dsl.compile."""
        from kubeflowlite.dsl import compile as compiler

        return compiler.compile_dag(self)

    def __repr__(self) -> str:
        return f"<DAG {self.dag_id} ({len(self.tasks)} tasks)>"
