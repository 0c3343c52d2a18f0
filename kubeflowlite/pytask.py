"""`python -m kubeflowlite.pytask`: run one try of a Python function task, in a subprocess or a Pod.

Both shells start the same entrypoint with the same inputs (names in core.taskenv):
the DAG file's source (a file: the run directory locally, a ConfigMap volume in a
Pod) and the try's context as JSON (core.pytask.payload). It imports the source
as a module, as Airflow's workers do, so the function may use the file's imports,
constants and helpers, and lambdas and `@task` functions are found by DAG and task
id. The function is called with its JSON arguments (XCom references resolved) and
the Airflow-style context it asks for (`**context`, or named `ds`, `ti`, `params`,
...). Its return value, plus any `ti.xcom_push` keys, is written to KFL_XCOM_FILE
under core.xcom's rules (JSON, 4 KiB), so the shell stores it like any task's.

Exit codes: 0 success, 1 the function raised or its value cannot be stored, 2 the
inputs are unusable, 99 (core.taskenv.SKIP_EXIT_CODE) the function raised
AirflowSkipException: the shells report the try skipped. Standard library only (plus the stdlib-only parts of
kubeflowlite): this is what a task image must be able to import.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from kubeflowlite.core import taskenv, variables, xcom
from kubeflowlite.dsl import files, model, taskflow
from kubeflowlite.dsl import tasks as dsl_tasks
from kubeflowlite.dsl.taskflow import TaskFunction

EXIT_FAILED = 1
EXIT_USAGE = 2

XCOM_REF_KEY = xcom.XCOM_REF_KEY


class TaskInputError(Exception):
    """The try's inputs (source, context, function) are unusable."""


class TaskInstance:
    """`ti` / `task_instance` in a Python task: who this try is, and XCom access."""

    def __init__(self, facts: Mapping[str, Any]) -> None:
        self.dag_id: str = facts["dag_id"]
        self.task_id: str = facts["task_id"]
        self.run_id: str = facts["run_id"]
        self.try_number: int = facts["try_number"]
        self._xcoms: Mapping[str, Any] = facts.get("xcoms") or {}
        self.pushed: dict[str, Any] = {}

    def xcom_pull(
        self,
        task_ids: str | list[str] | tuple[str, ...] | None = None,
        key: str | None = xcom.RETURN_VALUE,
        **_: Any,
    ) -> Any:
        """XCom `key` of `task_ids` (one id, or a list: a list of values); None where there is none."""
        if task_ids is None:
            task_ids = self.task_id
        if isinstance(task_ids, str):
            if task_ids == self.task_id:
                return self.pushed.get(key or xcom.RETURN_VALUE)
            return xcom.select(self._xcoms.get(task_ids, xcom.NO_XCOM), key)
        return [self.xcom_pull(task, key) for task in task_ids]

    def xcom_push(self, key: str, value: Any) -> None:
        """Push `value` under `key` (stored with the return value when the function ends)."""
        if not isinstance(key, str) or not key:
            raise ValueError("xcom_push needs a non-empty string key")
        self.pushed[key] = value


class DagRun:
    """`dag_run` in a Python task."""

    def __init__(self, facts: Mapping[str, Any]) -> None:
        self.run_id: str = facts["run_id"]
        self.conf: dict[str, Any] = dict(facts.get("conf") or {})
        self.run_type: str = facts.get("run_type") or "manual"
        self.logical_date = _time(facts.get("logical_date"))
        self.execution_date = self.logical_date
        self.data_interval_start = _time(facts.get("data_interval_start"))
        self.data_interval_end = _time(facts.get("data_interval_end"))


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class _Macros:
    """`macros` in a Python task: the template macros, loaded only if used."""

    def __getattr__(self, name: str) -> Any:
        from kubeflowlite.core import templating

        return getattr(templating.MACROS, name)


