"""Airflow's own example DAGs, with only their import lines changed, against Airflow itself.

Every example file shipped in the pinned Airflow is covered: either kubeflowlite runs
it (`kubeflowlite run FILE --date D`) and every task ends in the state Airflow gives
it (`DAG.test`, as `airflow dags test`, in a fresh sqlite AIRFLOW_HOME), or compiling
it fails with an error naming the unsupported Airflow feature and the file:line using
it. An example in neither table fails the coverage test, so a new Airflow's examples
cannot go unnoticed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from import_rewrite import rewrite_imports

from kubeflowlite.airflow._compat import dag_name

DATE = "2024-01-01T00:00:00+00:00"
"""Every run's logical date: a midnight, so example_branch_dop_operator_v3 (minute parity) is fixed."""

SAME: dict[str, tuple[str, ...]] = {
    "tutorial": ("tutorial",),
    "tutorial_dag": ("tutorial_dag",),
    "tutorial_taskflow_api": ("tutorial_taskflow_api",),
    "example_branch_labels": ("example_branch_labels",),
    "example_branch_python_dop_operator_3": ("example_branch_dop_operator_v3",),
    "example_complex": ("example_complex",),
    "example_nested_branch_dag": ("example_nested_branch_dag",),
    "example_short_circuit_decorator": ("example_short_circuit_decorator",),
    "example_short_circuit_operator": ("example_short_circuit_operator",),
    "example_trigger_controller_dag": ("example_trigger_controller_dag",),
    "example_trigger_target_dag": ("example_trigger_target_dag",),
    "example_xcomargs": ("example_xcom_args", "example_xcom_args_with_operators"),
}
"""Example file -> its DAG ids: run both ways, every task's final state compared."""

NEIGHBOURS = {"example_trigger_controller_dag": ("example_trigger_target_dag",)}
"""Example file -> the other example files its DAG needs beside it (the DAG it triggers)."""


@dataclass(frozen=True)
class Unsupported:
    """What compiling the example must say (`names`), on the first line containing `at`.

    An argument of DAG(...) or @dag(...) is reported on the line of that call's start.
    """

    names: str
    at: str


