"""The command line on Python DAG files: `compile`, and `tasks`/`validate`/`render`/`run` taking .py files and folders.

Boundary: click's CliRunner on the real `main` group, Python DAG files written to a
temporary directory; `run` starts its tasks as real subprocesses.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from kubeflowlite.api.dag import DAG
from kubeflowlite.api.dagrun import DAGRun, RunState
from kubeflowlite.cli.main import main
from kubeflowlite.core import loading

PIPELINE = """
from datetime import datetime, timedelta
from kubeflowlite import DAG, Bash, Empty

with DAG("pipeline", schedule="@daily", start_date=datetime(2024, 1, 1),
         default_args={"retry_delay": timedelta(minutes=2)}):
    start = Empty("start")
    hello = Bash("hello", "echo hello {{ ds }}")
    start >> hello
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


def test_compile_prints_the_dag_resource_that_loads_back(tmp_path: Path) -> None:
    source = write(tmp_path / "dags" / "pipeline.py", PIPELINE)
    result = invoke("compile", source)
    assert result.exit_code == 0, result.output
    (document,) = list(yaml.safe_load_all(result.output))
    assert document["spec"]["defaults"] == {"retryDelay": "2m"}
    assert [task["name"] for task in document["spec"]["tasks"]] == ["start", "hello"]
    assert loading.parse_dag(document) == DAG.model_validate(document)


def test_compile_writes_one_file_per_dag_into_the_output_dir(tmp_path: Path) -> None:
    write(tmp_path / "dags" / "pipeline.py", PIPELINE)
    write(
        tmp_path / "dags" / "nested" / "other.py",
        "from kubeflowlite import DAG, Empty\nwith DAG('other'):\n    Empty('x')\n",
    )
    out = tmp_path / "out"
    result = invoke("compile", tmp_path / "dags", "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == ["other.yaml", "pipeline.yaml"]
    (compiled,) = loading.load_dag_file(out / "pipeline.yaml")
    assert compiled.spec.schedule == "@daily"


def test_compile_of_a_broken_file_exits_2_naming_the_line(tmp_path: Path) -> None:
    source = write(tmp_path / "broken.py", "from kubeflowlite import DAG\nimport no_such_module_here\n")
    result = CliRunner().invoke(main, ["compile", str(source), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{source}:2: importing the DAG file raised ModuleNotFoundError" in result.output
    assert not (tmp_path / "out").exists()


def test_tasks_validate_and_render_take_python_files_and_folders(tmp_path: Path) -> None:
    source = write(tmp_path / "dags" / "pipeline.py", PIPELINE)
    tree = invoke("tasks", source, "--tree")
    assert tree.output.splitlines() == ["<Task(empty): start>", "    <Task(bash): hello>"]
    validated = invoke("validate", tmp_path / "dags")
    assert validated.exit_code == 0
    assert validated.output.strip() == f"ok: {tmp_path / 'dags'}: DAG pipeline (2 tasks)"
    rendered = invoke("render", tmp_path / "dags", "hello", "--date", "2024-01-05")
    assert rendered.output == "echo hello 2024-01-05\n"


def test_run_executes_a_python_dag(tmp_path: Path) -> None:
    source = write(tmp_path / "pipeline.py", PIPELINE)
    result = invoke("run", source, "--date", "2024-01-05", "--runs-dir", tmp_path / "runs", "-o", "json")
    assert result.exit_code == 0
    run = DAGRun.model_validate(json.loads(result.stdout))
    assert run.status.state is RunState.success
    assert {task: instance.state.value for task, instance in run.status.tasks.items()} == {
        "start": "success",
        "hello": "success",
    }
    (run_dir,) = (tmp_path / "runs" / "pipeline").iterdir()
    assert json.loads((run_dir / "xcom.json").read_text()) == {"hello": "hello 2024-01-05"}


def test_a_broken_variables_file_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write(tmp_path / "pipeline.py", PIPELINE)
    bad = tmp_path / "variables.json"
    bad.write_text("[1, 2]")
    monkeypatch.setenv("KFL_VARIABLES_FILE", str(bad))
    for args in (["run", source], ["render", source, "hello", "--date", "2024-01-05"]):
        result = CliRunner().invoke(main, [str(arg) for arg in args])
        assert result.exit_code == 2
        assert f"KFL_VARIABLES_FILE={bad}: expected a JSON object" in result.output
