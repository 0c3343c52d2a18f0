"""The local runner end to end: the real engine, real subprocesses, real files.

Boundary: each test builds a small DAG inline, runs it with `LocalRunner` (or the
`kubeflowlite` console script where signals and output streams matter) into a
temporary runs directory, and asserts on what a user would see: the run record,
task states and try numbers, log files, and processes that must be gone.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from kubeflowlite.api.dag import DAG
from kubeflowlite.api.dagrun import DAGRun, DAGRunStatus, RunState, TaskInstanceStatus, TaskMap, TaskState
from kubeflowlite.local.display import LiveDisplay, PlainDisplay, SilentObserver, make_display
from kubeflowlite.local.runner import LocalRunner, RunRequest, RunResult

LOGICAL_DATE = datetime(2020, 2, 9, tzinfo=UTC)
CLI = Path(sys.executable).parent / "kubeflowlite"


def make_dag(name: str, tasks: list[dict[str, Any]], **spec: Any) -> DAG:
    return DAG.model_validate({"metadata": {"name": name}, "spec": {"tasks": tasks, **spec}})


def run_dag(dag: DAG, runs_dir: Path, **request: Any) -> RunResult:
    options: dict[str, Any] = {
        "logical_date": LOGICAL_DATE,
        "run_name": f"{dag.dag_id}-test",
        "grace_period": 1.0,
    }
    options.update(request)
    runner = LocalRunner(RunRequest(dag=dag, runs_dir=runs_dir, **options), observer=SilentObserver())
    return runner.run()


def write_dag_file(path: Path, dag: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"apiVersion": "kubeflowlite.io/v1alpha1", "kind": "DAG", **dag}))
    return path


def process_gone(pid: int) -> bool:
    """True once `pid` no longer exists (or is only a zombie awaiting its new parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def timed_tasks(count: int, stamps: Path) -> list[dict[str, Any]]:
    """Tasks that record when they start and end (in their own clock) and sleep in between."""
    script = (
        'python3 -c "import time; print(time.time())" > "{out}.start"; sleep 0.4; '
        'python3 -c "import time; print(time.time())" > "{out}.end"'
    )
    return [{"name": f"t{i}", "bash": script.format(out=stamps / f"t{i}")} for i in range(count)]


def read_intervals(stamps: Path, count: int) -> list[tuple[float, float]]:
    return [
        (float((stamps / f"t{i}.start").read_text()), float((stamps / f"t{i}.end").read_text()))
        for i in range(count)
    ]


class TestParallelism:
    def test_parallelism_bounds_concurrent_tries(self, tmp_path: Path) -> None:
        stamps = tmp_path / "stamps"
        stamps.mkdir()
        dag = make_dag("wide", timed_tasks(6, stamps))
        result = run_dag(dag, tmp_path / "runs", parallelism=2)
        assert result.run.status.state is RunState.success
        overlap = max_overlap(read_intervals(stamps, 6))
        assert overlap == 2, f"expected exactly 2 tasks at once, saw {overlap}"

    def test_default_parallelism_is_max_active_tasks(self, tmp_path: Path) -> None:
        stamps = tmp_path / "stamps"
        stamps.mkdir()
        dag = make_dag("wide", timed_tasks(6, stamps), maxActiveTasks=3)
        result = run_dag(dag, tmp_path / "runs")
        assert result.run.status.state is RunState.success
        assert max_overlap(read_intervals(stamps, 6)) == 3
        # The stored run keeps the DAG's own spec, not the runner's bounded copy.
        assert result.run.status.dag_spec is not None
        assert result.run.status.dag_spec.max_active_tasks == 3


class TestRetries:
    def test_third_try_succeeds(self, tmp_path: Path) -> None:
        dag = make_dag(
            "retries",
            [
                {
                    "name": "flaky",
                    "bash": 'echo "try $KFL_TRY_NUMBER"; [ "$KFL_TRY_NUMBER" -ge 3 ]',
                    "retries": 3,
                    "retryDelay": "0.2s",
                }
            ],
        )
        result = run_dag(dag, tmp_path / "runs")
        flaky = result.run.status.tasks["flaky"]
        assert result.run.status.state is RunState.success
        assert flaky.state is TaskState.success
        assert flaky.try_number == 3
        assert [t.state for t in flaky.tries] == [TaskState.failed, TaskState.failed]
        for number in (1, 2, 3):
            assert result.run_dir.log_path("flaky", number).read_text().startswith(f"try {number}")

    def test_retries_exhausted_fail_the_run(self, tmp_path: Path) -> None:
        dag = make_dag(
            "doomed", [{"name": "always_fails", "bash": "exit 7", "retries": 1, "retryDelay": "0s"}]
        )
        result = run_dag(dag, tmp_path / "runs")
        task = result.run.status.tasks["always_fails"]
        assert result.run.status.state is RunState.failed
        assert (task.state, task.try_number, task.exit_code) == (TaskState.failed, 2, 7)
        assert task.message == "exit code 7"


class TestExecutionTimeout:
    def test_timeout_kills_the_whole_process_tree(self, tmp_path: Path) -> None:
        pids = tmp_path / "pids"
        dag = make_dag(
            "timeout",
            [
                {
                    "name": "hangs",
                    # a background grandchild and a foreground child, both far longer than the timeout
                    "bash": f'sleep 300 & echo $! > "{pids}"; sleep 301',
                    "executionTimeout": "1s",
                    "retries": 0,
                }
            ],
        )
        started = time.monotonic()
        result = run_dag(dag, tmp_path / "runs")
        elapsed = time.monotonic() - started
        task = result.run.status.tasks["hangs"]
        assert result.run.status.state is RunState.failed
        assert task.state is TaskState.failed
        assert task.message is not None and "execution timeout" in task.message
        assert elapsed < 10
        background = int(pids.read_text())
        assert wait_for(lambda: process_gone(background), timeout=5), "the background sleep survived"
        assert "try stopped: execution timeout" in result.run_dir.log_path("hangs", 1).read_text()


class TestXCom:
    def test_json_file_and_last_line_reach_downstream_templates(self, tmp_path: Path) -> None:
        dag = make_dag(
            "xcom",
            [
                {"name": "push", "bash": """echo '{"n": 5}' > "$KFL_XCOM_FILE"; echo noise"""},
                {"name": "line", "bash": "echo first; echo the-value"},
                {
                    "name": "pull",
                    "dependsOn": ["push", "line"],
                    "bash": "echo n={{ ti.xcom_pull(task_ids='push')['n'] }} line={{ ti.xcom_pull(task_ids='line') }}",
                },
            ],
        )
        result = run_dag(dag, tmp_path / "runs")
        assert result.run.status.state is RunState.success
        assert result.run_dir.log_path("pull", 1).read_text().strip() == "n=5 line=the-value"
        stored = json.loads((result.run_dir.path / "xcom.json").read_text())
        assert stored == {"push": {"n": 5}, "line": "the-value", "pull": "n=5 line=the-value"}

    def test_value_over_4_kib_fails_the_try(self, tmp_path: Path) -> None:
        script = """python3 -c 'import json, os; open(os.environ["KFL_XCOM_FILE"], "w").write(json.dumps("x" * 5000))'"""
        dag = make_dag("big", [{"name": "big", "bash": script, "retries": 0}])
        result = run_dag(dag, tmp_path / "runs")
        task = result.run.status.tasks["big"]
        assert task.state is TaskState.failed
        assert task.message is not None
        assert "5002 bytes" in task.message and "4096-byte limit" in task.message
        assert "4096-byte limit" in result.run_dir.log_path("big", 1).read_text()

    def test_invalid_json_fails_the_try(self, tmp_path: Path) -> None:
        dag = make_dag(
            "bad", [{"name": "bad", "bash": "echo '{not json' > \"$KFL_XCOM_FILE\"", "retries": 0}]
        )
        result = run_dag(dag, tmp_path / "runs")
        task = result.run.status.tasks["bad"]
        assert task.state is TaskState.failed
        assert task.message is not None and "not valid JSON" in task.message

    def test_command_tasks_push_only_through_the_file(self, tmp_path: Path) -> None:
        dag = make_dag(
            "cmd",
            [
                {"name": "argv", "command": ["printf", "%s\\n"], "args": ["{{ ds }}", "two words"]},
                {
                    "name": "pull",
                    "dependsOn": ["argv"],
                    "bash": "echo 'got {{ ti.xcom_pull(task_ids=\"argv\") }}'",
                },
            ],
        )
        result = run_dag(dag, tmp_path / "runs")
        assert result.run.status.state is RunState.success
        assert result.run_dir.log_path("argv", 1).read_text() == "2020-02-09\ntwo words\n"
        assert result.run_dir.log_path("pull", 1).read_text() == "got None\n"


class TestTaskEnvironment:
    def test_kfl_variables_and_task_env(self, tmp_path: Path) -> None:
        dag = make_dag(
            "envs",
            [
                {
                    "name": "show",
                    "bash": 'echo "$KFL_DAG_ID $KFL_TASK_ID $KFL_RUN_ID $KFL_TRY_NUMBER $KFL_LOGICAL_DATE $GREETING"',
                    "env": [{"name": "GREETING", "value": "hello {{ ds_nodash }}"}],
                }
            ],
        )
        result = run_dag(dag, tmp_path / "runs")
        line = result.run_dir.log_path("show", 1).read_text().split()
        assert line[:2] == ["envs", "show"]
        assert line[2] == result.run_dir.path.name  # the run id names the run directory
        assert line[3:] == ["1", "2020-02-09T00:00:00Z", "hello", "20200209"]

    def test_template_error_fails_the_try_with_the_error(self, tmp_path: Path) -> None:
        dag = make_dag("typo", [{"name": "typo", "bash": "echo {{ no_such_variable }}", "retries": 0}])
        result = run_dag(dag, tmp_path / "runs")
        task = result.run.status.tasks["typo"]
        assert task.state is TaskState.failed
        assert task.message is not None and "no_such_variable" in task.message
        assert "no_such_variable" in result.run_dir.log_path("typo", 1).read_text()


class TestRunRecord:
    def test_output_json_is_a_dagrun(self, tmp_path: Path) -> None:
        dag_file = write_dag_file(
            tmp_path / "dag.yaml",
            {"metadata": {"name": "shape"}, "spec": {"tasks": [{"name": "only", "bash": "echo hi"}]}},
        )
        runs = tmp_path / "runs"
        completed = subprocess.run(
            [
                str(CLI),
                "run",
                str(dag_file),
                "--date",
                "2020-02-09",
                "--conf",
                '{"k": 1}',
                "--runs-dir",
                str(runs),
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert completed.returncode == 0, completed.stderr
        run = DAGRun.model_validate_json(completed.stdout)  # stdout holds only the object
        wire = json.loads(completed.stdout)
        assert wire["apiVersion"] == "kubeflowlite.io/v1alpha1"
        assert wire["kind"] == "DAGRun"
        assert wire["metadata"]["name"] == "shape-manual-20200209t000000"
        assert wire["spec"] == {
            "dagName": "shape",
            "logicalDate": "2020-02-09T00:00:00Z",
            "conf": {"k": 1},
            "runType": "manual",
        }
        assert run.status.state is RunState.success
        only = wire["status"]["tasks"]["only"]
        assert (only["state"], only["tryNumber"]) == ("success", 1)
        assert only["startTime"] <= only["endTime"]
        assert "only success" in completed.stderr  # the progress went to stderr
        stored = next(runs.glob("shape/*/run.json"))
        assert json.loads(stored.read_text()) == wire


class TestInterrupt:
    @pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
    def test_signal_stops_children_prints_summary_and_exits_130(self, tmp_path: Path, signum: int) -> None:
        pids = tmp_path / "pids"
        dag_file = write_dag_file(
            tmp_path / "dag.yaml",
            {
                "metadata": {"name": "long"},
                "spec": {
                    "tasks": [
                        {"name": "quick", "bash": "true"},
                        {
                            "name": "sleeper",
                            "dependsOn": ["quick"],
                            "bash": f'sleep 300 & echo $! > "{pids}"; wait',
                        },
                        {"name": "after", "dependsOn": ["sleeper"], "bash": "true"},
                    ]
                },
            },
        )
        process = subprocess.Popen(
            [str(CLI), "run", str(dag_file), "--runs-dir", str(tmp_path / "runs")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert wait_for(lambda: pids.exists() and pids.read_text().strip() != "", timeout=30)
            sleep_pid = int(pids.read_text())
            assert not process_gone(sleep_pid)
            process.send_signal(signum)
            output, _ = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 130, output
        assert wait_for(lambda: process_gone(sleep_pid), timeout=5), "the task's sleep survived Ctrl-C"
        assert "interrupted" in output
        summary = output[output.index("interrupted") :]
        assert "quick" in summary and "sleeper" in summary and "after" in summary
        run = DAGRun.model_validate_json(next((tmp_path / "runs").glob("long/*/run.json")).read_text())
        tasks = run.status.tasks
        assert run.status.state is RunState.failed
        assert tasks["quick"].state is TaskState.success
        assert tasks["sleeper"].state is TaskState.failed and tasks["sleeper"].message == "run interrupted"
        assert tasks["after"].state is TaskState.none


class TestOtherDags:
    def test_external_task_sensor_reads_the_watched_run(self, tmp_path: Path) -> None:
        runs = tmp_path / "runs"
        upstream = make_dag("upstream", [{"name": "load", "bash": "true"}])
        assert run_dag(upstream, runs).succeeded
        sensing = make_dag(
            "downstream",
            [
                {
                    "name": "wait_load",
                    "sensor": {"dag": "upstream", "task": "load", "pokeInterval": "0.2s", "timeout": "20s"},
                },
                {
                    "name": "wait_day_before",
                    "sensor": {"dag": "upstream", "offset": "-1d", "pokeInterval": "0.2s", "timeout": "1s"},
                    "retries": 0,
                },
            ],
        )
        result = run_dag(sensing, runs)
        tasks = result.run.status.tasks
        assert tasks["wait_load"].state is TaskState.success
        assert (
            "upstream.load at 2020-02-09T00:00:00Z is success"
            in result.run_dir.log_path("wait_load", 1).read_text()
        )
        assert tasks["wait_day_before"].state is TaskState.failed
        assert "timed out" in result.run_dir.log_path("wait_day_before", 1).read_text()

    def test_trigger_dag_runs_the_target_from_the_same_directory(self, tmp_path: Path) -> None:
        marker = tmp_path / "triggered.txt"
        write_dag_file(
            tmp_path / "target.yaml",
            {
                "metadata": {"name": "target"},
                "spec": {
                    "tasks": [
                        {
                            "name": "work",
                            "bash": f'echo "{{{{ dag_run.conf.who }}}} {{{{ ds }}}}" > "{marker}"',
                        }
                    ]
                },
            },
        )
        controller = make_dag(
            "controller",
            [
                {
                    "name": "kick",
                    "triggerDag": {
                        "dag": "target",
                        "conf": {"who": "{{ dag.dag_id }}"},
                        "waitForCompletion": True,
                    },
                },
                {"name": "missing", "triggerDag": {"dag": "nowhere"}, "retries": 0},
            ],
        )
        result = run_dag(controller, tmp_path / "runs", dag_file=tmp_path / "controller.yaml")
        tasks = result.run.status.tasks
        assert tasks["kick"].state is TaskState.success, result.run_dir.log_path("kick", 1).read_text()
        assert marker.read_text().split() == ["controller", "2020-02-09"]
        target_run = DAGRun.model_validate_json(
            next((tmp_path / "runs").glob("target/*/run.json")).read_text()
        )
        assert target_run.status.state is RunState.success
        assert target_run.spec.conf == {"who": "controller"}
        # The try's XCom is the triggered run's name, as the operator's triggerDag pushes it.
        stored = json.loads((result.run_dir.path / "xcom.json").read_text())
        assert stored["kick"] == target_run.metadata.name == "target-manual-20200209t000000"
        assert tasks["missing"].state is TaskState.failed
        assert (
            tasks["missing"].message
            == "triggerDag needs the DAG 'nowhere' in the same directory or the operator"
        )

    def test_depends_on_past_reads_the_previous_run(self, tmp_path: Path) -> None:
        runs = tmp_path / "runs"
        gate = tmp_path / "gate"
        dag = make_dag(
            "daily",
            [{"name": "step", "bash": f'[ -e "{gate}" ]', "dependsOnPast": True, "retries": 0}],
            schedule="@daily",
        )
        first = run_dag(dag, runs, logical_date=datetime(2020, 2, 8, tzinfo=UTC), run_name="d1")
        assert first.run.status.tasks["step"].state is TaskState.failed
        gate.touch()
        started = time.monotonic()
        second = run_dag(dag, runs, run_name="d2")
        # The engine holds the task back and asks to be woken only on change: locally
        # nothing will change, so the run fails at once with the reason instead of hanging.
        assert time.monotonic() - started < 5
        step = second.run.status.tasks["step"]
        assert second.run.status.state is RunState.failed
        assert step.state is TaskState.none
        assert step.message is not None and "dependsOnPast" in step.message
        assert not second.run_dir.log_path("step", 1).exists()


def test_python_dash_m_kubeflowlite_is_the_cli() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "kubeflowlite", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
    )
    assert completed.returncode == 0
    assert "run" in completed.stdout and "tasks" in completed.stdout


class TestDisplay:
    def test_terminal_gets_the_live_table_and_the_summary(self, tmp_path: Path) -> None:
        screen = io.StringIO()
        display = LiveDisplay(Console(file=screen, force_terminal=True, width=120, color_system=None))
        dag = make_dag(
            "shown",
            [{"name": "fine", "bash": "sleep 0.6"}, {"name": "broken", "bash": "exit 2", "retries": 0}],
        )
        runner = LocalRunner(
            RunRequest(dag=dag, runs_dir=tmp_path / "runs", logical_date=LOGICAL_DATE, run_name="shown-1"),
            observer=display,
        )
        result = runner.run()
        text = screen.getvalue()
        log = result.run_dir.log_path("broken", 1)
        assert "running" in text  # the live table showed `fine` while it ran
        assert "broken try 1 failed: exit code 2" in text
        assert f"log: {log}" in text
        assert "run failed" in text and "shown-1" in text

    def test_plain_lines_name_each_change_of_state_or_try_once(self) -> None:
        out = io.StringIO()
        display = PlainDisplay(out)
        tasks = TaskMap({"a": TaskInstanceStatus(), "b": TaskInstanceStatus()})
        running = TaskInstanceStatus(state=TaskState.running, try_number=1)
        steps = [
            tasks,
            tasks.updated({"a": running}),
            tasks.updated({"a": running}),  # the same instance again
            tasks.updated({"a": running.model_copy(update={"message": "still"})}),  # same state and try
            tasks.updated({"a": TaskInstanceStatus(state=TaskState.running, try_number=2)}),  # a retry
            tasks.updated({"a": TaskInstanceStatus(state=TaskState.success, try_number=2)}),
        ]
        for step in steps:
            display.update(DAGRunStatus(tasks=step))
        lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
        assert lines == ["a running (try 1)", "a running (try 2)", "a success (try 2)"]

    def test_pipes_get_plain_lines_and_terminals_the_live_table(self) -> None:
        assert isinstance(make_display(io.StringIO()), PlainDisplay)
        assert isinstance(make_display(io.StringIO(), terminal=True), LiveDisplay)

    def test_plain_lines_and_summary_without_rich(self, tmp_path: Path) -> None:
        out = io.StringIO()
        dag = make_dag(
            "piped", [{"name": "ok", "bash": "true"}, {"name": "bad", "bash": "exit 3", "retries": 0}]
        )
        result = LocalRunner(
            RunRequest(dag=dag, runs_dir=tmp_path / "runs", logical_date=LOGICAL_DATE, run_name="piped-1"),
            observer=make_display(out),
        ).run()
        lines = out.getvalue().splitlines()
        assert any(line.endswith("ok success (try 1)") for line in lines)
        assert "bad try 1 failed: exit code 3" in lines
        header = lines.index(" task  state    tries  duration")  # the summary table, aligned
        assert [line.split()[:3] for line in lines[header + 1 : header + 3]] == [
            ["ok", "success", "1"],
            ["bad", "failed", "1"],
        ]
        assert f"bad failed: exit code 3  log: {result.run_dir.log_path('bad', 1)}" in lines
        assert "run failed  piped " in out.getvalue() and f"logs: {result.run_dir.path}" in lines