class _Variables:
    """`var.value.x` / `var.json.x` in a Python task (and a @task.bash template): core.variables."""

    def __init__(self, *, as_json: bool) -> None:
        self._as_json = as_json

    def get(self, name: str, default: Any = None) -> Any:
        raw = variables.lookup(name)
        if raw is None:
            return default
        return json.loads(raw) if self._as_json else raw

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        missing = object()
        value = self.get(name, missing)
        if value is missing:
            raise KeyError(f"Variable {name} does not exist")
        return value


class _Var:
    def __init__(self) -> None:
        self.value = _Variables(as_json=False)
        self.json = _Variables(as_json=True)


def build_context(
    facts: Mapping[str, Any], dag: model.DAG | None, task: dsl_tasks.BaseTask | None
) -> dict[str, Any]:
    """Airflow's context for a Python callable: the names a DAG file's functions ask for."""
    ti = TaskInstance(facts)
    context: dict[str, Any] = {key: facts.get(key) for key in taskenv.PYTASK_TEXT_FACTS}
    for key in taskenv.PYTASK_TIME_FACTS:
        context[key] = _time(facts.get(key))
    context.update(
        execution_date=context["logical_date"],
        params=dict(facts.get("params") or {}),
        conf=dict(facts.get("conf") or {}),
        dag_run=DagRun(facts),
        ti=ti,
        task_instance=ti,
        templates_dict=facts.get("templates_dict"),
        dag=dag,
        task=task,
        macros=_Macros(),
        var=_Var(),
        try_number=facts["try_number"],
    )
    return context


def resolve(value: Any, ti: TaskInstance) -> Any:
    """Arguments with XCom references ({"__kfl_xcom__": {"task", "key"}}) replaced by the values."""
    if isinstance(value, dict):
        if set(value) == {XCOM_REF_KEY} and isinstance(value[XCOM_REF_KEY], dict):
            ref = value[XCOM_REF_KEY]
            return ti.xcom_pull(task_ids=ref["task"], key=ref.get("key", xcom.RETURN_VALUE))
        return {key: resolve(item, ti) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, ti) for item in value]
    return value


def find_callable(
    source: str, filename: str, facts: Mapping[str, Any]
) -> tuple[Callable[..., Any], model.DAG | None, dsl_tasks.BaseTask | None]:
    """The task's function: by DAG and task id in the file's DAGs, else the module attribute named `callable`."""
    try:
        module, dags = files.exec_dag_source(source, filename)
    except files.DagFileError as error:
        raise TaskInputError(str(error)) from error
    for dag in dags:
        if dag.dag_id != facts["dag_id"]:
            continue
        task = dag.tasks.get(facts["task_id"])
        if isinstance(task, dsl_tasks.Python):
            return task.python_callable, dag, task
    target: Any = module
    for part in str(facts.get("callable") or "").split("."):
        target = getattr(target, part, None)
    if isinstance(target, TaskFunction):
        target = taskflow.ReturnedBash(target.function) if target.flags.get("bash") else target.function
    if not callable(target):
        raise TaskInputError(
            f"{filename} defines no task {facts['task_id']!r} in DAG {facts['dag_id']!r} "
            f"and no function {facts.get('callable')!r}"
        )
    return target, None, None


