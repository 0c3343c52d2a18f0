"""What a Python function task's process is told: one JSON document, the same from both shells.

The local runner writes it to a file, the operator renders it into the task's
Pod; kubeflowlite.pytask reads it, imports the DAG file's source, finds the
function and calls it. Built here, purely, from the try's template context so that
`ds`, `params`, `run_id` ... mean in a Python task exactly what they mean in a
template, and `templates_dict` is rendered like any other templated field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubeflowlite.api.dag import DAG, Task
from kubeflowlite.api.times import format_time
from kubeflowlite.core import taskenv, templating
from kubeflowlite.core.xcom import NO_XCOM

__all__ = ["PAYLOAD_VERSION", "payload"]

PAYLOAD_VERSION = 1


def _iso(value: Any) -> str | None:
    return format_time(value) if isinstance(value, datetime) else None


def _render_strings(value: Any, context: Mapping[str, Any], *, field: str) -> Any:
    """Every string in `value` rendered as a template (Airflow templates op_args and op_kwargs)."""
    if isinstance(value, str):
        return (
            templating.render_string(value, context, field=field) if templating.has_markup(value) else value
        )
    if isinstance(value, list):
        return [_render_strings(item, context, field=f"{field}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _render_strings(item, context, field=f"{field}[{key}]") for key, item in value.items()}
    return value


def payload(
    *,
    dag: DAG,
    task: Task,
    context: Mapping[str, Any],
    try_number: int,
    xcoms: Mapping[str, Any],
    variables: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON document for one try of Python task `task` (DAG defaults merged in).

    `context` is the try's template context (core.templating.template_context);
    `xcoms` the run's stored values so far (task id -> value), `variables` the
    Variables (for Variable.get while the DAG file is imported again). Strings in the
    arguments and `templates_dict` are rendered (TemplateError if one does not).
    """
    call = task.python
    if call is None:
        raise ValueError(f"task {task.name!r} is not a Python task")
    templates = {
        key: templating.render_string(value, context, field=f"tasks[{task.name}].python.templatesDict[{key}]")
        for key, value in (call.templates_dict or {}).items()
    }
    dag_run = context["dag_run"]
    field = f"tasks[{task.name}].python"
    return {
        "version": PAYLOAD_VERSION,
        "dag_id": dag.dag_id,
        "task_id": task.name,
        "try_number": try_number,
        "callable": call.callable,
        "args": _render_strings(call.args, context, field=f"{field}.args"),
        "kwargs": _render_strings(call.kwargs, context, field=f"{field}.kwargs"),
        "templates_dict": templates if call.templates_dict is not None else None,
        "multiple_outputs": call.multiple_outputs,
        "params": dict(context["params"]),
        "conf": dict(context["conf"]),
        "run_type": dag_run.run_type,
        **{key: context.get(key) for key in taskenv.PYTASK_TEXT_FACTS},
        **{key: _iso(context.get(key)) for key in taskenv.PYTASK_TIME_FACTS},
        "xcoms": {name: value for name, value in xcoms.items() if value is not NO_XCOM},
        "variables": dict(variables or {}),
    }
