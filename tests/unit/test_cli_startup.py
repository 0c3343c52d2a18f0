"""The CLI starts at once: local commands never import the Kubernetes stack.

Boundary: a fresh interpreter per check (sys.modules of the test process is
polluted by other tests), importing what a command imports and looking at
sys.modules; and the lazy group's command table against the commands themselves.
Start-up time is measured in benchmarks/bench_cli.py, not here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kubeflowlite.cli.main import COMMANDS, main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HEAVY = ("kubernetes", "kopf", "aiohttp")


def loaded_after(args: list[str]) -> set[str]:
    """The modules loaded once `kubeflowlite ARGS` has run, in a fresh interpreter."""
    script = (
        "import json, sys\n"
        "from kubeflowlite.cli.main import main\n"
        "try:\n"
        f"    main.main({args!r}, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def modules_after(args: list[str]) -> set[str]:
    """The top-level modules loaded once `kubeflowlite ARGS` has run, in a fresh interpreter."""
    return {name.split(".")[0] for name in loaded_after(args)}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate", str(EXAMPLES / "tutorial.yaml")],
        ["tasks", str(EXAMPLES / "tutorial.yaml")],
        ["render", str(EXAMPLES / "tutorial.yaml"), "print_date", "--date", "2020-02-09"],
    ],
)
def test_local_commands_do_not_import_the_kubernetes_stack(args: list[str]) -> None:
    loaded = modules_after(args)
    assert "kubeflowlite" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_run_does_not_import_the_kubernetes_stack(tmp_path: Path) -> None:
    dag = tmp_path / "one.yaml"
    dag.write_text(
        "apiVersion: kubeflowlite.io/v1alpha1\nkind: DAG\nmetadata: {name: one}\n"
        "spec: {tasks: [{name: t, bash: 'true'}]}\n"
    )
    loaded = modules_after(["run", str(dag), "--runs-dir", str(tmp_path / "runs")])
    assert "kubeflowlite" in loaded and not loaded & set(HEAVY)
    # Nor what this DAG does not use: it has no template (Jinja is imported for the first
    # text with markup), and no cron schedule.
    assert not loaded & {"jinja2", "croniter"}, sorted(loaded & {"jinja2", "croniter"})
    assert "rich" not in loaded  # its output is not a terminal: plain lines, no rich
    assert "concurrent" not in loaded  # one try at a time: no spawner threads (local.launcher)


def test_tasks_loads_no_run_types() -> None:
    """Listing tasks needs the DAG types only: the DAGRun models are built by what reads or runs runs."""
    loaded = loaded_after(["tasks", str(EXAMPLES / "tutorial.yaml")])
    assert "kubeflowlite.api.dag" in loaded
    assert "kubeflowlite.api.dagrun" not in loaded


def test_a_cluster_command_loads_it() -> None:
    assert set(HEAVY) & modules_after(["dags", "--help"])


def test_the_entry_point_runs_the_command_with_the_collector_on_and_start_up_frozen() -> None:
    """Start-up runs without the cyclic collector; the command itself runs with it (cli.entry)."""
    script = (
        "import gc, json, sys\n"
        "import click\n"
        "from kubeflowlite.cli import entry, main as cli\n"
        "seen = {}\n"
        "@click.command('probe')\n"
        "def probe() -> None:\n"
        "    seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count())\n"
        "cli.main.add_command(probe)\n"
        "sys.argv = ['kubeflowlite', 'probe']\n"
        "try:\n"
        "    entry.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(seen), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    seen = json.loads(done.stderr.strip().splitlines()[-1])
    assert seen["enabled"] is True
    assert seen["frozen"] > 1000  # what start-up created: modules, click's commands, ...


def test_the_click_group_alone_leaves_the_collector_as_it_is() -> None:
    """Tests and other users of the group (not the console scripts) keep their collector untouched."""
    import gc

    frozen = gc.get_freeze_count()
    result = CliRunner().invoke(main, ["tasks", str(EXAMPLES / "tutorial.yaml")])
    assert result.exit_code == 0, result.output
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_the_command_table_matches_the_commands() -> None:
    """The help `--help` lists (without importing anything) is each command's own first line."""
    context = click.Context(main)
    for name, entry in COMMANDS.items():
        command = main.get_command(context, name)
        assert command is not None and command.name == name
        assert entry.short_help == (command.help or "").strip().splitlines()[0], name


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output


def test_a_command_added_directly_is_listed_too() -> None:
    extra = click.Command("extra", help="An extra command.\n\nMore.", callback=lambda: None)
    main.add_command(extra)
    try:
        result = CliRunner().invoke(main, ["--help"])
        assert re.search(r"^  extra +An extra command\.$", result.output, re.MULTILINE), result.output
        assert CliRunner().invoke(main, ["extra"]).exit_code == 0
    finally:
        main.commands.pop("extra")
