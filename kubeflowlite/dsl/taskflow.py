"""TaskFlow: `@task` functions whose calls make tasks and whose results make dependencies.

As in Airflow 2: inside `with DAG(...)` (or a `@dag` function), calling a function
decorated with `@task` creates a Python task and returns an `XComArg`, a stand-in
for the task's future return value. Passing it to another task's call makes that
task downstream and, when it runs, pulls the value (`xcom["key"]` pulls one key of
a dict result). `@task.branch` and `@task.short_circuit` make branch and
short-circuit tasks; `@task.bash` runs the shell script the function returns.
While a task's function runs (kubeflowlite.pytask), get_current_context() returns
its context, as in Airflow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from kubeflowlite.dsl.model import DAG, DagDefinitionError, Location, caller_location, current_dag
from kubeflowlite.dsl.tasks import BaseTask, DependencyMixin, Python, no_mapping

__all__ = ["TaskDecorator", "TaskFunction", "XComArg", "dag", "get_current_context", "running", "task"]

RETURN_VALUE = "return_value"


class XComArg(DependencyMixin):
    """The XCom `key` (default: the return value) of `operator`, resolved when a downstream task runs."""

    def __init__(self, operator: BaseTask, key: str = RETURN_VALUE) -> None:
        self.operator = operator
        self.key = key

    def _own_tasks(self) -> list[BaseTask]:
        return [self.operator]

    def __getitem__(self, key: str) -> XComArg:
        return XComArg(self.operator, key)

    def __repr__(self) -> str:
        return f"XComArg({self.operator.task_id!r}, key={self.key!r})"

    def __str__(self) -> str:
        """As in Airflow: the template that pulls the value (`f"echo {xcom}"` in a templated field).

        Airflow writes `task_instance.xcom_pull(...)`; `ti` is the same object there and
        the name every kubeflowlite template context has.
        """
        return f"{{{{ ti.xcom_pull(task_ids='{self.operator.task_id}', key='{self.key}') }}}}"


_running: list[Mapping[str, Any]] = []
"""The context of the task this process is running (kubeflowlite.pytask sets it around the call)."""


def get_current_context() -> Mapping[str, Any]:
    """Airflow's get_current_context(): the running task's context (`ds`, `ti`, `params`, ...)."""
    if not _running:
        raise RuntimeError("get_current_context() is only available while a task runs")
    return _running[-1]


class running:
    """`with running(context):` the function called inside sees `context` as get_current_context()."""

    def __init__(self, context: Mapping[str, Any]) -> None:
        self.context = context

    def __enter__(self) -> Mapping[str, Any]:
        _running.append(self.context)
        return self.context

    def __exit__(self, *exc: object) -> None:
        _running.remove(self.context)


_MARKUP = ("{{", "{%", "{#")


class ReturnedBash:
    """@task.bash: call the function, run the shell script it returns, return its last output line.

    What Airflow's @task.bash does, run by the Python task's bootstrap: the returned
    script is a Jinja template rendered with the task's context (as a BashOperator's
    bash_command), its output goes to the task's log, a non-zero exit fails the task.
    In a Pod, rendering a script with markup needs kubeflowlite (and jinja2) installed
    in the task's image, as `macros` does (the project image has them).
    """

    def __init__(self, function: Callable[..., Any]) -> None:
        functools.update_wrapper(self, function)
        self.function = function

    def render(self, script: str) -> str:
        """`script` rendered as a template with the running task's context (unchanged without markup)."""
        if not any(mark in script for mark in _MARKUP):
            return script
        what = f"@task.bash {self.function.__name__}()"
        try:
            from kubeflowlite.core import templating
        except ImportError as error:
            raise RuntimeError(
                f"{what} returned a Jinja template; rendering it needs kubeflowlite and jinja2 "
                f"installed in the task's image ({error})"
            ) from None
        return templating.render_string(script, get_current_context(), field=what)

    def __call__(self, *args: Any, **kwargs: Any) -> str | None:
        import subprocess
        import sys

        script = self.function(*args, **kwargs)
        if not isinstance(script, str) or not script.strip():
            raise ValueError(f"@task.bash {self.function.__name__}() must return a non-empty shell script")
        script = self.render(script)
        last: str | None = None
        with subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True) as process:
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                if line.strip():
                    last = line.rstrip()
        if process.returncode != 0:
            raise RuntimeError(f"the script exited with code {process.returncode}")
        return last


OptionsHook = Callable[[dict[str, Any], Location, DAG], dict[str, Any]]
"""Turns a @task's options (as written) into Python task fields, given the call's line and DAG."""