UNSUPPORTED: dict[str, Unsupported] = {
    "example_bash_decorator": Unsupported("airflow.utils.weekday", "airflow.utils.weekday"),
    "example_bash_operator": Unsupported("dagrun_timeout", "with DAG("),
    "example_branch_datetime_operator": Unsupported("airflow.operators.datetime", "operators.datetime"),
    "example_branch_day_of_week_operator": Unsupported("airflow.operators.weekday", "operators.weekday"),
    "example_branch_operator": Unsupported("is_venv_installed", "import is_venv_installed"),
    "example_branch_operator_decorator": Unsupported("is_venv_installed", "import is_venv_installed"),
    "example_dag_decorator": Unsupported("airflow.operators.email", "operators.email"),
    "example_dataset_alias": Unsupported("airflow.datasets", "from kubeflowlite.airflow.datasets"),
    "example_dataset_alias_with_no_taskflow": Unsupported(
        "airflow.datasets", "from kubeflowlite.airflow.datasets"
    ),
    "example_datasets": Unsupported("airflow.datasets", "from kubeflowlite.airflow.datasets"),
    "example_display_name": Unsupported("dag_display_name", "@dag("),
    "example_dynamic_task_mapping": Unsupported("dynamic task mapping", ".expand("),
    "example_dynamic_task_mapping_with_no_taskflow_operators": Unsupported("BaseOperator", "(BaseOperator)"),
    "example_external_task_marker_dag": Unsupported("ExternalTaskMarker", "ExternalTaskMarker,"),
    "example_inlet_event_extra": Unsupported("airflow.datasets", "from kubeflowlite.airflow.datasets"),
    "example_kubernetes_executor": Unsupported("airflow.configuration", "airflow.configuration"),
    "example_latest_only": Unsupported("airflow.operators.latest_only", "operators.latest_only"),
    "example_latest_only_with_trigger": Unsupported("airflow.operators.latest_only", "operators.latest_only"),
    "example_local_kubernetes_executor": Unsupported("airflow.configuration", "airflow.configuration"),
    "example_outlet_event_extra": Unsupported("airflow.datasets", "from kubeflowlite.airflow.datasets"),
    "example_params_trigger_ui": Unsupported("airflow.models.param", "models.param"),
    "example_params_ui_tutorial": Unsupported("airflow.models.param", "models.param"),
    "example_passing_params_via_test_command": Unsupported("dagrun_timeout", "with DAG("),
    "example_python_decorator": Unsupported("is_venv_installed", "import is_venv_installed"),
    "example_python_operator": Unsupported(
        "ExternalPythonOperator", "from kubeflowlite.airflow.operators.python import ("
    ),
    "example_sensor_decorator": Unsupported("airflow.sensors.base", "sensors.base"),
    "example_sensors": Unsupported("airflow.sensors.bash", "sensors.bash"),
    "example_setup_teardown": Unsupported("airflow.utils.task_group", "utils.task_group"),
    "example_setup_teardown_taskflow": Unsupported("setup", "import setup"),
    "example_skip_dag": Unsupported("BaseOperator", "(BaseOperator)"),
    "example_sla_dag": Unsupported("sla_miss_callback", "@dag("),
    "example_subdag_operator": Unsupported("airflow.example_dags", "airflow.example_dags"),
    "example_task_group": Unsupported("airflow.utils.task_group", "utils.task_group"),
    "example_task_group_decorator": Unsupported("task_group", "import task, task_group"),
    "example_time_delta_sensor_async": Unsupported("airflow.sensors.time_delta", "sensors.time_delta"),
    "example_xcom": Unsupported("xcom_push in a template", "bash_push = BashOperator("),
    "example_workday_timetable": Unsupported("airflow.example_dags", "airflow.example_dags"),
    "tutorial_objectstorage": Unsupported("airflow.io", "airflow.io"),
    "tutorial_taskflow_api_virtualenv": Unsupported("is_venv_installed", "import is_venv_installed"),
    "tutorial_taskflow_templates": Unsupported("templates_exts", "template_test.override("),
}
"""Example file -> the unsupported Airflow feature its error must name, and where."""


@dataclass
class Examples:
    """The session's two sides: Airflow's states (one background process) and kubeflowlite's."""

    originals: Path
    rewritten: Path
    airflow: Future[dict[str, Any]]
    ours: dict[str, Future[dict[str, str]]]
    validate: str


