"""Airflow's DAG-file names, mapped onto kubeflowlite's DSL: the implementation behind kubeflowlite.airflow.*.

A DAG file moves over by changing its imports (`from airflow.operators.bash
import BashOperator` -> `from kubeflowlite.airflow.operators.bash import
BashOperator`). Each Airflow argument is either translated to a field of the
spec, accepted with a warning when it has no meaning here (email: alerting is
Prometheus's job; pool, queue: Kubernetes schedules Pods), or refused with an
error naming the argument and the line: never silently ignored.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeflowlite.core import variables
from kubeflowlite.core.taskenv import SKIP_EXIT_CODE
from kubeflowlite.core.trigger_rule import TriggerRule as Rules
from kubeflowlite.dsl import model
from kubeflowlite.dsl import tasks as dsl_tasks
from kubeflowlite.dsl.model import DagDefinitionError, Location, caller_location

__all__ = [
    "DAG",
    "AirflowException",
    "AirflowSkipException",
    "BaseOperator",
    "BashOperator",
    "BranchPythonOperator",
    "DummyOperator",
    "EmptyOperator",
    "ExternalTaskSensor",
    "PythonOperator",
    "ShortCircuitOperator",
    "TriggerDagRunOperator",
    "TriggerRule",
    "Variable",
    "days_ago",
]

ALERTS_POINTER = (
    "kubeflowlite sends no email: alerting is Prometheus's job (the chart's PrometheusRule, "
    "helm/kubeflowlite/templates/prometheusrule.yaml, alerts on failed tasks and runs)"
)


class AirflowCompatWarning(UserWarning):
    """An Airflow argument that is accepted but has no effect here."""


def _warn(message: str, location: Location) -> None:
    warnings.warn_explicit(message, AirflowCompatWarning, location.file, location.line)


def _unsupported(what: str, argument: str, location: Location, hint: str = "") -> DagDefinitionError:
    text = f"{what}: {argument!r} is not supported by kubeflowlite"
    return DagDefinitionError(text + (f" ({hint})" if hint else ""), location)


_WARN_EMAIL = ("email", "email_on_failure", "email_on_retry")
_WARN_IGNORED = {
    "pool": "Kubernetes schedules task Pods; there are no pools",
    "queue": "Kubernetes schedules task Pods; there are no queues",
    "priority_weight": "Kubernetes schedules task Pods (use pod={'priorityClassName': ...})",
    "weight_rule": "Kubernetes schedules task Pods",
}
_IGNORED_SILENTLY = ("provide_context", "doc", "doc_md", "doc_rst", "doc_json", "doc_yaml", "do_xcom_push")
_TASK_FIELDS = {
    "owner": "owner",
    "retries": "retries",
    "retry_delay": "retry_delay",
    "retry_exponential_backoff": "retry_exponential_backoff",
    "max_retry_delay": "max_retry_delay",
    "execution_timeout": "execution_timeout",
    "depends_on_past": "depends_on_past",
    "trigger_rule": "trigger_rule",
}
_HINTS = {
    "on_failure_callback": "callbacks do not run; alert with Prometheus instead",
    "on_success_callback": "callbacks do not run",
    "on_retry_callback": "callbacks do not run",
    "on_execute_callback": "callbacks do not run",
    "sla": "SLAs are not tracked",
    "sla_miss_callback": "SLAs are not tracked",
    "wait_for_downstream": "only depends_on_past is supported",
    "executor_config": "use pod= (merged into the task's Pod)",
    "pool_slots": "there are no pools",
    "task_concurrency": "use the DAG's max_active_tasks",
    "max_active_tis_per_dag": "use the DAG's max_active_tasks",
    "dagrun_timeout": "use execution_timeout on tasks",
    "user_defined_macros": "templates have Airflow's built-in macros only",
    "user_defined_filters": "templates have Jinja's built-in filters only",
    "template_searchpath": "templates are strings in the DAG file",
    "templates_exts": "templates are strings in the DAG file",
}


def _task_options(
    what: str, options: Mapping[str, Any], location: Location, *, dag: model.DAG | None
) -> dict[str, Any]:
    """Airflow task arguments as DSL task fields; warns or raises for the others."""
    fields: dict[str, Any] = {}
    for key, value in options.items():
        if key in _TASK_FIELDS:
            fields[_TASK_FIELDS[key]] = value
        elif key == "dag":
            fields["dag"] = value
        elif key == "params":
            _merge_params(what, value, location, dag=dag)
        elif key in _WARN_EMAIL:
            if value:
                _warn(f"{what}: {key}: {ALERTS_POINTER}", location)
        elif key in _WARN_IGNORED:
            _warn(f"{what}: {key} is ignored: {_WARN_IGNORED[key]}", location)
        elif key in _IGNORED_SILENTLY:
            continue
        elif key in ("start_date", "end_date"):
            _warn(f"{what}: a task's {key} is ignored: the DAG's applies to every task", location)
        elif key in ("image", "env", "pod", "connections"):
            fields[key] = value
        else:
            raise _unsupported(what, key, location, _HINTS.get(key, ""))
    return fields


def _merge_params(what: str, params: Any, location: Location, *, dag: model.DAG | None) -> None:
    """Task-level params join the DAG's params (one params mapping per DAG here); a clash is an error."""
    owner = dag if dag is not None else model.current_dag()
    if owner is None or not params:
        return
    current = dict(owner.fields.get("params") or {})
    for name, value in dict(params).items():
        if name in current and current[name] != value:
            raise DagDefinitionError(
                f"{what}: params[{name!r}] = {value!r} differs from the DAG's {current[name]!r}: "
                "kubeflowlite has one params mapping per DAG",
                location,
            )
        current[name] = value
    owner.fields["params"] = current


