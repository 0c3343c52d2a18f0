"""Python function tasks, run for real: `kubeflowlite run` starts `python -m kubeflowlite.pytask` subprocesses.

Boundary: Python DAG files in a temporary directory, the real CLI group (CliRunner)
and real task subprocesses; values are read back from the run's xcom.json and the
tries' logs. The pure parts of the bootstrap (argument resolution, context
passing, XCom packing) get direct tests below.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from kubeflowlite import pytask
from kubeflowlite.api.dagrun import DAGRun
from kubeflowlite.cli.main import main
from kubeflowlite.core import xcom

ETL = """
    import json
    from kubeflowlite import DAG, Branch, Empty, Python, task

    RATE = 3

    def helper(x):
        return x * RATE

    @task
    def extract(ds=None):
        return {"a": 1, "b": 2, "day": ds}

    @task(multiple_outputs=True)
    def transform(data):
        return {"total": helper(data["a"] + data["b"]), "day": data["day"]}

    @task
    def load(total, day, **context):
        context["ti"].xcom_push(key="loaded", value=total)
        print("loaded", json.dumps([total, day, context["params"], context["dag_run"].conf]))
        return f"{day}:{total}"

    def choose(ti):
        return "big" if ti.xcom_pull(task_ids="transform", key="total") > 5 else "small"

    with DAG("etl", params={"p": 1}):
        result = transform(extract())
        loaded = load(result["total"], result["day"])
        loaded >> Branch("choose", choose) >> [Empty("big"), Empty("small")]
        loaded >> Python("after", lambda ti: ti.xcom_pull(task_ids="load", key="loaded") + 1)
        Python(
            "templated",
            lambda templates_dict, ds: templates_dict["when"] == ds and templates_dict["p"],
            templates_dict={"when": "{{ ds }}", "p": "{{ params.p }}"},
        )
