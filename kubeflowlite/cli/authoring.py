"""Commands for writing DAG files: `validate`, `schedule` and `render`.

They answer the three questions an author has before anything runs: is the file
right (every problem at once, with paths), when will it run (logical dates and data
intervals), and what exactly will a task execute on a given date (its rendered
command). kubeflowlite.cli.main registers them on the `kubeflowlite` group.

Exit codes follow the CLI's convention: 0 ok, 1 problems found by `validate`, 2 invalid
input (a broken DAG file, a bad date, an unknown task, a template that fails).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from kubeflowlite import dagfiles
from kubeflowlite.api.dag import effective_task
from kubeflowlite.api.times import format_time
from kubeflowlite.cli import options
from kubeflowlite.core import templating
from kubeflowlite.core.schedule import RunInterval, Schedule
from kubeflowlite.core.validation import InvalidDAGError
from kubeflowlite.local import runtime_config

__all__ = ["render_cmd", "schedule_cmd", "validate_cmd"]

EXIT_PROBLEMS = 1
EXIT_INVALID = 2


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(EXIT_INVALID)


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def validate_cmd(files: Sequence[Path]) -> None:
    """Check DAG files (or directories of them) and print every problem; exit 1 if there is any."""
    failed = False
    for file in files:
        try:
            dags = dagfiles.load_dags(file)
        except InvalidDAGError as error:
            failed = True
            click.echo(str(error))
            continue
        except (OSError, UnicodeDecodeError) as error:
            failed = True
            click.echo(f"{file}: cannot read: {error}")
            continue
        if not dags:
            click.echo(f"ok: {file}: no DAG files")
        for dag in dags:
            count = len(dag.spec.tasks)
            click.echo(f"ok: {file}: DAG {dag.dag_id} ({count} task{'' if count == 1 else 's'})")
    if failed:
        sys.exit(EXIT_PROBLEMS)


def _interval_line(interval: RunInterval) -> str:
    return (
        f"{format_time(interval.logical_date)}  data interval "
        f"[{format_time(interval.data_interval_start)}, {format_time(interval.data_interval_end)})"
    )


@click.command("schedule")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--from", "start", type=options.DATE, required=True, help="First logical date (YYYY-MM-DD or RFC 3339)."
)
@click.option("--to", "end", type=options.DATE, required=True, help="Last logical date, inclusive.")
@click.option("--dag", "dag_name", help="The DAG, when FILE defines several.")
def schedule_cmd(file: Path, start: datetime, end: datetime, dag_name: str | None) -> None:
    """List the logical dates (and data intervals) of the scheduled runs between two dates."""
    dag = options.load_dag(file, dag_name)
    if end < start:
        _fail("--to is before --from")
    schedule = Schedule.from_spec(dag.spec)
    if schedule.is_manual:
        click.echo(f"DAG {dag.dag_id} has no schedule: it runs only when triggered", err=True)
        return
    for interval in schedule.runs_between(start, end):
        click.echo(_interval_line(interval))


@click.command("render")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.argument("task_name", metavar="TASK")
@click.option(
    "--date", "date", type=options.DATE, required=True, help="Logical date (YYYY-MM-DD or RFC 3339)."
)
@options.conf_options
@click.option("--dag", "dag_name", help="The DAG, when FILE defines several.")
def render_cmd(
    file: Path,
    task_name: str,
    date: datetime,
    conf: dict[str, Any] | None,
    params: tuple[tuple[str, Any], ...],
    dag_name: str | None,
) -> None:
    """Print TASK's command as it would run at --date, templates rendered (XComs render as None)."""
    dag = options.load_dag(file, dag_name)
    logical_date = date
    run_conf = options.run_conf(conf, params)
    task = next((t for t in dag.spec.tasks if t.name == task_name), None)
    if task is None:
        _fail(
            f"DAG {dag.dag_id!r} has no task {task_name!r} (tasks: {', '.join(t.name for t in dag.spec.tasks)})"
        )
    task = effective_task(dag.spec, task)
    schedule = Schedule.from_spec(dag.spec)
    interval = schedule.interval_for(logical_date)
    run_type = "scheduled" if schedule.is_on_schedule(logical_date) else "manual"
    try:
        variables = runtime_config.local_variables(os.environ)
        connections = runtime_config.local_connections(os.environ)
    except runtime_config.LocalConfigError as error:
        _fail(str(error))
    context = templating.template_context(
        dag=dag,
        task=task,
        interval=interval,
        run_id=templating.run_id_for(run_type, logical_date),
        conf=run_conf,
        try_number=1,
        variables=variables,
        connections=connections,
    )
    try:
        rendered = templating.render_task(task, context)
    except templating.TemplateError as error:
        _fail(f"template error: {error}")
    if rendered.bash is not None:
        click.echo(rendered.bash, nl=not rendered.bash.endswith("\n"))
    elif rendered.command is not None or rendered.args is not None:
        for item in [*(rendered.command or []), *(rendered.args or [])]:
            click.echo(item)
    else:
        kind = task.effective_type()
        click.echo(f"# task {task.name} runs no command (type: {kind.value if kind else 'none'})", err=True)
    for name, value in rendered.env.items():
        click.echo(f"# env {name}={value}", err=True)
