"""A Python-defined DAG compiled into the API's DAG resource, or its problems by file and line.

The DAG a Python file builds (kubeflowlite.dsl.model) is turned into the same
wire document a YAML DAG file holds, then parsed by core.loading.parse_dag: one
validation, so a Python DAG and a YAML DAG are accepted and refused alike, and the
local runner and the operator run the result without knowing where it came from.

Python values become the spec's text forms here: `timedelta` -> duration strings
(core.durations), `datetime` -> RFC 3339 (core.schedule; naive means UTC), enums ->
their values, XComArgs in a Python task's arguments -> XCom references. Errors name
the file and line of the task (or DAG) they are about, with field names in the
snake_case the user wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from kubeflowlite.api.dag import DAG as ApiDAG
from kubeflowlite.api.dag import XCOM_REF_KEY
from kubeflowlite.api.times import format_time
from kubeflowlite.core import durations, loading
from kubeflowlite.core.validation import InvalidDAGError, Issue
from kubeflowlite.dsl import model, siblings
from kubeflowlite.dsl import tasks as dsl_tasks
from kubeflowlite.dsl.taskflow import XComArg

__all__ = ["PythonDAGError", "compile_dag", "to_document"]


@dataclass(frozen=True)
class LocatedIssue(Issue):
    """An Issue with the file and line of the Python code it is about."""

    location: model.Location | None = None

    def __str__(self) -> str:
        text = super().__str__()
        return f"{self.location}: {text}" if self.location is not None else text


class PythonDAGError(InvalidDAGError):
    """Problems of a Python DAG file; each line reads `<file>:<line>: <what>: <message>`."""

    def _text(self) -> str:
        return "\n".join(
            str(issue) if isinstance(issue, LocatedIssue) and issue.location else f"{self.source}: {issue}"
            for issue in self.issues
        )


class _ConversionError(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message


def _duration(value: Any, field: str) -> Any:
    if isinstance(value, timedelta):
        if value < timedelta(0) and field != "offset":
            raise _ConversionError(field, f"must not be negative (got {value})")
        return durations.format_duration(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return durations.format_duration(timedelta(seconds=value))
    return value


def _time(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return format_time(datetime(value.year, value.month, value.day, tzinfo=UTC))
    return value


def _interval_as_cron(every: timedelta, start: Any, timezone: Any) -> str | None:
    """Airflow's `schedule=timedelta(...)` as the cron expression with the same run times, if one has.

    Airflow's delta timetable runs at start_date, start_date + every, ...: a cron
    expression anchored at start_date's UTC time does the same when `every` is N minutes
    (N divides 60), N hours (N divides 24), a day or a week. A DAG with another
    timezone, no datetime start_date, or another interval has none (None).
    """
    if timezone not in (None, "UTC") or not isinstance(start, datetime):
        return None
    at = start.astimezone(UTC) if start.tzinfo is not None else start
    if at.second or at.microsecond:
        return None
    seconds = int(every.total_seconds())
    if seconds != every.total_seconds() or seconds <= 0 or seconds % 60:
        return None
    minutes = seconds // 60
    if minutes < 60 and 60 % minutes == 0:
        return f"{at.minute % minutes}-59/{minutes} * * * *" if minutes > 1 else "* * * * *"
    if minutes % 60 == 0 and minutes < 24 * 60 and (24 * 60) % minutes == 0:
        hours = minutes // 60
        return f"{at.minute} {at.hour % hours}-23/{hours} * * *" if hours > 1 else f"{at.minute} * * * *"
    if minutes == 24 * 60:
        return f"{at.minute} {at.hour} * * *"
    if minutes == 7 * 24 * 60:
        return f"{at.minute} {at.hour} * * {at.isoweekday() % 7}"
    return None


def _plain(value: Any) -> Any:
    """Enums as their values, tuples as lists, recursively (for params, conf, pod, ...)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return _time(value)
    return value


def _json_argument(value: Any, field: str) -> Any:
    """A Python task argument as JSON, XComArgs replaced by references."""
    if isinstance(value, XComArg):
        return {XCOM_REF_KEY: {"task": value.operator.task_id, "key": value.key}}
    if isinstance(value, (list, tuple)):
        return [_json_argument(item, field) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_argument(item, field) for key, item in value.items()}
    if isinstance(value, Enum):
        return value.value
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise _ConversionError(
            field,
            f"{type(value).__name__} {value!r} is not a JSON value: a Python task's arguments travel as JSON "
            "(pass a string, number, list or dict, or compute the value inside the function)",
        ) from None
    return value


_DURATION_FIELDS = ("retry_delay", "max_retry_delay", "execution_timeout")


