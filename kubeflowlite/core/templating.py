"""Jinja templating of task commands, with Airflow's template context.

Airflow users write `{{ ds }}`, `{{ macros.ds_add(ds, 7) }}`, `{{ params.x }}` and
`{{ ti.xcom_pull(task_ids='a') }}` in their commands; the same templates must render
to the same text here, in the local runner and in the operator. Two rules differ from
a bare Jinja environment on purpose:

- StrictUndefined: a typo (`params.my_paramm`) is an error naming the task field,
  never a silently empty string in a shell command;
- ImmutableSandboxedEnvironment: a DAG file is data a cluster user submits, so a
  template cannot reach Python internals (`''.__class__.__mro__`) or mutate objects.

Pure: the context is built from values the caller passes in (variables come from
the environment only through `variables_from_env`, XComs through a callable).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kubeflowlite.api.dag import DAG, Task
from kubeflowlite.core import variables as variable_rules
from kubeflowlite.core.connections import template_connections
from kubeflowlite.core.schedule import RunInterval, Schedule

if TYPE_CHECKING:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "VARIABLE_ENV_PREFIX",
    "RenderedTask",
    "TemplateError",
    "TemplateSyntaxIssue",
    "check_syntax",
    "render_mapping",
    "render_string",
    "render_task",
    "run_id_for",
    "template_context",
    "variables_from_env",
]

VARIABLE_ENV_PREFIX = variable_rules.VARIABLE_ENV_PREFIX
"""Environment variables KFL_VAR_<name> become Airflow Variables ({{ var.value.<name> }})."""


class TemplateError(Exception):
    """A template failed to compile or render; the message starts with the field, e.g. `tasks[t].bash: ...`."""

    def __init__(self, field: str, message: str, *, line: int | None = None) -> None:
        self.field = field
        self.detail = message
        self.line = line
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"{field}: {message}{where}")


@dataclass(frozen=True)
class RenderedTask:
    """A task's runnable fields after rendering (the shape k8s.pods.build_pod and the local runner use)."""

    bash: str | None
    command: list[str] | None
    args: list[str] | None
    env: dict[str, str] = field(default_factory=dict)


@functools.cache
def _environment() -> ImmutableSandboxedEnvironment:
    """The one Jinja environment, made (and Jinja imported) the first time text with markup is seen:
    commands without templates, and CLI commands that render none, never pay for it."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # keep_trailing_newline: a bash script's last line ends with a newline as written.
    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


# -- the context ------------------------------------------------------------------------


def run_id_for(run_type: str, logical_date: datetime) -> str:
    """Airflow's run id: `<type>__<logical date in ISO 8601, UTC>`, e.g. scheduled__2020-02-09T00:00:00+00:00."""
    moment = logical_date.replace(tzinfo=UTC) if logical_date.tzinfo is None else logical_date.astimezone(UTC)
    return f"{run_type}__{moment.isoformat()}"


def variables_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Variables from KFL_VAR_<name> environment variables (core.variables.from_env)."""
    return variable_rules.from_env(environ)


class _VariableAccessor:
    """`var.value.X` / `var.json.X`: a missing variable is an error naming it, as Airflow's KeyError."""

    def __init__(self, variables: Mapping[str, str], *, as_json: bool) -> None:
        self._variables = variables
        self._as_json = as_json

    def _lookup(self, name: str) -> Any:
        if name not in self._variables:
            known = ", ".join(sorted(self._variables)) or "none"
            raise KeyError(
                f"variable {name!r} is not set (set it with the environment variable "
                f"{VARIABLE_ENV_PREFIX}{name}; known: {known})"
            )
        raw = self._variables[name]
        if not self._as_json:
            return raw
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"variable {name!r} is not valid JSON: {error}") from None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._lookup(name)

    def __getitem__(self, name: str) -> Any:
        return self._lookup(name)

    def get(self, name: str, default: Any = None) -> Any:
        """`var.value.get('x', 'fallback')`: a variable that may be unset."""
        return self._lookup(name) if name in self._variables else default


@dataclass(frozen=True)
class _Var:
    value: _VariableAccessor
    json: _VariableAccessor


@dataclass(frozen=True)
class _TaskInstance:
    """`ti` in templates: the try being rendered, and XCom access to the run's other tasks."""

    task_id: str
    dag_id: str
    run_id: str
    try_number: int
    _pull: Callable[..., Any] | None

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **kwargs: Any) -> Any:
        """Airflow's ti.xcom_pull: the value pushed by `task_ids` (a name or a list of names); None if unknown."""
        if self._pull is None:
            return None
        return self._pull(task_ids=task_ids, key=key, **kwargs)


@dataclass(frozen=True)
class _DagRun:
    run_id: str
    conf: Mapping[str, Any]
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    run_type: str


