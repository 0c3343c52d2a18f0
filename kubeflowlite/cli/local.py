"""The local commands: `run` (a DAG run on this machine), `test` (one task once) and `tasks`.

kubeflowlite.cli.main imports this module only when one of them runs; the runner and
its display are imported by the commands that need them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from kubeflowlite.api.dag import Task
from kubeflowlite.cli import options
from kubeflowlite.cli.options import fail_invalid, load_dag
from kubeflowlite.local.rundir import DEFAULT_RUNS_DIR

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def runs_dir_option(help_text: str) -> Callable[[F], F]:
    """--runs-dir, the local runs directory (run writes there; test's sensors read it)."""
    return click.option(
        "--runs-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_RUNS_DIR,
        show_default=True,
        help=help_text,
    )


def dump(document: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2)
    import yaml

    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


# -- run ------------------------------------------------------------------------------


@click.command("run")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--dag", "dag_name", help="The DAG to run, when FILE defines several.")
@click.option("--date", "date", type=options.DATE, help="Logical date: YYYY-MM-DD or RFC 3339. Default: now.")
@options.conf_options
@click.option(
    "--parallelism", type=click.IntRange(min=1), help="Tries at once. Default: the DAG's maxActiveTasks."
)
@runs_dir_option("Where runs keep their records and logs.")
@click.option(
    "-o", "--output", "output", type=click.Choice(["json", "yaml"]), help="Print the finished DAGRun object."
)
@click.option(
    "--trigger-xcom-file",
    type=click.Path(dir_okay=False, path_type=Path),
    hidden=True,
    help="Write this run's name there, as JSON: the XCom of the local triggerDag try that started it "
    "(the operator's triggerDag pushes the same name).",
)
def run_cmd(
    file: Path,
    dag_name: str | None,
    date: datetime | None,
    conf: dict[str, Any] | None,
    params: tuple[tuple[str, Any], ...],
    parallelism: int | None,
    runs_dir: Path,
    output: str | None,
    trigger_xcom_file: Path | None,
) -> None:
    """Execute one run of a DAG locally, tasks as subprocesses.

    Logs go to RUNS_DIR/<dag>/<run_id>/<task>/try-<n>.log and the run record to
    RUNS_DIR/<dag>/<run_id>/run.json. Exit code: 0 success, 1 failed, 2 invalid
    input, 130 interrupted.
    """
    dag = load_dag(file, dag_name)
    logical_date = options.now_if_none(date)
    run_conf = options.run_conf(conf, params)
    from kubeflowlite.api.dagrun import RunType
    from kubeflowlite.k8s import names
    from kubeflowlite.local.display import make_display
    from kubeflowlite.local.runner import LocalRunner, RunRequest, stop_on_signals
    from kubeflowlite.local.runtime_config import LocalConfigError

    request = RunRequest(
        dag=dag,
        logical_date=logical_date,
        run_name=names.dagrun_name(dag.dag_id, logical_date, RunType.manual),
        conf=run_conf,
        run_type=RunType.manual,
        runs_dir=runs_dir,
        parallelism=parallelism,
        dag_file=file,
    )
    if trigger_xcom_file is not None:
        trigger_xcom_file.write_text(json.dumps(request.run_name))
    try:
        runner = LocalRunner(request, observer=make_display(sys.stderr if output else sys.stdout))
    except LocalConfigError as error:
        fail_invalid(str(error))
    with stop_on_signals(runner):
        result = runner.run()
    if output:
        click.echo(dump(result.run.to_wire(), output), nl=output == "json")
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK if result.succeeded else EXIT_FAILED)


# -- test -----------------------------------------------------------------------------


@click.command("test")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.argument("task")
@click.argument("date", type=options.DATE)
@click.option("--dag", "dag_name", help="The DAG, when FILE defines several.")
@options.conf_options
@runs_dir_option("Where sensors look for other runs' records.")
def test_cmd(
    file: Path,
    task: str,
    date: datetime,
    dag_name: str | None,
    conf: dict[str, Any] | None,
    params: tuple[tuple[str, Any], ...],
    runs_dir: Path,
) -> None:
    """Run one task once at DATE, ignoring its dependencies and recording nothing.

    Airflow's `tasks test`: the output goes to stdout and the exit code is the task's.
    """
    dag = load_dag(file, dag_name)
    if task not in {t.name for t in dag.spec.tasks}:
        fail_invalid(f"DAG {dag.dag_id!r} has no task {task!r}")
    logical_date = date
    run_conf = options.run_conf(conf, params)

    def out(text: str) -> None:
        click.echo(text, nl=False)
        sys.stdout.flush()

    def warn(text: str) -> None:
        click.echo(text, err=True)

    from kubeflowlite.local import tasktest
    from kubeflowlite.local.runtime_config import LocalConfigError

    try:
        code = tasktest.test_task(
            dag, task, logical_date, out=out, warn=warn, dag_file=file, runs_dir=runs_dir, conf=run_conf
        )
    except LocalConfigError as error:
        fail_invalid(str(error))
    sys.exit(code)


# -- tasks ----------------------------------------------------------------------------


@click.command("tasks")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--dag", "dag_name", help="The DAG, when FILE defines several.")
@click.option("--tree", is_flag=True, help="Show each root task with its downstream tasks indented under it.")
def tasks_cmd(file: Path, dag_name: str | None, tree: bool) -> None:
    """List the task ids of a DAG (Airflow's `list_tasks`)."""
    dag = load_dag(file, dag_name)
    lines = tree_lines(dag.spec.tasks) if tree else sorted(task.name for task in dag.spec.tasks)
    for line in lines:
        click.echo(line)


def tree_lines(tasks: Sequence[Task]) -> list[str]:
    """`list_tasks --tree`: every root, then its downstream tasks indented 4 spaces per level.

    As in Airflow, a task reachable along several paths is printed under each of them.
    """
    by_name = {task.name: task for task in tasks}
    downstream: dict[str, list[str]] = {task.name: [] for task in tasks}
    for task in tasks:
        for upstream in task.depends_on:
            downstream[upstream].append(task.name)
    lines: list[str] = []

    def visit(name: str, level: int) -> None:
        kind = by_name[name].effective_type()
        lines.append(" " * 4 * level + f"<Task({kind.value if kind else 'unknown'}): {name}>")
        for child in downstream[name]:
            visit(child, level + 1)

    for task in tasks:
        if not task.depends_on:
            visit(task.name, 0)
    return lines