def kfl(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubeflowlite", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def run_ours(file: Path, dag_id: str, *, env: dict[str, str], runs: Path) -> dict[str, str]:
    """Every task's final state when `kubeflowlite run` runs `dag_id` of `file` locally."""
    completed = kfl(
        "run",
        str(file),
        "--dag",
        dag_name(dag_id),
        "--date",
        DATE,
        "--runs-dir",
        str(runs),
        "-o",
        "json",
        env=env,
    )
    assert completed.returncode in (0, 1), completed.stderr
    run = json.loads(completed.stdout)
    return {name: task["state"] for name, task in run["status"]["tasks"].items()}


AIRFLOW_PROCESSES = 2
"""Airflow drivers run side by side, each on its own copy of the migrated sqlite database."""


def run_airflow(venv: Path, home: Path, files: dict[str, Path]) -> dict[str, Any]:
    """Every task's final state per DAG id, from Airflow (db migrate once, then airflow_driver.py)."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    env.pop("PYTHONPATH", None)

    def database(index: int) -> dict[str, str]:
        return {**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow-{index}.db"}

    migrate = subprocess.run(
        [str(venv / "bin" / "airflow"), "db", "migrate"],
        env=database(0),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    for index in range(1, AIRFLOW_PROCESSES):
        shutil.copyfile(home / "airflow-0.db", home / f"airflow-{index}.db")
    jobs = [{"file": str(path), "dag_id": dag_id, "date": DATE} for dag_id, path in files.items()]
    drivers = [
        subprocess.Popen(
            [str(venv / "bin" / "python"), str(Path(__file__).with_name("airflow_driver.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=database(index),
            text=True,
        )
        for index in range(AIRFLOW_PROCESSES)
    ]
    answer: dict[str, Any] = {}
    for index, driver in enumerate(drivers):
        out, err = driver.communicate(json.dumps(jobs[index::AIRFLOW_PROCESSES]), timeout=900)
        assert driver.returncode == 0, err[-3000:]
        answer.update(json.loads(out.strip().splitlines()[-1]))
    return answer


@pytest.fixture(scope="session")
def examples(
    airflow_venv: Path, example_dags: Path, third_party: Path, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """Both sides of every example, run concurrently: Airflow in AIRFLOW_PROCESSES processes, ours two at a time."""
    root = tmp_path_factory.mktemp("airflow-examples")
    rewritten, home = root / "ours", root / "airflow-home"
    rewritten.mkdir()
    (home / "dags").mkdir(parents=True)
    for path in sorted(example_dags.glob("*.py")):
        if path.name != "__init__.py":
            (rewritten / path.name).write_text(rewrite_imports(path.read_text(encoding="utf-8")))
    env = {**os.environ, "PYTHONPATH": str(third_party), "NO_COLOR": "1"}
    with ThreadPoolExecutor(max_workers=3) as pool:
        # Airflow gets each file alone in its own folder (DAGS_FOLDER holds nothing else)
        airflow_files = {}
        for stem, dag_ids in SAME.items():
            folder = home / "dags" / stem
            folder.mkdir()
            for name in (stem, *NEIGHBOURS.get(stem, ())):
                (folder / f"{name}.py").write_bytes((example_dags / f"{name}.py").read_bytes())
            airflow_files.update(dict.fromkeys(dag_ids, folder / f"{stem}.py"))
        airflow = pool.submit(run_airflow, airflow_venv, home, airflow_files)
        ours = {
            dag_id: pool.submit(run_ours, rewritten / f"{stem}.py", dag_id, env=env, runs=root / "runs")
            for stem, dag_ids in SAME.items()
            for dag_id in dag_ids
        }
        validate = kfl(
            "validate", *(str(rewritten / f"{stem}.py") for stem in sorted(UNSUPPORTED)), env=env, timeout=120
        )
        yield Examples(example_dags, rewritten, airflow, ours, validate.stdout + validate.stderr)


def test_every_example_of_airflow_is_covered(example_dags: Path) -> None:
    shipped = {path.stem for path in example_dags.glob("*.py")} - {"__init__"}
    assert shipped == set(SAME) | set(UNSUPPORTED)
    assert not set(SAME) & set(UNSUPPORTED)


@pytest.mark.parametrize(
    ("stem", "dag_id"), [(stem, dag_id) for stem, dag_ids in SAME.items() for dag_id in dag_ids]
)
def test_the_same_task_states_as_airflow(examples: Examples, stem: str, dag_id: str) -> None:
    airflow = examples.airflow.result()[dag_id]
    assert "error" not in airflow, airflow.get("error")
    ours = examples.ours[dag_id].result()
    assert ours == airflow
    assert set(ours.values()) <= {"success", "skipped", "failed", "upstream_failed"}


@pytest.mark.parametrize("stem", sorted(UNSUPPORTED))
def test_an_unsupported_feature_is_an_error_naming_it_and_its_line(examples: Examples, stem: str) -> None:
    expected = UNSUPPORTED[stem]
    file = examples.rewritten / f"{stem}.py"
    lines = file.read_text(encoding="utf-8").splitlines()
    line = next(number for number, text in enumerate(lines, 1) if expected.at in text)
    errors = [text for text in examples.validate.splitlines() if text.startswith(f"{file}:")]
    assert errors, examples.validate
    assert errors[0].startswith(f"{file}:{line}: "), errors
    assert expected.names in errors[0], errors
    assert "not supported" in errors[0], errors
