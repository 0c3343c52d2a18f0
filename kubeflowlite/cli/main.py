"""The `kubeflowlite` (alias `kfl`) command line: one click group, thin commands.

Every command here parses arguments, loads the DAG file, calls into the package
(local runner, authoring helpers, operator tooling) and maps the outcome to an
exit code. Exit codes are the same everywhere: 0 success, 1 the run or task
failed, 2 invalid input (a DAG file with problems, a bad date or conf), 130 the
run was interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml
from rich.console import Console

from kubeflowlite.api.dag import DAG, Task
from kubeflowlite.api.dagrun import RunType
from kubeflowlite.cli import authoring, cluster, compiling, options, varconn
from kubeflowlite.core.schedule import parse_time
from kubeflowlite.k8s import names
from kubeflowlite.local import tasktest
from kubeflowlite.local.display import make_display
from kubeflowlite.local.rundir import DEFAULT_RUNS_DIR
from kubeflowlite.local.runner import LocalRunner, RunRequest, stop_on_signals
from kubeflowlite.local.runtime_config import LocalConfigError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kubeflowlite")
def main() -> None:
    """kubeflowlite: Airflow-style workflows, native to Kubernetes.

    DAG files are Kubernetes objects (kind: DAG). `run` executes one locally,
    with tasks as subprocesses and the same engine the operator uses.
    """


# -- helpers --------------------------------------------------------------------------


def fail_invalid(message: str) -> NoReturn:
    """Print `message` to stderr and exit 2 (invalid input)."""
    click.echo(message, err=True)
    sys.exit(EXIT_INVALID)


def load_dag(path: Path, dag_name: str | None) -> DAG:
    """The DAG to act on: the only one in `path` (YAML, Python or a folder), or the one named with --dag."""
    return authoring.load_one(path, dag_name)


def parse_date(text: str | None) -> datetime:
    """--date: YYYY-MM-DD or RFC 3339; default now (to the second), as for a manual trigger."""
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        return parse_time(text)
    except ValueError as error:
        fail_invalid(f"invalid date {text!r}: {error}")


def parse_conf(conf_text: str | None, params: Sequence[str]) -> dict[str, Any]:
    """--conf and -p for run/test; a malformed value is a usage error (exit 2)."""
    try:
        return options.parse_conf(conf_text, params)
    except ValueError as error:
        fail_invalid(str(error))


def dump(document: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


# -- run ------------------------------------------------------------------------------


@main.command("run")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--dag", "dag_name", help="The DAG to run, when FILE defines several.")
@click.option("--date", "date_text", help="Logical date: YYYY-MM-DD or RFC 3339. Default: now.")
@click.option("--conf", "conf_text", help="Run conf as a JSON object (overrides params).")
@click.option(
    "-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="One conf entry; repeatable."
)
@click.option(
    "--parallelism", type=click.IntRange(min=1), help="Tries at once. Default: the DAG's maxActiveTasks."
)
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_RUNS_DIR,
    show_default=True,
    help="Where runs keep their records and logs.",
)
@click.option(
    "-o", "--output", "output", type=click.Choice(["json", "yaml"]), help="Print the finished DAGRun object."
)
def run_cmd(
    file: Path,
    dag_name: str | None,
    date_text: str | None,
    conf_text: str | None,
    params: tuple[str, ...],
    parallelism: int | None,
    runs_dir: Path,
    output: str | None,
) -> None:
    """Execute one run of a DAG locally, tasks as subprocesses.

    Logs go to RUNS_DIR/<dag>/<run_id>/<task>/try-<n>.log and the run record to
    RUNS_DIR/<dag>/<run_id>/run.json. Exit code: 0 success, 1 failed, 2 invalid
    input, 130 interrupted.
    """
    dag = load_dag(file, dag_name)
    logical_date = parse_date(date_text)
    conf = parse_conf(conf_text, params)
    console = Console(file=sys.stderr if output else sys.stdout, highlight=False)
    request = RunRequest(
        dag=dag,
        logical_date=logical_date,
        run_name=names.dagrun_name(dag.dag_id, logical_date, RunType.manual),
        conf=conf,
        run_type=RunType.manual,
        runs_dir=runs_dir,
        parallelism=parallelism,
        dag_file=file,
    )
    try:
        runner = LocalRunner(request, observer=make_display(console))
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


@main.command("test")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.argument("task")
@click.argument("date")
@click.option("--dag", "dag_name", help="The DAG, when FILE defines several.")
@click.option("--conf", "conf_text", help="Run conf as a JSON object (overrides params).")
@click.option(
    "-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="One conf entry; repeatable."
)
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_RUNS_DIR,
    show_default=True,
    help="Where sensors look for other runs' records.",
)
def test_cmd(
    file: Path,
    task: str,
    date: str,
    dag_name: str | None,
    conf_text: str | None,
    params: tuple[str, ...],
    runs_dir: Path,
) -> None:
    """Run one task once at DATE, ignoring its dependencies and recording nothing.

    Airflow's `tasks test`: the output goes to stdout and the exit code is the task's.
    """
    dag = load_dag(file, dag_name)
    if task not in {t.name for t in dag.spec.tasks}:
        fail_invalid(f"DAG {dag.dag_id!r} has no task {task!r}")
    logical_date = parse_date(date)
    conf = parse_conf(conf_text, params)

    def out(text: str) -> None:
        click.echo(text, nl=False)
        sys.stdout.flush()

    def warn(text: str) -> None:
        click.echo(text, err=True)

    try:
        code = tasktest.test_task(
            dag, task, logical_date, out=out, warn=warn, dag_file=file, runs_dir=runs_dir, conf=conf
        )
    except LocalConfigError as error:
        fail_invalid(str(error))
    sys.exit(code)


# -- tasks ----------------------------------------------------------------------------


@main.command("tasks")
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


# -- commands from other modules ------------------------------------------------------

main.add_command(authoring.validate_cmd, "validate")
main.add_command(authoring.schedule_cmd, "schedule")
main.add_command(authoring.render_cmd, "render")
main.add_command(compiling.compile_cmd, "compile")
main.add_command(varconn.variables_group, "variables")
main.add_command(varconn.connections_group, "connections")

# Cluster commands (the operator, CRDs, DAGs and DAGRuns on Kubernetes): cli/cluster.py.
for _command in cluster.CLUSTER_COMMANDS:
    main.add_command(_command)
