"""Turn one try the engine wants started into something the launcher can run.

This is where a task's definition meets a run: DAG defaults are merged in, the
task's templates are rendered with the run's context (`ti.xcom_pull` included),
and the task type decides what runs locally:

- bash: `sh -c <script>`; a container task: its command + args, exec'd directly
  (the image is ignored);
- empty: nothing runs, the try succeeds at once;
- sensor: `python -m kubeflowlite.local.sensor`, which pokes the watched DAG's
  run record in the runs directory;
- python: `python -m kubeflowlite.pytask`, given the DAG file's source and the
  try's context (core.pytask) in files of the run directory;
- triggerDag: `python -m kubeflowlite run` on the target DAG, which must be in
  the same file or another DAG file in the same directory (the local runner has
  no registry of DAGs; the operator has the cluster's).

A try whose templates do not render fails at once with the template error as its
message, as a Pod that cannot be built would.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kubeflowlite import dagfiles
from kubeflowlite.api.dag import DAG, ExternalTaskSensor, Task, TaskType, TriggerDag, effective_task
from kubeflowlite.api.times import format_time, parse_time
from kubeflowlite.core import connections, durations, pytask, templating
from kubeflowlite.core.engine import AttemptPhase
from kubeflowlite.core.schedule import RunInterval
from kubeflowlite.core.taskenv import (
    ENV_DAG_ID,
    ENV_LOGICAL_DATE,
    ENV_PYTASK_CONTEXT_FILE,
    ENV_PYTASK_SOURCE,
    ENV_RUN_ID,
    ENV_TASK_ID,
    ENV_TRY_NUMBER,
    ENV_XCOM_FILE,
    PYTASK_MODULE,
)
from kubeflowlite.core.validation import InvalidDAGError
from kubeflowlite.local.launcher import ImmediateResult, ProcessRequest
from kubeflowlite.local.rundir import RunDir

XComPull = Callable[..., Any]


@dataclass(frozen=True)
class RunContext:
    """What every try of one local run shares."""

    dag: DAG
    dag_file: Path | None
    """The file the DAG came from: triggerDag looks for its target next to it."""
    run_id: str
    interval: RunInterval
    conf: Mapping[str, Any]
    variables: Mapping[str, Any]
    run_dir: RunDir
    runs_dir: Path
    xcom_pull: XComPull
    base_env: Mapping[str, str]
    """The environment every task process starts from (normally os.environ)."""
    cwd: Path | None = None
    connections: Mapping[str, str] = field(default_factory=dict)
    """Connection texts by id (URI or JSON): `{{ conn.x.host }}` and a task's `connections` env."""
    xcom_values: Mapping[str, Any] = field(default_factory=dict)
    """The run's XCom values so far (task id -> value), the live mapping: given to Python tasks."""

    @functools.cached_property
    def absolute_run_dir(self) -> RunDir:
        """The run directory with its path resolved (once per run, not once per try)."""
        return RunDir(self.run_dir.path.resolve())

    @functools.cached_property
    def _tasks(self) -> dict[str, Task]:
        return {task.name: task for task in self.dag.spec.tasks}

    def task(self, name: str) -> Task:
        """Task `name` with the DAG's defaults applied; KeyError if the DAG has none of that name."""
        task = self._tasks.get(name)
        if task is None:
            raise KeyError(f"DAG {self.dag.dag_id!r} has no task {name!r}")
        return effective_task(self.dag.spec, task)


def find_task(dag: DAG, name: str) -> Task:
    for task in dag.spec.tasks:
        if task.name == name:
            return effective_task(dag.spec, task)
    raise KeyError(f"DAG {dag.dag_id!r} has no task {name!r}")


def context_for(ctx: RunContext, task: Task, try_number: int) -> dict[str, Any]:
    """The Jinja context of one try."""
    return templating.template_context(
        dag=ctx.dag,
        task=task,
        interval=ctx.interval,
        run_id=ctx.run_id,
        conf=dict(ctx.conf),
        try_number=try_number,
        xcom_pull=ctx.xcom_pull,
        variables=dict(ctx.variables),
        connections=dict(ctx.connections),
    )