def _task_fields(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _DURATION_FIELDS:
            out[key] = _duration(value, key)
        elif key == "env":
            if isinstance(value, dict):
                out[key] = [{"name": str(name), "value": str(item)} for name, item in value.items()]
            else:
                out[key] = _plain(value)
        else:
            out[key] = _plain(value)
    return out


def _task_document(task: dsl_tasks.BaseTask) -> dict[str, Any]:
    document: dict[str, Any] = {"name": task.task_id}
    if task.upstream:
        document["depends_on"] = [upstream.task_id for upstream in task.upstream]
    document.update(_task_fields(task.fields))
    for key, value in task.spec_fields().items():
        if value is None:
            continue
        if key == "python":
            document[key] = {
                **value,
                "args": _json_argument(value["args"], "args"),
                "kwargs": _json_argument(value["kwargs"], "kwargs"),
                "templates_dict": value["templates_dict"],
            }
            if document[key]["templates_dict"] is None:
                del document[key]["templates_dict"]
        elif key == "sensor":
            document[key] = {
                name: (_duration(item, name) if name in ("offset", "poke_interval", "timeout") else item)
                for name, item in value.items()
            }
        elif key == "trigger_dag":
            document[key] = {
                name: (
                    _duration(item, name)
                    if name == "poke_interval"
                    else _time(item)
                    if name == "logical_date"
                    else _plain(item)
                )
                for name, item in value.items()
            }
        else:
            document[key] = value
    return document


def to_document(dag: model.DAG, *, source: str | None = None) -> dict[str, Any]:
    """The DAG as a wire-ready document (snake_case keys, accepted by the API models).

    `source`: the DAG file's text, embedded when the DAG has Python tasks; None reads
    the file the DAG was defined in.
    """
    issues: list[LocatedIssue] = []
    metadata: dict[str, Any] = {"name": dag.dag_id}
    if dag.namespace:
        metadata["namespace"] = dag.namespace
    if dag.labels:
        metadata["labels"] = dag.labels
    if dag.annotations:
        metadata["annotations"] = dag.annotations
    spec: dict[str, Any] = {}
    for key, value in dag.fields.items():
        if key in ("start_date", "end_date"):
            spec[key] = _time(value)
        elif key == "schedule" and isinstance(value, timedelta):
            cron = _interval_as_cron(value, dag.fields.get("start_date"), dag.fields.get("timezone"))
            if cron is not None:
                spec[key] = cron
                continue
            issues.append(
                LocatedIssue(
                    "schedule",
                    f"a timedelta schedule ({value}) is not supported here: only a whole number of "
                    "minutes dividing an hour, of hours dividing a day, one day or one week, starting "
                    "on start_date (a UTC DAG) has a cron equivalent; use a cron expression",
                    dag.location,
                )
            )
        else:
            spec[key] = _plain(value)
    try:
        defaults = _task_fields(dag.defaults)
    except _ConversionError as error:
        issues.append(LocatedIssue(f"default_args.{error.field}", error.message, dag.location))
        defaults = {}
    if defaults:
        spec["defaults"] = defaults
    tasks: list[dict[str, Any]] = []
    for task in dag.tasks.values():
        try:
            tasks.append(_task_document(task))
        except _ConversionError as error:
            issues.append(LocatedIssue(f"task {task.task_id!r}: {error.field}", error.message, task.location))
    spec["tasks"] = tasks
    if issues:
        raise PythonDAGError(issues, dag.location.file)
    if any(isinstance(task, dsl_tasks.Python) for task in dag.tasks.values()):
        code = source if source is not None else Path(dag.location.file).read_text(encoding="utf-8")
        spec["python_source"] = {"filename": Path(dag.location.file).name, "code": code}
        modules = siblings.sibling_modules(dag.location.file, code)
        if modules:
            spec["python_source"]["modules"] = modules
    return {"apiVersion": "kubeflowlite.io/v1alpha1", "kind": "DAG", "metadata": metadata, "spec": spec}


_TASK_PATH = re.compile(r"^spec\.tasks\[(\d+)\](\.(.*))?$")


def _snake(path: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), path)


def _locate(dag: model.DAG, issues: Iterable[Issue]) -> list[LocatedIssue]:
    """Issues of the compiled document, pointed at the task (or DAG) line they are about."""
    tasks = list(dag.tasks.values())
    located: list[LocatedIssue] = []
    for issue in issues:
        match = _TASK_PATH.match(issue.path)
        if match and int(match.group(1)) < len(tasks):
            task = tasks[int(match.group(1))]
            rest = _snake(match.group(3)) if match.group(3) else ""
            path = f"task {task.task_id!r}" + (f": {rest}" if rest else "")
            located.append(LocatedIssue(path, issue.message, task.location))
            continue
        path = issue.path
        if path.startswith("spec.defaults."):
            path = "default_args." + _snake(path[len("spec.defaults.") :])
        elif path.startswith("spec."):
            path = f"DAG {dag.dag_id!r}: " + _snake(path[len("spec.") :])
        elif path == "metadata.name":
            path = "dag_id"
        located.append(LocatedIssue(path, issue.message, dag.location))
    return located


def compile_dag(dag: model.DAG, *, source: str | None = None) -> ApiDAG:
    """`dag` as the API's DAG resource, validated like a YAML DAG; PythonDAGError naming lines if not."""
    document = to_document(dag, source=source)
    try:
        return loading.parse_dag(document, source=dag.location.file)
    except InvalidDAGError as error:
        raise PythonDAGError(_locate(dag, error.issues), dag.location.file) from None