class TaskFunction:
    """A function decorated with @task: call it inside a DAG to add a task."""

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        flags: Mapping[str, Any],
        options: Mapping[str, Any],
        translate: OptionsHook | None = None,
    ):
        functools.update_wrapper(self, function)
        self.function = function
        self.flags = dict(flags)
        self.options = dict(options)
        self.translate = translate

    def override(self, **options: Any) -> TaskFunction:
        """The same function with other task options (task_id, retries, ...) for the next call."""
        return TaskFunction(
            self.function, flags=self.flags, options={**self.options, **options}, translate=self.translate
        )

    def expand(self, **_: Any) -> XComArg:
        raise no_mapping(f"@task {self.function.__name__}().expand")

    def partial(self, **_: Any) -> TaskFunction:
        raise no_mapping(f"@task {self.function.__name__}().partial")

    def expand_kwargs(self, *_: Any) -> XComArg:
        raise no_mapping(f"@task {self.function.__name__}().expand_kwargs")

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        location = caller_location()
        options = dict(self.options)
        owner = options.pop("dag", None) or current_dag()
        if owner is None:
            raise DagDefinitionError(
                f"@task {self.function.__name__}() called outside a DAG: call it inside `with DAG(...)` "
                "or a @dag function",
                location,
            )
        if self.translate is not None:
            options = self.translate(options, location, owner)
        task_id = owner.unique_task_id(options.pop("task_id", None) or self.function.__name__)
        flags = dict(self.flags)
        runs = ReturnedBash(self.function) if flags.pop("bash", False) else self.function
        created = Python(task_id, runs, args=args, kwargs=kwargs, dag=owner, **flags, **options)
        created.location = location
        return XComArg(created)


class TaskDecorator:
    """`task`, `task.python`, `task.branch`, `task.short_circuit`: with or without options."""

    def __init__(self, *, translate: OptionsHook | None = None, **flags: Any) -> None:
        self._flags = flags
        self._translate = translate

    def __call__(self, python_callable: Callable[..., Any] | None = None, **options: Any) -> Any:
        if python_callable is not None:
            return TaskFunction(
                python_callable, flags=self._flags, options=options, translate=self._translate
            )

        def decorate(function: Callable[..., Any]) -> TaskFunction:
            return TaskFunction(function, flags=self._flags, options=options, translate=self._translate)

        return decorate

    @property
    def python(self) -> TaskDecorator:
        return TaskDecorator(translate=self._translate, **self._flags)

    @property
    def branch(self) -> TaskDecorator:
        return TaskDecorator(translate=self._translate, branch=True)

    @property
    def short_circuit(self) -> TaskDecorator:
        return TaskDecorator(translate=self._translate, short_circuit=True)

    @property
    def bash(self) -> TaskDecorator:
        return TaskDecorator(translate=self._translate, bash=True)

    def __getattr__(self, name: str) -> Any:
        """@task.virtualenv, @task.docker, @task.sensor, ...: refused, naming the decorator and the line."""
        if name.startswith("__"):
            raise AttributeError(name)
        raise DagDefinitionError(
            f"@task.{name} is not supported by kubeflowlite (supported: @task, @task.python, @task.branch, "
            "@task.short_circuit, @task.bash; a task's image= gives it other packages)",
            caller_location(),
        )


task = TaskDecorator()
"""@task, @task(retries=2, multiple_outputs=True), @task.branch, @task.short_circuit, @task.bash.

`TaskDecorator(translate=...)` makes another such decorator whose options are translated
first (kubeflowlite.airflow's, for Airflow's operator arguments)."""


def dag(
    dag_id: str | None = None, *, dag_class: type[DAG] = DAG, **dag_options: Any
) -> Callable[[Callable[..., Any]], Callable[..., DAG]]:
    """@dag(schedule=..., start_date=...): calling the function builds a DAG named after it (or dag_id).

    A DAG id is a Kubernetes object name, so the function name's underscores become
    hyphens (my_pipeline -> my-pipeline; `dag_class.id_from_function`). `dag_class`
    is the DAG type built (kubeflowlite.airflow's takes Airflow's arguments).

    The function's keyword arguments with defaults become the DAG's params, as in Airflow.
    """

    decorated_at = caller_location()

    def decorate(function: Callable[..., Any]) -> Callable[..., DAG]:
        @functools.wraps(function)
        def build(*args: Any, **kwargs: Any) -> DAG:
            import inspect

            options = dict(dag_options)
            params = dict(options.pop("params", None) or {})
            for name, parameter in inspect.signature(function).parameters.items():
                if parameter.default is not inspect.Parameter.empty:
                    params.setdefault(name, parameter.default)
            if params:
                options["params"] = params
            try:
                created = dag_class(dag_id or dag_class.id_from_function(function.__name__), **options)
            except DagDefinitionError as error:  # about the @dag(...) arguments: name that line
                raise DagDefinitionError(error.detail, decorated_at) from None
            created.location = caller_location()
            with created:
                function(*args, **kwargs)
            return created

        return build

    return decorate
