"""The `kubeflowlite` (alias `kfl`) command line: one click group, thin commands.

Every command parses arguments, loads the DAG file, calls into the package (local
runner, authoring helpers, operator tooling) and maps the outcome to an exit code.
Exit codes are the same everywhere: 0 success, 1 the run or task failed, 2 invalid
input (a DAG file with problems, a bad date or conf), 130 the run was interrupted
(Ctrl-C / SIGTERM).

The group imports a command's module only when that command runs: `--help` and the
local commands never load the Kubernetes stack (kubernetes, kopf, aiohttp: most of
a second), and `--help` loads no command module at all. COMMANDS lists every command
with its one-line help; tests/unit/test_cli_startup.py checks it against the
commands themselves and that local commands leave kubernetes and kopf unimported.
The console scripts start the group through kubeflowlite.cli.entry (start-up without
the garbage collector's passes, which `resolve_command` ends).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import click

from kubeflowlite.cli.entry import startup_finished


class Entry(NamedTuple):
    module: str
    attribute: str
    short_help: str


_LOCAL = "kubeflowlite.cli.local"
_AUTHORING = "kubeflowlite.cli.authoring"
_CLUSTER = "kubeflowlite.cli.cluster"

COMMANDS: dict[str, Entry] = {
    "run": Entry(_LOCAL, "run_cmd", "Execute one run of a DAG locally, tasks as subprocesses."),
    "test": Entry(
        _LOCAL, "test_cmd", "Run one task once at DATE, ignoring its dependencies and recording nothing."
    ),
    "tasks": Entry(_LOCAL, "tasks_cmd", "List the task ids of a DAG (Airflow's `list_tasks`)."),
    "validate": Entry(
        _AUTHORING,
        "validate_cmd",
        "Check DAG files (or directories of them) and print every problem; exit 1 if there is any.",
    ),
    "schedule": Entry(
        _AUTHORING,
        "schedule_cmd",
        "List the logical dates (and data intervals) of the scheduled runs between two dates.",
    ),
    "render": Entry(
        _AUTHORING,
        "render_cmd",
        "Print TASK's command as it would run at --date, templates rendered (XComs render as None).",
    ),
    "operator": Entry(
        _CLUSTER,
        "operator_cmd",
        "Run the operator: reconcile DAGs and DAGRuns (kopf inside). Without -n/-A: the context's namespace.",
    ),
    "crds": Entry(
        _CLUSTER, "crds_cmd", "Print (or write) the CustomResourceDefinitions generated from the API types."
    ),
    "apply": Entry(
        _CLUSTER,
        "apply_cmd",
        "Validate DAG file(s) locally (every problem printed), then server-side apply them.",
    ),
    "trigger": Entry(_CLUSTER, "trigger_cmd", "Start a manual run of DAG (a DAGRun; the operator runs it)."),
    "backfill": Entry(
        _CLUSTER,
        "backfill_cmd",
        "Create runs for every scheduled interval between -s and -e (maxActiveRuns applies).",
    ),
    "clear": Entry(
        _CLUSTER, "clear_cmd", "Re-run task instances of RUN (writes spec.clear; the operator resets them)."
    ),
    "get": Entry(_CLUSTER, "get_cmd", "Show RUN: its tasks as a tree, with state, try and duration."),
    "logs": Entry(_CLUSTER, "logs_cmd", "Print the log of TASK in RUN (its Pod's main container)."),
    "pause": Entry(
        _CLUSTER, "pause_cmd", "Stop scheduling new runs of DAG (queued runs wait; running ones go on)."
    ),
    "unpause": Entry(_CLUSTER, "unpause_cmd", "Resume scheduling DAG."),
    "dags": Entry(_CLUSTER, "dags_cmd", "List the DAGs of the namespace."),
    "runs": Entry(_CLUSTER, "runs_cmd", "List DAGRuns (of DAG, if given), newest logical date first."),
    "compile": Entry(
        "kubeflowlite.cli.compiling",
        "compile_cmd",
        "Compile DAG files (Python or YAML, files or folders) into DAG resources in YAML.",
    ),
    "variables": Entry(
        "kubeflowlite.cli.varconn",
        "variables_group",
        "Airflow Variables on the cluster ({{ var.value.x }}, {{ var.json.x }}, Variable.get).",
    ),
    "connections": Entry(
        "kubeflowlite.cli.varconn",
        "connections_group",
        "Airflow Connections on the cluster ({{ conn.x.host }}, a task's `connections` env).",
    ),
    "ui": Entry(
        "kubeflowlite.ui.command",
        "ui_cmd",
        "Serve the web UI: DAGs, grid, graph, Gantt, task logs; trigger, clear, pause.",
    ),
}
"""Command -> where it is defined, and the first line of its help (what `--help` lists)."""


class LazyGroup(click.Group):
    """A group that imports a command's module when the command is looked up to run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        command = getattr(importlib.import_module(entry.module), entry.attribute)
        assert isinstance(command, click.Command)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        found = super().resolve_command(ctx, args)
        startup_finished()  # the command's module is loaded: start-up is over
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, entry.short_help) for name, entry in COMMANDS.items()]
        for name in super().list_commands(ctx):  # any added with main.add_command (imported already)
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, (command.help or "").strip().splitlines()[0] if command.help else ""))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kubeflowlite")
def main() -> None:
    """kubeflowlite: Airflow-style workflows, native to Kubernetes.

    DAG files are Kubernetes objects (kind: DAG). `run` executes one locally,
    with tasks as subprocesses and the same engine the operator uses.
    """