@dataclass(frozen=True)
class _DagInfo:
    dag_id: str
    description: str | None
    tags: list[str]
    schedule: str | None
    schedule_interval: str | None
    timezone: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class _TaskInfo:
    task_id: str
    owner: str | None
    retries: int | None
    depends_on: list[str]
    trigger_rule: str
    image: str | None


def _ds_add(ds: str, days: int) -> str:
    """macros.ds_add('2020-02-09', 7) == '2020-02-16'."""
    return (datetime.strptime(ds, "%Y-%m-%d") + timedelta(days=int(days))).strftime("%Y-%m-%d")


def _ds_format(ds: str, input_format: str, output_format: str) -> str:
    """macros.ds_format('2020-02-09', '%Y-%m-%d', '%d/%m/%Y') == '09/02/2020'."""
    return datetime.strptime(ds, input_format).strftime(output_format)


@dataclass(frozen=True)
class _Macros:
    ds_add: Callable[[str, int], str]
    ds_format: Callable[[str, str, str], str]
    datetime: type[datetime]
    timedelta: type[timedelta]
    json: Any


class _JsonModule:
    """macros.json.dumps / loads: the only parts of the json module a template needs."""

    @staticmethod
    def dumps(value: Any, **kwargs: Any) -> str:
        return json.dumps(value, **kwargs)

    @staticmethod
    def loads(text: str) -> Any:
        return json.loads(text)


_MACROS = _Macros(
    ds_add=_ds_add, ds_format=_ds_format, datetime=datetime, timedelta=timedelta, json=_JsonModule()
)


MACROS = _MACROS
"""`macros` of the template context (also given to Python tasks)."""


