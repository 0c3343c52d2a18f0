"""Every file in examples/python/ runs with the real `kubeflowlite` command and does what its comments say.

Boundary: the installed console script in a subprocess (what a user types), a
temporary runs directory, the DAGRun it prints with `-o json`, the run's xcom.json
and the tries' logs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kubeflowlite.api.dagrun import DAGRun, RunState

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"
CLI = Path(sys.executable).parent / "kubeflowlite"


def run_example(name: str, runs_dir: Path, *args: str) -> tuple[DAGRun, Path, str]:
    completed = subprocess.run(
        [str(CLI), "run", str(EXAMPLES / name), "--runs-dir", str(runs_dir), "-o", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    run = DAGRun.model_validate_json(completed.stdout)
    (run_dir,) = (runs_dir / run.spec.dag_name).iterdir()
    return run, run_dir, completed.stderr


def states(run: DAGRun) -> dict[str, str]:
    return {task: instance.state.value for task, instance in run.status.tasks.items()}


def test_every_python_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == ["branching.py", "taskflow_etl.py", "tutorial.py"]


def test_seed_tutorial(tmp_path: Path) -> None:
    run, run_dir, stderr = run_example("tutorial.py", tmp_path, "--date", "2020-02-09")
    assert run.status.state is RunState.success
    assert states(run) == {"print_date": "success", "sleep": "success", "templated": "success"}
    assert (run_dir / "templated" / "try-1.log").read_text().split()[:3] == [
        "2020-02-09",
        "2020-02-16",
        "Parameter",
    ]
    assert "kubeflowlite sends no email" in stderr  # the seed's default_args carry an email address


def test_taskflow_etl(tmp_path: Path) -> None:
    run, run_dir, _ = run_example("taskflow_etl.py", tmp_path, "--date", "2024-03-01")
    assert states(run) == {"extract": "success", "transform": "success", "load": "success"}
    values = json.loads((run_dir / "xcom.json").read_text())
    assert values == {
        "extract": [12.5, 7.5, 30.0],
        "transform": {"count": 3, "total": 50.0, "mean": 16.67},
        "load": "2024-03-01: 3 orders, 50.0 EUR",
    }
    assert "2024-03-01: 3 orders, 50.0 EUR" in (run_dir / "load" / "try-1.log").read_text()


def test_branching_follows_the_threshold(tmp_path: Path) -> None:
    small, small_dir, _ = run_example(
        "branching.py", tmp_path / "a", "--date", "2024-03-02", "-p", "threshold=10"
    )
    assert states(small) == {
        "measure": "success",
        "choose": "success",
        "big": "skipped",
        "small": "success",
        "join": "success",
    }
    assert (small_dir / "small" / "try-1.log").read_text().strip() == "small: 6"
    big, _, _ = run_example("branching.py", tmp_path / "b", "--date", "2024-03-02")
    assert (states(big)["big"], states(big)["small"]) == ("success", "skipped")