"""


def run_dag(tmp_path: Path, text: str, *args: str) -> tuple[DAGRun, Path]:
    source = tmp_path / "dag_file.py"
    source.write_text(textwrap.dedent(text))
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        main, ["run", str(source), "--runs-dir", str(runs), "-o", "json", *args], catch_exceptions=False
    )
    run = DAGRun.model_validate(json.loads(result.stdout))
    (run_dir,) = (runs / run.spec.dag_name).iterdir()
    return run, run_dir


def states(run: DAGRun) -> dict[str, str]:
    return {task: instance.state.value for task, instance in run.status.tasks.items()}


def test_taskflow_etl_passes_values_through_xcom(tmp_path: Path) -> None:
    run, run_dir = run_dag(tmp_path, ETL, "--date", "2024-03-01", "-p", "q=2")
    assert states(run) == {
        "extract": "success",
        "transform": "success",
        "load": "success",
        "choose": "success",
        "big": "success",
        "small": "skipped",
        "after": "success",
        "templated": "success",
    }
    values = json.loads((run_dir / "xcom.json").read_text())
    assert values["extract"] == {"a": 1, "b": 2, "day": "2024-03-01"}
    assert values["transform"] == {"total": 9, "day": "2024-03-01"}
    assert values["load"] == {xcom.KEYED_MARKER: {"loaded": 9, "return_value": "2024-03-01:9"}}
    assert values["after"] == 10
    assert values["choose"] == "big"
    assert values["templated"] == "1"
    log = (run_dir / "load" / "try-1.log").read_text()
    assert 'loaded [9, "2024-03-01", {"p": 1, "q": 2}, {"q": 2}]' in log


def test_a_failing_function_fails_its_try_with_the_traceback_and_retries(tmp_path: Path) -> None:
    run, run_dir = run_dag(
        tmp_path,
        """
        from datetime import timedelta
        from kubeflowlite import DAG, Python

        def flaky(ti):
            if ti.try_number < 2:
                raise RuntimeError(f"try {ti.try_number} fails")
            return ti.try_number

        with DAG("flaky", default_args={"retries": 1, "retry_delay": timedelta(0)}):
            Python("flaky", flaky)
        """,
    )
    assert states(run) == {"flaky": "success"}
    assert "RuntimeError: try 1 fails" in (run_dir / "flaky" / "try-1.log").read_text()
    assert json.loads((run_dir / "xcom.json").read_text()) == {"flaky": 2}


def test_a_return_value_over_4_kib_fails_with_the_reason(tmp_path: Path) -> None:
    run, run_dir = run_dag(
        tmp_path,
        """
        from kubeflowlite import DAG, Python
        with DAG("big"):
            Python("big", lambda: "x" * 5000)
        """,
    )
    assert states(run) == {"big": "failed"}
    log = (run_dir / "big" / "try-1.log").read_text()
    assert "XCom: return value is 5002 bytes, over the 4096-byte limit" in log


def test_a_short_circuit_function_skips_downstream(tmp_path: Path) -> None:
    run, _ = run_dag(
        tmp_path,
        """
        from kubeflowlite import DAG, Empty, ShortCircuit
        with DAG("sc"):
            ShortCircuit("check", lambda params: params.get("go", False)) >> Empty("after")
        """,
    )
    assert states(run) == {"check": "success", "after": "skipped"}


# -- the bootstrap's pure parts ------------------------------------------------------------


def facts(**extra: Any) -> dict[str, Any]:
    return {"dag_id": "d", "task_id": "t", "run_id": "r", "try_number": 1, "ds": "2024-01-01", **extra}


def test_context_names_are_passed_only_where_asked() -> None:
    context = pytask.build_context(facts(params={"x": 1}), None, None)

    def named(a: int, ds: str, params: dict[str, Any]) -> Any:
        return (a, ds, params)

    def everything(a: int, **context: Any) -> Any:
        return (a, sorted(context)[:3], "ds" in context)

    def plain(a: int) -> Any:
        return a

    assert pytask.call_with_context(named, [1], {}, context) == (1, "2024-01-01", {"x": 1})
    assert pytask.call_with_context(everything, [1], {}, context)[2] is True
    assert pytask.call_with_context(plain, [], {"a": 5}, context) == 5
    assert pytask.call_with_context(named, [], {"a": 1, "ds": "mine"}, context)[1] == "mine"


def test_xcom_references_resolve_from_the_run_values() -> None:
    ti = pytask.TaskInstance(facts(xcoms={"up": {"k": [1, 2]}, "kv": xcom.pack(7, {"extra": 8})}))
    ref = {xcom.XCOM_REF_KEY: {"task": "up", "key": "return_value"}}
    assert pytask.resolve([ref, {"nested": ref}], ti) == [{"k": [1, 2]}, {"nested": {"k": [1, 2]}}]
    assert pytask.resolve({xcom.XCOM_REF_KEY: {"task": "up", "key": "k"}}, ti) == [1, 2]
    assert ti.xcom_pull(task_ids="kv") == 7
    assert ti.xcom_pull(task_ids=["kv", "kv"], key="extra") == [8, 8]
    assert ti.xcom_pull(task_ids="missing") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@given(json_values, st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=4))
def test_pack_then_select_gives_back_every_key(value: Any, pushed: dict[str, Any]) -> None:
    extra = {key: item for key, item in pushed.items() if key != "return_value"}
    stored = json.loads(xcom.encode_xcom(xcom.pack(value, pushed)))
    if not extra:
        assert stored == value
    assert xcom.select(stored) == value
    for key, item in extra.items():
        assert xcom.select(stored, key) == item
    assert xcom.is_falsy(stored) == xcom.is_falsy(value)


def test_a_pushed_return_value_is_the_return_value_when_nothing_is_returned() -> None:
    assert xcom.pack(xcom.NO_XCOM, {"return_value": 3}) == 3
    assert xcom.pack(xcom.NO_XCOM, {}) is xcom.NO_XCOM
    assert xcom.select(xcom.pack(xcom.NO_XCOM, {"a": 1})) is None
    assert xcom.branch_targets(xcom.pack("next", {"a": 1})) == ("next",)


def test_task_bash_runs_the_returned_script_and_returns_its_last_line(tmp_path: Path) -> None:
    run, run_dir = run_dag(
        tmp_path,
        """
        from kubeflowlite import DAG, task

        @task.bash
        def greet(name, ds=None):
            return f"echo hello {name}; echo on {ds}"

        @task.bash
        def broken():
            return "echo about to fail; exit 3"

        with DAG("bashy"):
            greet("world")
            broken()
        """,
        "--date",
        "2024-03-01",
    )
    assert states(run) == {"greet": "success", "broken": "failed"}
    assert json.loads((run_dir / "xcom.json").read_text()) == {"greet": "on 2024-03-01"}
    assert "hello world" in (run_dir / "greet" / "try-1.log").read_text()
    assert "exited with code 3" in (run_dir / "broken" / "try-1.log").read_text()


def test_airflow_skip_exception_skips_the_task_and_its_all_success_downstream(tmp_path: Path) -> None:
    run, run_dir = run_dag(
        tmp_path,
        """
        from kubeflowlite.airflow import DAG
        from kubeflowlite.airflow.exceptions import AirflowSkipException
        from kubeflowlite.airflow.operators.bash import BashOperator
        from kubeflowlite.airflow.operators.python import PythonOperator

        def maybe(**context):
            raise AirflowSkipException("nothing to do on " + context["ds"])

        with DAG("skippy") as dag:
            check = PythonOperator(task_id="check", python_callable=maybe)
            check >> BashOperator(task_id="after", bash_command="echo after")
            check >> BashOperator(task_id="always", bash_command="echo always", trigger_rule="all_done")
        """,
        "--date",
        "2024-03-01",
    )
    assert run.status.state.value == "success"
    assert states(run) == {"check": "skipped", "after": "skipped", "always": "success"}
    assert run.status.tasks["check"].message == "skipped by the task (exit code 99)"
    assert (
        "task skipped: AirflowSkipException: nothing to do on 2024-03-01"
        in (run_dir / "check" / "try-1.log").read_text()
    )