def prepare_try(ctx: RunContext, task_name: str, try_number: int) -> ProcessRequest | ImmediateResult:
    """What to launch for try `try_number` of `task_name`."""
    task = ctx.task(task_name)
    log_path = ctx.run_dir.log_path(task.name, try_number)
    xcom_path = ctx.run_dir.xcom_path(task.name, try_number)

    def fail(message: str) -> ImmediateResult:
        return ImmediateResult(task.name, try_number, AttemptPhase.failed, message=message, log_path=log_path)

    kind = task.effective_type()
    if kind is TaskType.empty:
        return ImmediateResult(task.name, try_number, AttemptPhase.succeeded)
    try:
        context = context_for(ctx, task, try_number)
        rendered = templating.render_task(task, context)
        env = task_env(ctx, task, try_number, rendered.env)
        if kind is TaskType.sensor and task.sensor is not None:
            argv = sensor_argv(task.sensor, runs_dir=ctx.runs_dir, logical_date=ctx.interval.logical_date)
        elif kind is TaskType.trigger_dag and task.trigger_dag is not None:
            argv, ok_codes = trigger_argv(ctx, task.trigger_dag, context, xcom_path)
            return ProcessRequest(
                task.name, try_number, argv, env, log_path, xcom_path, cwd=ctx.cwd, ok_exit_codes=ok_codes
            )
        elif kind is TaskType.python and task.python is not None:
            argv = python_argv(ctx, task, context, try_number, env, log_path)
        elif rendered.bash is not None:
            argv = ["sh", "-c", rendered.bash]
        elif rendered.command or rendered.args:
            argv = [*(rendered.command or []), *(rendered.args or [])]
        else:
            return fail(f"task {task.name!r} has nothing to run")
    except templating.TemplateError as error:
        return fail(f"template error: {error}")
    except TriggerError as error:
        return fail(str(error))
    return ProcessRequest(
        task.name,
        try_number,
        argv,
        env,
        log_path,
        xcom_path,
        last_line_xcom=kind is TaskType.bash,
        cwd=ctx.cwd,
        skip_exit_codes=() if (code := task.skip_code()) is None else (code,),
    )


def python_argv(
    ctx: RunContext,
    task: Task,
    context: Mapping[str, Any],
    try_number: int,
    env: dict[str, str],
    log_path: Path,
) -> list[str]:
    """A Python task's try: `python -m kubeflowlite.pytask`, the DAG source and the try's context in files.

    The source is written once per run under `source/` (with the modules beside the DAG
    file it imports), the context next to the try's log; `env` gains the variables naming
    them (core.taskenv).
    """
    source = ctx.dag.spec.python_source
    if source is None:
        raise templating.TemplateError(f"tasks[{task.name}].python", "the DAG has no pythonSource")
    source_path = ctx.run_dir.path / "source" / Path(source.filename).name
    if not source_path.exists():
        source_path.parent.mkdir(parents=True, exist_ok=True)
        for relative, text in (source.modules or {}).items():  # paths checked by core.validation
            module = source_path.parent / relative
            module.parent.mkdir(parents=True, exist_ok=True)
            module.write_text(text, encoding="utf-8")
        source_path.write_text(source.code, encoding="utf-8")
    facts = pytask.payload(
        dag=ctx.dag,
        task=task,
        context=context,
        try_number=try_number,
        xcoms=dict(ctx.xcom_values),
        variables=dict(ctx.variables),
    )
    context_path = log_path.with_name(f"{log_path.stem}.context.json")
    context_path.parent.mkdir(parents=True, exist_ok=True)
    context_path.write_text(json.dumps(facts), encoding="utf-8")
    env[ENV_PYTASK_SOURCE] = str(source_path.resolve())
    env[ENV_PYTASK_CONTEXT_FILE] = str(context_path.resolve())
    return [sys.executable, "-m", PYTASK_MODULE]


