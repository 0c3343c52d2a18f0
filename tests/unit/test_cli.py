"""The command line: arguments, output and exit codes of `run`, `test` and `tasks`.

Boundary: click's CliRunner on the real `main` group, in the test's process, with
DAG files written to a temporary directory. Tasks still run as real subprocesses;
their output is read from the log files. (Signals and the console script itself
are exercised in test_local_runner.py and test_examples.py.)
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from kubeflowlite.api.dagrun import DAGRun, RunState
from kubeflowlite.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def dag_doc(name: str, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": name},
        "spec": {"tasks": tasks, **spec},
    }


def write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the command in an empty directory, so the default ./kfl-runs lands there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


class TestTasks:
    def test_lists_task_ids(self) -> None:
        result = invoke("tasks", EXAMPLES / "tutorial.yaml")
        assert result.exit_code == 0
        assert result.output.splitlines() == ["print_date", "sleep", "templated"]

    def test_tree_as_in_the_airflow_tutorial(self) -> None:
        result = invoke("tasks", EXAMPLES / "tutorial.yaml", "--tree")
        assert result.exit_code == 0
        assert result.output == (
            "<Task(bash): print_date>\n    <Task(bash): sleep>\n    <Task(bash): templated>\n"
        )

    def test_tree_repeats_shared_tasks_under_each_parent(self, tmp_path: Path) -> None:
        dag = dag_doc(
            "diamond",
            [
                {"name": "a", "bash": "true"},
                {"name": "b", "dependsOn": ["a"], "command": ["true"]},
                {"name": "c", "dependsOn": ["a"], "type": "empty"},
                {"name": "d", "dependsOn": ["b", "c"], "bash": "true"},
                {"name": "lonely", "bash": "true"},
            ],
        )
        result = invoke("tasks", write(tmp_path / "d.yaml", dag), "--tree")
        assert result.output.splitlines() == [
            "<Task(bash): a>",
            "    <Task(container): b>",
            "        <Task(bash): d>",
            "    <Task(empty): c>",
            "        <Task(bash): d>",
            "<Task(bash): lonely>",
        ]


class TestDagSelection:
    def test_a_file_with_several_dags_needs_dag(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "two.yaml",
            dag_doc("first", [{"name": "x", "bash": "true"}]),
            dag_doc("second", [{"name": "y", "bash": "true"}]),
        )
        result = invoke("tasks", path)
        assert result.exit_code == 2
        assert "first, second" in result.output and "--dag" in result.output
        assert invoke("tasks", path, "--dag", "second").output == "y\n"
        missing = invoke("tasks", path, "--dag", "third")
        assert missing.exit_code == 2 and "no DAG named 'third'" in missing.output

    def test_invalid_dag_exits_2_with_every_issue(self, tmp_path: Path, in_tmp: Path) -> None:
        path = write(
            tmp_path / "bad.yaml",
            dag_doc(
                "bad",
                [
                    {"name": "a", "bash": "true", "dependsOn": ["nope"]},
                    {"name": "a", "bash": "true"},
                ],
            ),
        )
        commands: list[list[str | Path]] = [["run", path], ["tasks", path], ["test", path, "a", "2020-02-09"]]
        for command in commands:
            result = invoke(*command)
            assert result.exit_code == 2, command
            assert "nope" in result.output  # the unknown upstream
            assert "duplicate" in result.output.lower()  # and the duplicate name, both at once
        assert not (in_tmp / "kfl-runs").exists()


class TestRun:
    def test_success_exits_0_and_writes_logs_under_kfl_runs(self, in_tmp: Path) -> None:
        result = invoke("run", EXAMPLES / "xcom.yaml", "--date", "2020-02-09")
        assert result.exit_code == 0, result.output
        run_dir = in_tmp / "kfl-runs" / "xcom" / "manual__2020-02-09T00:00:00+00:00"
        assert (run_dir / "pull" / "try-1.log").read_text().startswith("rows=42\n")
        assert DAGRun.model_validate_json((run_dir / "run.json").read_text()).status.state is RunState.success
        # plain progress lines when stdout is not a terminal, then the summary table
        assert "pull success (try 1)" in result.output
        assert "run success" in result.output

    def test_failure_exits_1_and_names_the_log(self, tmp_path: Path) -> None:
        path = write(tmp_path / "f.yaml", dag_doc("fails", [{"name": "boom", "bash": "echo oops; exit 4"}]))
        result = invoke("run", path, "--runs-dir", tmp_path / "runs")
        assert result.exit_code == 1
        (log,) = (tmp_path / "runs").glob("fails/*/boom/try-1.log")
        assert f"log: {log}" in result.output
        assert "boom failed: exit code 4" in result.output
        assert log.read_text() == "oops\n"

    def test_conf_and_params_override_dag_params(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "p.yaml",
            dag_doc(
                "params",
                [
                    {
                        "name": "show",
                        "bash": "echo {{ params.a }} {{ params.b }} {{ params.c }} '{{ dag_run.conf | tojson }}'",
                    }
                ],
                params={"a": "dag-a", "b": "dag-b", "c": "dag-c"},
            ),
        )
        result = invoke(
            "run",
            path,
            "--runs-dir",
            tmp_path / "runs",
            "--conf",
            '{"a": "conf-a", "b": "conf-b"}',
            "-p",
            "b=2",
            "-p",
            "flag=true",
        )
        assert result.exit_code == 0, result.output
        (log,) = (tmp_path / "runs").glob("params/*/show/try-1.log")
        assert log.read_text() == 'conf-a 2 dag-c {"a": "conf-a", "b": 2, "flag": true}\n'

    def test_yaml_output_is_a_dagrun_and_progress_goes_to_stderr(self, tmp_path: Path) -> None:
        path = write(tmp_path / "y.yaml", dag_doc("yamlout", [{"name": "t", "bash": "true"}]))
        result = CliRunner().invoke(
            main,
            [
                "run",
                str(path),
                "--runs-dir",
                str(tmp_path / "runs"),
                "-o",
                "yaml",
                "--date",
                "2021-03-04T05:06:07Z",
            ],
        )
        assert result.exit_code == 0
        run = DAGRun.model_validate(yaml.safe_load(result.stdout))
        assert run.metadata.name == "yamlout-manual-20210304t050607"
        assert run.spec.logical_date == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
        assert "run success" in result.stderr and "run success" not in result.stdout

    def test_parallelism_must_be_positive_and_date_valid(self, tmp_path: Path) -> None:
        path = EXAMPLES / "xcom.yaml"
        assert invoke("run", path, "--parallelism", "0").exit_code == 2
        bad_date = invoke("run", path, "--date", "yesterday-ish", "--runs-dir", tmp_path)
        assert bad_date.exit_code == 2 and "invalid date" in bad_date.output
        bad_conf = invoke("run", path, "--conf", "[1, 2]", "--runs-dir", tmp_path)
        assert bad_conf.exit_code == 2 and "JSON object" in bad_conf.output
        assert not list(tmp_path.iterdir())  # nothing ran


class TestTest:
    def test_runs_one_task_with_output_on_stdout_and_records_nothing(self, in_tmp: Path) -> None:
        result = invoke("test", EXAMPLES / "tutorial.yaml", "templated", "2020-02-09")
        assert result.exit_code == 0
        assert result.stdout.count("2020-02-16") == 5
        assert not (in_tmp / "kfl-runs").exists()

    def test_exit_code_is_the_tasks(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "e.yaml", dag_doc("codes", [{"name": "three", "bash": "echo before; exit 3"}])
        )
        result = invoke("test", path, "three", "2020-02-09")
        assert result.exit_code == 3
        assert result.stdout == "before\n"
        assert "exit code 3" in result.stderr

    def test_upstream_xcom_is_none_with_a_warning(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "x.yaml",
            dag_doc(
                "pulls",
                [
                    {"name": "push", "bash": "echo value"},
                    {
                        "name": "pull",
                        "dependsOn": ["push"],
                        "bash": "echo got {{ ti.xcom_pull(task_ids='push') }}",
                    },
                ],
            ),
        )
        result = invoke("test", path, "pull", "2020-02-09")
        assert result.exit_code == 0
        assert result.stdout == "got None\n"
        assert "warning" in result.stderr and "'push'" in result.stderr
        assert 'XCom return value: "got None"' in result.stderr

    def test_unknown_task_exits_2(self) -> None:
        result = invoke("test", EXAMPLES / "tutorial.yaml", "nope", "2020-02-09")
        assert result.exit_code == 2 and "no task 'nope'" in result.output


def test_authoring_commands_are_registered() -> None:
    result = invoke("--help")
    for command in ("run", "test", "tasks", "validate", "schedule", "render"):
        assert f"  {command} " in result.output


def test_both_console_scripts_are_installed() -> None:
    bin_dir = Path(sys.executable).parent
    for script in ("kubeflowlite", "kfl"):
        text = (bin_dir / script).read_text()
        assert "kubeflowlite.cli.entry" in text, script


def test_output_json_is_json(tmp_path: Path) -> None:
    path = write(tmp_path / "j.yaml", dag_doc("jsonout", [{"name": "t", "bash": "true"}]))
    result = CliRunner().invoke(main, ["run", str(path), "--runs-dir", str(tmp_path / "runs"), "-o", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["kind"] == "DAGRun"
