"""cli.authoring: the validate, schedule and render commands, through click's test runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml
from click.testing import CliRunner, Result

from kubeflowlite.cli.authoring import render_cmd, schedule_cmd, validate_cmd
from kubeflowlite.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TUTORIAL = EXAMPLES / "tutorial.yaml"


def run(command: Any, *args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(command, [str(a) for a in args], env=env)


def write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(list(docs)))
    return path


def doc(name: str, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": name},
        "spec": {"tasks": tasks, **spec},
    }


def test_commands_are_registered_on_main() -> None:
    for name, command in (("validate", validate_cmd), ("schedule", schedule_cmd), ("render", render_cmd)):
        assert main.get_command(click.Context(main), name) is command


def test_validate_ok() -> None:
    result = run(validate_cmd, TUTORIAL)
    assert result.exit_code == 0
    assert result.output == f"ok: {TUTORIAL}: DAG tutorial (3 tasks)\n"


def test_validate_prints_every_issue_and_exits_1(tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.yaml",
        doc(
            "bad",
            [{"name": "a", "bash": "x", "dependsOn": ["ghost"]}, {"name": "a", "bash": "{{ x"}],
            timezone="Nowhere",
        ),
    )
    result = run(validate_cmd, TUTORIAL, bad)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"ok: {TUTORIAL}: DAG tutorial (3 tasks)"
    assert f"{bad}: spec.tasks[0].dependsOn[0]: unknown upstream task 'ghost'" in lines
    assert f"{bad}: spec.tasks[1].name: duplicate task name 'a' (also spec.tasks[0])" in lines
    assert any(line.startswith(f"{bad}: spec.timezone: unknown time zone") for line in lines)
    assert any(line.startswith(f"{bad}: spec.tasks[1].bash: template syntax error") for line in lines)


def test_validate_a_directory(tmp_path: Path) -> None:
    write(tmp_path / "one.yaml", doc("one", [{"name": "t", "type": "empty"}]))
    result = run(validate_cmd, tmp_path)
    assert result.exit_code == 0 and result.output == f"ok: {tmp_path}: DAG one (1 task)\n"


def test_schedule_lists_logical_dates_with_their_intervals() -> None:
    result = run(schedule_cmd, TUTORIAL, "--from", "2020-02-09", "--to", "2020-02-11T14:55:00Z")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2020-02-09T14:55:00Z  data interval [2020-02-09T14:55:00Z, 2020-02-10T14:55:00Z)",
        "2020-02-10T14:55:00Z  data interval [2020-02-10T14:55:00Z, 2020-02-11T14:55:00Z)",
        "2020-02-11T14:55:00Z  data interval [2020-02-11T14:55:00Z, 2020-02-12T14:55:00Z)",
    ]


def test_schedule_picks_a_dag_and_rejects_bad_dates(tmp_path: Path) -> None:
    path = write(
        tmp_path / "two.yaml",
        doc("hourly", [{"name": "t", "type": "empty"}], schedule="@hourly"),
        doc("manual", [{"name": "t", "type": "empty"}]),
    )
    assert run(schedule_cmd, path, "--from", "2020-01-01", "--to", "2020-01-02").exit_code == 2
    hourly = run(
        schedule_cmd, path, "--from", "2020-01-01", "--to", "2020-01-01T02:00:00Z", "--dag", "hourly"
    )
    assert len(hourly.output.splitlines()) == 3
    manual = CliRunner().invoke(
        schedule_cmd, [str(path), "--from", "2020-01-01", "--to", "2020-01-02", "--dag", "manual"]
    )
    assert manual.exit_code == 0 and manual.stdout == "" and "no schedule" in manual.stderr
    bad = run(schedule_cmd, TUTORIAL, "--from", "soon", "--to", "2020-01-02")
    assert bad.exit_code == 2 and "Invalid value for '--from': invalid date 'soon'" in bad.output


def test_render_the_seed_command() -> None:
    result = run(render_cmd, TUTORIAL, "templated", "--date", "2020-02-09")
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    assert lines == ['echo "2020-02-09"', 'echo "2020-02-16"', 'echo "Parameter I passed in"'] * 5


def test_render_with_conf_params_and_variables(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        doc(
            "c",
            [
                {
                    "name": "t",
                    "command": ["echo", "{{ params.who }}", "{{ var.value.region }}"],
                    "args": ["{{ ds_nodash }}"],
                }
            ],
            params={"who": "nobody"},
        ),
    )
    result = run(render_cmd, path, "t", "--date", "2020-02-09", "-p", "who=me", env={"KFL_VAR_region": "eu"})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["echo", "me", "eu", "20200209"]
    conf = run(
        render_cmd,
        path,
        "t",
        "--date",
        "2020-02-09",
        "--conf",
        '{"who": "json"}',
        env={"KFL_VAR_region": "eu"},
    )
    assert conf.stdout.splitlines()[1] == "json"


def test_render_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "e.yaml", doc("e", [{"name": "t", "bash": "echo {{ params.my_paramm }}"}]))
    typo = run(render_cmd, path, "t", "--date", "2020-02-09")
    assert typo.exit_code == 2
    assert "tasks[t].bash: 'dict object' has no attribute 'my_paramm'" in typo.output
    missing = run(render_cmd, path, "nope", "--date", "2020-02-09")
    assert missing.exit_code == 2 and "no task 'nope'" in missing.output
    bad_conf = run(render_cmd, path, "t", "--date", "2020-02-09", "--conf", "[1]")
    assert bad_conf.exit_code == 2 and "--conf must be a JSON object" in bad_conf.output