def task_env(ctx: RunContext, task: Task, try_number: int, rendered_env: Mapping[str, str]) -> dict[str, str]:
    """os.environ, then the task's connections and env, then the KFL_* variables a Pod would get too."""
    return {
        **ctx.base_env,
        **connection_env(ctx, task),
        **rendered_env,
        ENV_DAG_ID: ctx.dag.dag_id,
        ENV_TASK_ID: task.name,
        ENV_RUN_ID: ctx.run_id,
        ENV_TRY_NUMBER: str(try_number),
        ENV_LOGICAL_DATE: format_time(ctx.interval.logical_date),
        ENV_XCOM_FILE: str(ctx.absolute_run_dir.xcom_path(task.name, try_number)),
    }


def connection_env(ctx: RunContext, task: Task) -> dict[str, str]:
    """AIRFLOW_CONN_<ID> for each of the task's `connections`; TemplateError naming an unknown one."""
    env: dict[str, str] = {}
    for conn_id in task.connections or []:
        text = ctx.connections.get(conn_id)
        if text is None:
            known = ", ".join(sorted(ctx.connections)) or "none"
            raise templating.TemplateError(
                f"tasks[{task.name}].connections", f"connection {conn_id!r} is not defined (known: {known})"
            )
        env[connections.connection_env_name(conn_id)] = text
    return env


def sensor_argv(sensor: ExternalTaskSensor, *, runs_dir: Path, logical_date: datetime) -> list[str]:
    """The command of an external-task sensor try (see kubeflowlite.local.sensor)."""
    target = logical_date + durations.parse_signed_duration(sensor.offset)
    argv = [
        sys.executable,
        "-m",
        "kubeflowlite.local.sensor",
        "--runs-dir",
        str(runs_dir.resolve()),
        "--dag",
        sensor.dag,
        "--logical-date",
        format_time(target),
        "--allowed",
        ",".join(sensor.allowed_states),
        "--failed",
        ",".join(sensor.failed_states),
        "--poke-interval",
        sensor.poke_interval,
        "--timeout",
        sensor.timeout,
    ]
    if sensor.task is not None:
        argv += ["--task", sensor.task]
    return argv


class TriggerError(Exception):
    """A triggerDag task cannot run locally."""


def trigger_argv(
    ctx: RunContext, trigger: TriggerDag, context: Mapping[str, Any], xcom_path: Path
) -> tuple[list[str], tuple[int, ...]]:
    """The command of a triggerDag try: the same runner, on the target DAG, in a child process,
    which writes the triggered run's name as the try's XCom (as the operator's triggerDag does).

    Without waitForCompletion the try succeeds whatever the triggered run's outcome
    (the run still finishes inside the try: locally there is no scheduler to hand it to).
    """
    dag_file = find_dag_file(trigger.dag, near=ctx.dag_file)
    if dag_file is None:
        raise TriggerError(f"triggerDag needs the DAG '{trigger.dag}' in the same directory or the operator")
    conf = {
        key: templating.render_string(value, context) if isinstance(value, str) else value
        for key, value in trigger.conf.items()
    }
    logical_date = ctx.interval.logical_date
    if trigger.logical_date is not None:
        logical_date = parse_time(templating.render_string(trigger.logical_date, context))
    argv = [
        sys.executable,
        "-m",
        "kubeflowlite",
        "run",
        str(dag_file),
        "--dag",
        trigger.dag,
        "--date",
        format_time(logical_date),
        "--conf",
        json.dumps(conf),
        "--runs-dir",
        str(ctx.runs_dir.resolve()),
        "--trigger-xcom-file",
        str(xcom_path.resolve()),
        "-o",
        "json",
    ]
    return argv, ((0,) if trigger.wait_for_completion else (0, 1))


def find_dag_file(name: str, *, near: Path | None) -> Path | None:
    """The DAG file defining DAG `name`: `near` itself first, then the other DAG files in its directory."""
    if near is None:
        return None
    candidates = [
        near,
        *sorted(
            path
            for path in near.parent.iterdir()
            if path.suffix in dagfiles.DAG_FILE_SUFFIXES
            and path.is_file()
            and path.resolve() != near.resolve()
        ),
    ]
    for path in candidates:
        try:
            dags = dagfiles.load_dag_file(path)
        except (InvalidDAGError, OSError, ValueError):
            continue
        if any(dag.dag_id == name for dag in dags):
            return path
    return None


def process_environment() -> dict[str, str]:
    """The environment task processes start from."""
    return dict(os.environ)