def _ds(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d")


def _previous_on_schedule(dag: DAG, logical: datetime) -> datetime | None:
    try:
        return Schedule.from_spec(dag.spec).logical_date_before(logical)
    except ValueError:
        return None


def template_context(
    *,
    dag: DAG,
    task: Task,
    interval: RunInterval,
    run_id: str,
    conf: Mapping[str, Any],
    try_number: int,
    xcom_pull: Callable[..., Any] | None = None,
    variables: Mapping[str, str] | None = None,
    connections: Mapping[str, str] | None = None,
    prev_logical_date: datetime | None = None,
    next_logical_date: datetime | None = None,
) -> dict[str, Any]:
    """The Jinja context of one try of `task` (Airflow's names: ds, ts, params, ti, macros, var, conn, ...).

    `variables` are Variable texts by name, `connections` connection texts (URI or
    JSON, core.connections) by id.

    `params` are the DAG's params overridden key by key by the run's `conf`. When
    prev/next logical dates are not given, a scheduled interval takes them from the
    schedule (the fire time before it, and its end), as Airflow's prev_ds/next_ds of a
    cron DAG; a manual run's interval [date, date] has neither.
    """
    logical = interval.logical_date.astimezone(UTC)
    start = interval.data_interval_start.astimezone(UTC)
    end = interval.data_interval_end.astimezone(UTC)
    if end > start and (prev_logical_date is None or next_logical_date is None):
        # A scheduled interval: its neighbours on the schedule are the previous and next runs.
        if next_logical_date is None:
            next_logical_date = end
        if prev_logical_date is None:
            prev_logical_date = _previous_on_schedule(dag, logical)
    run_type = run_id.partition("__")[0] if "__" in run_id else "manual"
    params = {**dag.spec.params, **conf}
    variable_values = dict(variables or {})
    effective_rule = task.trigger_rule.value if task.trigger_rule is not None else "all_success"
    ti = _TaskInstance(
        task_id=task.name, dag_id=dag.dag_id, run_id=run_id, try_number=try_number, _pull=xcom_pull
    )
    return {
        "ds": logical.strftime("%Y-%m-%d"),
        "ds_nodash": logical.strftime("%Y%m%d"),
        "ts": logical.isoformat(),
        "ts_nodash": logical.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": logical.strftime("%Y%m%dT%H%M%S") + "+0000",
        "logical_date": logical,
        "execution_date": logical,
        "data_interval_start": start,
        "data_interval_end": end,
        "prev_ds": _ds(prev_logical_date),
        "next_ds": _ds(next_logical_date),
        "prev_ds_nodash": None
        if prev_logical_date is None
        else prev_logical_date.astimezone(UTC).strftime("%Y%m%d"),
        "next_ds_nodash": None
        if next_logical_date is None
        else next_logical_date.astimezone(UTC).strftime("%Y%m%d"),
        "prev_logical_date": prev_logical_date,
        "next_logical_date": next_logical_date,
        "run_id": run_id,
        "dag": _DagInfo(
            dag_id=dag.dag_id,
            description=dag.spec.description,
            tags=list(dag.spec.tags),
            schedule=dag.spec.schedule,
            schedule_interval=dag.spec.schedule,
            timezone=dag.spec.timezone,
            params=dict(dag.spec.params),
        ),
        "task": _TaskInfo(
            task_id=task.name,
            owner=task.owner,
            retries=task.retries,
            depends_on=list(task.depends_on),
            trigger_rule=effective_rule,
            image=task.image,
        ),
        "task_instance_key_str": f"{dag.dag_id}__{task.name}__{logical.strftime('%Y%m%d')}",
        "params": params,
        "conf": dict(conf),
        "dag_run": _DagRun(
            run_id=run_id,
            conf=dict(conf),
            logical_date=logical,
            data_interval_start=start,
            data_interval_end=end,
            run_type=run_type,
        ),
        "var": _Var(
            value=_VariableAccessor(variable_values, as_json=False),
            json=_VariableAccessor(variable_values, as_json=True),
        ),
        "macros": _MACROS,
        "conn": template_connections(connections or {}),
        "ti": ti,
        "task_instance": ti,  # Airflow's longer name for the same object
    }


# -- rendering --------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateSyntaxIssue:
    """A template that does not compile: the message and the 1-based line within the field."""

    message: str
    line: int | None


_MARKUP = ("{{", "{%", "{#")


def has_markup(text: str) -> bool:
    """Does `text` contain Jinja markup at all? (Text without it renders as itself.)"""
    return any(marker in text for marker in _MARKUP)


@functools.lru_cache(maxsize=4096)
def check_syntax(text: str) -> TemplateSyntaxIssue | None:
    """None if `text` compiles as a Jinja template, else what is wrong and on which line.

    Cached, and text without Jinja markup is not parsed at all: validating a DAG of
    10,000 tasks that share a few command shapes stays fast.
    """
    if not has_markup(text):
        return None
    import jinja2

    try:
        _environment().parse(text)
    except jinja2.TemplateSyntaxError as error:
        return TemplateSyntaxIssue(error.message or str(error), error.lineno)
    return None


def _error_line(error: BaseException) -> int | None:
    """The template line a runtime error happened on, from the traceback Jinja rewrites."""
    line = None
    trace = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


@functools.lru_cache(maxsize=1024)
def _compile(text: str) -> jinja2.Template:
    """Compiled templates are immutable, so one compilation serves every try that renders the same text."""
    return _environment().from_string(text)


def render_string(text: str, context: Mapping[str, Any], *, field: str = "template") -> str:
    """`text` rendered with `context`; TemplateError naming `field` on any syntax or runtime error.

    Text without markup renders as itself (as Jinja would render it), without Jinja.
    """
    if not has_markup(text):
        return text
    import jinja2
    from jinja2.exceptions import SecurityError

    try:
        template = _compile(text)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(field, error.message or str(error), line=error.lineno) from None
    try:
        return template.render(context)
    except SecurityError as error:
        raise TemplateError(field, f"not allowed in a template: {error}", line=_error_line(error)) from None
    except jinja2.UndefinedError as error:
        raise TemplateError(field, error.message or str(error), line=_error_line(error)) from None
    except jinja2.TemplateError as error:
        raise TemplateError(field, error.message or str(error), line=_error_line(error)) from None
    except KeyError as error:
        detail = error.args[0] if error.args else repr(error)
        raise TemplateError(field, str(detail), line=_error_line(error)) from None
    except Exception as error:
        raise TemplateError(field, f"{type(error).__name__}: {error}", line=_error_line(error)) from None


def render_mapping(values: Mapping[str, str], context: Mapping[str, Any], *, field: str) -> dict[str, str]:
    """Each value rendered (keys as written); errors name `field[key]`. Used for pod annotations."""
    return {key: render_string(value, context, field=f"{field}[{key}]") for key, value in values.items()}


def render_task(task: Task, context: Mapping[str, Any]) -> RenderedTask:
    """The task's bash, command, args and env values rendered (`task` already has the DAG defaults merged)."""
    prefix = f"tasks[{task.name}]"
    bash = None if task.bash is None else render_string(task.bash, context, field=f"{prefix}.bash")
    command = (
        None
        if task.command is None
        else [
            render_string(item, context, field=f"{prefix}.command[{i}]")
            for i, item in enumerate(task.command)
        ]
    )
    args = (
        None
        if task.args is None
        else [render_string(item, context, field=f"{prefix}.args[{i}]") for i, item in enumerate(task.args)]
    )
    env = {
        variable.name: render_string(variable.value, context, field=f"{prefix}.env[{variable.name}]")
        for variable in task.env or []
    }
    return RenderedTask(bash=bash, command=command, args=args, env=env)
