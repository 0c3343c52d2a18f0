"""Every file in examples/ runs with the real `kubeflowlite` command, and does what its comments say.

Boundary: the installed console script in a subprocess (exactly what a user types),
a temporary runs directory, and the DAGRun it prints with `-o json`; task output is
read from the log files the runner wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubeflowlite.api.dagrun import DAGRun, RunState, TaskState

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLI = Path(sys.executable).parent / "kubeflowlite"


def run_example(name: str, runs_dir: Path, *args: str, expect: int = 0) -> tuple[DAGRun, Path]:
    """Run examples/<name> and return its DAGRun and run directory."""
    completed = subprocess.run(
        [str(CLI), "run", str(EXAMPLES / name), "--runs-dir", str(runs_dir), "-o", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == expect, completed.stderr
    run = DAGRun.model_validate_json(completed.stdout)
    (run_dir,) = (runs_dir / run.spec.dag_name).iterdir()
    return run, run_dir


def states(run: DAGRun) -> dict[str, str]:
    return {task: instance.state.value for task, instance in run.status.tasks.items()}


def log(run_dir: Path, task: str, try_number: int = 1) -> str:
    return (run_dir / task / f"try-{try_number}.log").read_text()


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == [
        "branching.yaml",
        "retries.yaml",
        "trigger-rules.yaml",
        "tutorial.yaml",
        "xcom.yaml",
    ]


def test_tutorial(tmp_path: Path) -> None:
    run, run_dir = run_example("tutorial.yaml", tmp_path, "--date", "2020-02-09")
    assert run.status.state is RunState.success
    assert states(run) == {"print_date": "success", "sleep": "success", "templated": "success"}
    assert run.spec.logical_date == datetime(2020, 2, 9, tzinfo=UTC)
    templated = log(run_dir, "templated")
    assert templated.count("2020-02-09") == 5
    assert templated.count("2020-02-16") == 5
    assert templated.count("Parameter I passed in") == 5
    assert log(run_dir, "print_date").strip()  # `date` printed something
    sleep = run.status.tasks["sleep"]
    assert sleep.start_time is not None and sleep.end_time is not None
    took = (sleep.end_time - sleep.start_time).total_seconds()
    assert 4.9 <= took < 8, took
    # sleep and templated both waited for print_date, as set_upstream said
    print_date_end = run.status.tasks["print_date"].end_time
    assert print_date_end is not None and sleep.start_time >= print_date_end


def test_xcom(tmp_path: Path) -> None:
    run, run_dir = run_example("xcom.yaml", tmp_path)
    assert run.status.state is RunState.success
    assert log(run_dir, "pull").splitlines() == [
        "rows=42",
        "table=sales",
        "by_output=last-line-value",
        'env={"rows": 42, "table": "sales"}',  # task env is templated too
    ]
    stored = json.loads((run_dir / "xcom.json").read_text())
    assert stored["push"] == {"rows": 42, "table": "sales"}
    assert stored["push_by_output"] == "last-line-value"


@pytest.mark.parametrize(
    ("weekday", "taken", "skipped"),
    [("true", "weekday_report", "weekend_report"), ("false", "weekend_report", "weekday_report")],
)
def test_branching(tmp_path: Path, weekday: str, taken: str, skipped: str) -> None:
    run, run_dir = run_example("branching.yaml", tmp_path, "-p", f"weekday={weekday}")
    assert run.status.state is RunState.success
    assert states(run) == {
        "choose": "success",
        taken: "success",
        skipped: "skipped",
        "join": "success",
        "publish": "success",
    }
    assert log(run_dir, "choose").strip() == taken
    assert not (run_dir / skipped).exists()


def test_trigger_rules(tmp_path: Path) -> None:
    run, run_dir = run_example("trigger-rules.yaml", tmp_path, expect=1)
    assert run.status.state is RunState.failed
    assert states(run) == {
        "ok": "success",
        "broken": "failed",
        "broken_alone": "upstream_failed",
        "on_all_failed": "skipped",
        "on_one_failed": "success",
        "on_all_done": "success",
        "on_one_success": "success",
        "on_none_failed": "upstream_failed",
        "on_none_skipped": "success",
        "on_always": "success",
    }
    assert run.status.tasks["broken"].exit_code == 3
    assert "failing on purpose" in log(run_dir, "broken")


def test_retries(tmp_path: Path) -> None:
    run, run_dir = run_example("retries.yaml", tmp_path)
    flaky = run.status.tasks["flaky"]
    assert run.status.state is RunState.success
    assert (flaky.state, flaky.try_number) == (TaskState.success, 3)
    assert [t.state for t in flaky.tries] == [TaskState.failed, TaskState.failed]
    for number in (1, 2):
        assert "not yet: failing this try" in log(run_dir, "flaky", number)
    assert "succeeded on try 3" in log(run_dir, "flaky", 3)
    # tries are retryDelay (1s) apart
    second = flaky.tries[1].start_time
    first_end = flaky.tries[0].end_time
    assert second is not None and first_end is not None
    assert (second - first_end).total_seconds() >= 0.9