def _split(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    task_id = options.pop("task_id", None)
    if task_id is None:
        raise DagDefinitionError("an operator needs task_id=", caller_location())
    return task_id, options


# -- DAG ------------------------------------------------------------------------------------

AIRFLOW_DAG_ID_ANNOTATION = "kubeflowlite.io/airflow-dag-id"


def dag_name(dag_id: Any) -> Any:
    """An Airflow dag_id as a DAG name: DAG names are Kubernetes object names, so `my_dag` -> `my-dag`.

    Applied alike to DAG ids, ExternalTaskSensor's external_dag_id and
    TriggerDagRunOperator's trigger_dag_id, so references keep pointing at the same DAG.
    """
    return dag_id.replace("_", "-").lower() if isinstance(dag_id, str) else dag_id


_DAG_DIRECT = ("description", "start_date", "end_date", "catchup", "tags", "params", "max_active_runs")


class DAG(model.DAG):
    """Airflow's DAG(dag_id, schedule_interval=..., default_args=..., ...); `my_dag` is named `my-dag`."""

    def __init__(self, dag_id: str, *args: Any, **options: Any) -> None:
        location = caller_location()
        if len(args) > 1:
            raise DagDefinitionError(
                "DAG: pass the arguments after dag_id and description by name (schedule_interval=..., ...)",
                location,
            )
        if args:  # Airflow's second positional parameter
            options.setdefault("description", args[0])
        fields: dict[str, Any] = {}
        for key in _DAG_DIRECT:
            if key in options:
                fields[key] = options.pop(key)
        for key in ("schedule", "schedule_interval"):
            if key in options:
                fields["schedule"] = options.pop(key)
        for key in ("max_active_tasks", "concurrency"):
            if key in options:
                fields["max_active_tasks"] = options.pop(key)
        if "is_paused_upon_creation" in options:
            fields["paused"] = options.pop("is_paused_upon_creation")
        if "timezone" in options:
            fields["timezone"] = str(options.pop("timezone"))
        default_args = dict(options.pop("default_args", None) or {})
        for key in _IGNORED_SILENTLY:
            options.pop(key, None)
        for key in options:
            raise _unsupported("DAG", key, location, _HINTS.get(key, ""))
        defaults: dict[str, Any] = {}
        for key, value in default_args.items():
            if key in _TASK_FIELDS:
                defaults[_TASK_FIELDS[key]] = value
            elif key in ("start_date", "end_date"):
                defaults[key] = value
            elif key == "params":
                fields["params"] = {**dict(value or {}), **dict(fields.get("params") or {})}
            elif key in _WARN_EMAIL:
                if value:
                    _warn(f"default_args: {key}: {ALERTS_POINTER}", location)
            elif key in _WARN_IGNORED:
                _warn(f"default_args: {key} is ignored: {_WARN_IGNORED[key]}", location)
            elif key in ("image", "env", "pod", "connections"):
                defaults[key] = value
            elif key in _IGNORED_SILENTLY:
                continue
            else:
                raise _unsupported("default_args", key, location, _HINTS.get(key, ""))
        name = dag_name(dag_id)
        annotations = {AIRFLOW_DAG_ID_ANNOTATION: dag_id} if name != dag_id else None
        super().__init__(name, default_args=defaults, annotations=annotations, **fields)
        self.location = location

    @staticmethod
    def id_from_function(name: str) -> str:
        """A @dag function's name is its Airflow dag_id as written (__init__ makes it a name)."""
        return name


# -- operators ------------------------------------------------------------------------------


_TEMPLATE_PUSH = re.compile(r"\{\{[^}]*\bxcom_push\s*\(")
"""`{{ ti.xcom_push(...) }}` in a template: Airflow stores the value while rendering; not here."""


class BashOperator(dsl_tasks.Bash):
    """Airflow's BashOperator: bash_command (templated), env (templated values)."""

    def __init__(self, **options: Any) -> None:
        location = caller_location()
        task_id, options = _split(options)
        command = options.pop("bash_command", None)
        if not isinstance(command, str):
            raise DagDefinitionError(f"BashOperator {task_id!r}: bash_command must be a string", location)
        if command.strip().endswith((".sh", ".bash")):
            raise _unsupported(
                "BashOperator",
                "bash_command ending in .sh",
                location,
                "template files are not read: inline the script",
            )
        options.pop("append_env", None)
        for text in (command, *dict(options.get("env") or {}).values()):
            if isinstance(text, str) and _TEMPLATE_PUSH.search(text):
                raise _unsupported(
                    "BashOperator",
                    "xcom_push in a template",
                    location,
                    "templates only read; a bash task's XCom is its last output line",
                )
        skip = options.pop("skip_on_exit_code", options.pop("skip_exit_code", SKIP_EXIT_CODE))
        if isinstance(skip, (list, tuple, set)) and len(skip) <= 1:
            skip = next(iter(skip), None)
        if skip is not None and (isinstance(skip, bool) or not isinstance(skip, int)):
            raise _unsupported(
                "BashOperator",
                "skip_on_exit_code with several codes",
                location,
                "give one exit code (or None)",
            )
        options.pop("output_encoding", None)
        fields = _task_options("BashOperator", options, location, dag=options.get("dag"))
        # As Airflow's: exit code 99 (or the one given; None for none) ends the try skipped.
        super().__init__(task_id, command, skip_exit_code=skip, **fields)
        self.location = location


def _python_options(what: str, options: dict[str, Any], location: Location) -> dict[str, Any]:
    callable_ = options.pop("python_callable", None)
    if callable_ is None:
        raise DagDefinitionError(f"{what}: python_callable is required", location)
    if options.pop("templates_exts", None):
        raise _unsupported(what, "templates_exts", location, _HINTS["templates_exts"])
    options.pop("show_return_value_in_logs", None)
    return {
        "python_callable": callable_,
        "args": list(options.pop("op_args", None) or []),
        "kwargs": dict(options.pop("op_kwargs", None) or {}),
        "templates_dict": options.pop("templates_dict", None),
        "multiple_outputs": bool(options.pop("multiple_outputs", False)),
    }


_TASKFLOW_OWN = ("task_id", "multiple_outputs", "ignore_downstream_trigger_rules")
"""@task options that are the TaskFlow decorator's own, passed through as they are."""


def taskflow_options(options: dict[str, Any], location: Location, dag: model.DAG) -> dict[str, Any]:
    """Airflow's @task(...) options as Python task fields: the operator arguments' rules apply."""
    options = dict(options)
    own = {key: options.pop(key) for key in _TASKFLOW_OWN if key in options}
    options.pop("show_return_value_in_logs", None)
    if options.pop("templates_exts", None):
        raise _unsupported("@task", "templates_exts", location, _HINTS["templates_exts"])
    return {**own, **_task_options("@task", options, location, dag=dag)}


class PythonOperator(dsl_tasks.Python):
    """Airflow's PythonOperator: python_callable, op_args, op_kwargs (templated), templates_dict, provide_context."""

    _flags: dict[str, Any] = {}  # noqa: RUF012 - class-level constant per subclass

    def __init__(self, **options: Any) -> None:
        location = caller_location()
        what = type(self).__name__
        task_id, options = _split(options)
        python = _python_options(what, options, location)
        fields = _task_options(what, options, location, dag=options.get("dag"))
        super().__init__(task_id, python.pop("python_callable"), **python, **fields, **self._flags)
        self.location = location


class BranchPythonOperator(PythonOperator):
    """Airflow's BranchPythonOperator: the callable returns the task id(s) to follow."""

    _flags = {"branch": True}  # noqa: RUF012


class ShortCircuitOperator(PythonOperator):
    """Airflow's ShortCircuitOperator: a falsy return value skips everything downstream."""

    _flags = {"short_circuit": True}  # noqa: RUF012

    def __init__(self, **options: Any) -> None:
        self._ignore_downstream = options.pop("ignore_downstream_trigger_rules", True)
        super().__init__(**options)
        if self._ignore_downstream is False:
            self.fields["ignore_downstream_trigger_rules"] = False


class EmptyOperator(dsl_tasks.Empty):
    """Airflow's EmptyOperator (DummyOperator before 2.4)."""

    def __init__(self, **options: Any) -> None:
        location = caller_location()
        task_id, options = _split(options)
        fields = _task_options(type(self).__name__, options, location, dag=options.get("dag"))
        super().__init__(task_id, **fields)
        self.location = location


class DummyOperator(EmptyOperator):
    """Airflow 1.10's name for EmptyOperator."""


def _seconds(value: Any) -> Any:
    return (
        timedelta(seconds=value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    )


class ExternalTaskSensor(dsl_tasks.Sensor):
    """Airflow's ExternalTaskSensor: external_dag_id, external_task_id, execution_delta, states, poke_interval, timeout."""

    def __init__(self, **options: Any) -> None:
        location = caller_location()
        task_id, options = _split(options)
        for key in ("execution_date_fn", "external_task_ids", "external_task_group_id", "check_existence"):
            if options.get(key):
                raise _unsupported("ExternalTaskSensor", key, location)
        delta = options.pop("execution_delta", None)
        sensor = {
            "external_dag_id": dag_name(options.pop("external_dag_id", None)),
            "external_task_id": options.pop("external_task_id", None),
            "offset": -delta if isinstance(delta, timedelta) else None,
            "allowed_states": options.pop("allowed_states", None),
            "failed_states": options.pop("failed_states", None),
            "poke_interval": _seconds(options.pop("poke_interval", None)),
            "timeout": _seconds(options.pop("timeout", None)),
        }
        options.pop("mode", None)
        options.pop("soft_fail", None)
        if sensor["external_dag_id"] is None:
            raise DagDefinitionError(f"ExternalTaskSensor {task_id!r}: external_dag_id is required", location)
        fields = _task_options("ExternalTaskSensor", options, location, dag=options.get("dag"))
        super().__init__(task_id, **sensor, **fields)
        self.location = location


class TriggerDagRunOperator(dsl_tasks.Trigger):
    """Airflow's TriggerDagRunOperator: trigger_dag_id, conf, logical_date/execution_date, wait_for_completion."""

    def __init__(self, **options: Any) -> None:
        location = caller_location()
        task_id, options = _split(options)
        if options.pop("python_callable", None) is not None:
            raise _unsupported(
                "TriggerDagRunOperator", "python_callable", location, "pass conf= instead (1.10 style)"
            )
        trigger = {
            "trigger_dag_id": dag_name(options.pop("trigger_dag_id", None)),
            "conf": options.pop("conf", None),
            "logical_date": options.pop("logical_date", None) or options.pop("execution_date", None),
            "wait_for_completion": options.pop("wait_for_completion", None),
            "poke_interval": _seconds(options.pop("poke_interval", None)),
        }
        for key in ("reset_dag_run", "allowed_states", "failed_states", "trigger_run_id", "deferrable"):
            if options.pop(key, None):
                _warn(f"TriggerDagRunOperator: {key} is ignored", location)
        if trigger["trigger_dag_id"] is None:
            raise DagDefinitionError(
                f"TriggerDagRunOperator {task_id!r}: trigger_dag_id is required", location
            )
        fields = _task_options("TriggerDagRunOperator", options, location, dag=options.get("dag"))
        super().__init__(task_id, **trigger, **fields)
        self.location = location


class BaseOperator:
    """Airflow's BaseOperator, importable so that a custom operator is refused where it is defined.

    A subclass's execute() would run inside Airflow's worker; kubeflowlite runs
    tasks as processes and Pods, so the class statement itself is the error.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise DagDefinitionError(
            f"custom operator {cls.__name__}: subclassing BaseOperator is not supported by kubeflowlite "
            "(write the work as a @task function or a PythonOperator callable)",
            caller_location(),
        )


# -- the rest --------------------------------------------------------------------------------


class AirflowException(Exception):
    """Airflow's base exception: raising it fails the task."""


class AirflowSkipException(AirflowException):
    """Airflow's skip signal: raised in a Python task, the task ends `skipped` (kubeflowlite.pytask)."""


class _TriggerRuleNames:
    """Airflow's TriggerRule constants (TriggerRule.ALL_DONE == "all_done"), from the API's enum.

    A name kubeflowlite does not support is an AttributeError naming it, raised on
    the DAG file's line that uses it.
    """

    def __getattr__(self, name: str) -> str:
        try:
            return Rules[name.lower()].value
        except KeyError:
            raise AttributeError(
                f"TriggerRule.{name} is not supported by kubeflowlite "
                f"(supported: {', '.join(rule.name.upper() for rule in Rules)})"
            ) from None


TriggerRule = _TriggerRuleNames()


def days_ago(n: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    """Airflow's days_ago: midnight UTC (or the given time) `n` days ago."""
    today = datetime.now(UTC).replace(hour=hour, minute=minute, second=second, microsecond=microsecond)
    return today - timedelta(days=n)


_MISSING = object()


class Variable:
    """Airflow's Variable.get: the same Variables templates see (core.variables)."""

    @staticmethod
    def get(key: str, default_var: Any = _MISSING, deserialize_json: bool = False) -> Any:
        import json

        raw = variables.lookup(key)
        if raw is None:
            if default_var is not _MISSING:
                return default_var
            raise KeyError(
                f"Variable {key} does not exist (locally: KFL_VAR_{key} or the KFL_VARIABLES_FILE JSON; "
                f"on a cluster: `kubeflowlite variables set {key} ...`)"
            )
        return json.loads(raw) if deserialize_json else raw


def chain(*tasks: Any) -> None:
    dsl_tasks.chain(*tasks)


def cross_downstream(from_tasks: Sequence[Any], to_tasks: Sequence[Any]) -> None:
    """Airflow's cross_downstream: every task of from_tasks upstream of every task of to_tasks."""
    for task in from_tasks:
        task >> list(to_tasks)