def call_with_context(
    function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], context: Mapping[str, Any]
) -> Any:
    """Call `function` with its arguments plus the context names it accepts (all of them for **kwargs)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return function(*args, **kwargs)
    parameters = list(signature.parameters.values())
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][
        : len(args)
    ]
    taken = set(positional) | set(kwargs)
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        extra = {key: value for key, value in context.items() if key not in taken}
    else:
        names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        extra = {key: context[key] for key in names if key in context and key not in taken}
    return function(*args, **kwargs, **extra)


def _is_skip(error: BaseException) -> bool:
    """Airflow's AirflowSkipException (ours, or any class of that name, e.g. a DAG file's own)."""
    return any(cls.__name__ == "AirflowSkipException" for cls in type(error).__mro__)


def read_facts(environ: Mapping[str, str]) -> dict[str, Any]:
    inline = environ.get(taskenv.ENV_PYTASK_CONTEXT)
    path = environ.get(taskenv.ENV_PYTASK_CONTEXT_FILE)
    try:
        text = inline if inline is not None else Path(path or "").read_text(encoding="utf-8")
        facts = json.loads(text)
    except (OSError, json.JSONDecodeError) as error:
        raise TaskInputError(
            f"cannot read the task context ({taskenv.ENV_PYTASK_CONTEXT} or {taskenv.ENV_PYTASK_CONTEXT_FILE}): {error}"
        ) from error
    if not isinstance(facts, dict) or "dag_id" not in facts or "task_id" not in facts:
        raise TaskInputError("the task context is not a Python task's context")
    return facts


def run(environ: Mapping[str, str]) -> int:
    """One try: read inputs, call the function, write its XCom; the exit code."""
    try:
        facts = read_facts(environ)
        source_path = environ.get(taskenv.ENV_PYTASK_SOURCE)
        if not source_path:
            raise TaskInputError(f"{taskenv.ENV_PYTASK_SOURCE} is not set")
        try:
            source = Path(source_path).read_text(encoding="utf-8")
        except OSError as error:
            raise TaskInputError(f"cannot read the DAG file source: {error}") from error
        variables.use(facts.get("variables") or {})
        function, dag, task = find_callable(source, source_path, facts)
    except TaskInputError as error:
        print(f"[kubeflowlite] {error}", file=sys.stderr)
        return EXIT_USAGE
    context = build_context(facts, dag, task)
    ti: TaskInstance = context["ti"]
    args = resolve(list(facts.get("args") or []), ti)
    kwargs = resolve(dict(facts.get("kwargs") or {}), ti)
    try:
        with taskflow.running(context):
            result = call_with_context(function, args, kwargs, context)
    except Exception as error:
        if _is_skip(error):
            print(f"[kubeflowlite] task skipped: {type(error).__name__}: {error}", file=sys.stderr)
            return taskenv.SKIP_EXIT_CODE
        traceback.print_exc()
        return EXIT_FAILED
    if facts.get("multiple_outputs") and not isinstance(result, dict):
        print(
            f"[kubeflowlite] multiple_outputs needs the function to return a dict, got {type(result).__name__}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    value = xcom.pack(xcom.NO_XCOM if result is None else result, ti.pushed)
    try:
        text = xcom.encode_xcom(value)
    except xcom.XComError as error:
        print(f"[kubeflowlite] XCom: {error}", file=sys.stderr)
        return EXIT_FAILED
    xcom_file = environ.get(taskenv.ENV_XCOM_FILE)
    if xcom_file and text:
        Path(xcom_file).write_text(text, encoding="utf-8")
    return 0


def join_installed_package() -> None:
    """Let a Pod's shipped runtime reach the rest of an installed kubeflowlite, if the image has one.

    In a Pod the shipped runtime (the stdlib-only part of kubeflowlite, k8s.pysource) is
    first on sys.path, so it hides a kubeflowlite installed in the image (the project
    image has one). Adding the installed package's folders to the loaded packages'
    __path__ keeps its other modules importable after the shipped ones: templating, for
    `macros` and @task.bash templates. A complete kubeflowlite (a local run) is left alone.
    """
    import kubeflowlite

    shipped = Path(kubeflowlite.__file__ or "").resolve().parent
    if (shipped / "core" / "templating.py").exists():
        return
    for entry in sys.path:
        installed = Path(entry or ".").resolve() / "kubeflowlite"
        if installed == shipped or not (installed / "core" / "templating.py").is_file():
            continue
        for name, module in list(sys.modules.items()):
            folders = getattr(module, "__path__", None)
            if name.split(".")[0] != "kubeflowlite" or folders is None:
                continue
            folder = installed.joinpath(*name.split(".")[1:])
            if folder.is_dir() and str(folder) not in folders:
                folders.append(str(folder))
        return


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    join_installed_package()
    sys.exit(run(os.environ))


if __name__ == "__main__":
    main()
