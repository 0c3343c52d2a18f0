"""The Python DSL: DAG files written in Python compile to exactly the YAML spec's DAG resource.

Boundary: real Python DAG files written to a temporary directory and imported by
kubeflowlite.dagfiles (the loader every command uses); the result is compared with
the YAML examples parsed by core.loading, and errors by their text (file and line).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagfile_text import line_of, write
from hypothesis import given, settings
from hypothesis import strategies as st

import kubeflowlite
from kubeflowlite import dagfiles
from kubeflowlite.api.dag import XCOM_REF_KEY
from kubeflowlite.core import durations, loading
from kubeflowlite.core.validation import InvalidDAGError
from kubeflowlite.dsl import tasks
from kubeflowlite.dsl.model import DAG
from kubeflowlite.dsl.tasks import Bash, Empty, Label, Python, chain

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


TUTORIAL_NATIVE = '''
    from datetime import datetime, timedelta

    from kubeflowlite import DAG, Bash

    default_args = {
        "image": "busybox:1.36",
        "owner": "airflow",
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": False,
        "max_retry_delay": timedelta(hours=1),
        "execution_timeout": timedelta(hours=1),
        "depends_on_past": False,
    }
    templated_command = """{% for i in range(5) %}
    echo "{{ ds }}"
    echo "{{ macros.ds_add(ds, 7) }}"
    echo "{{ params.my_param }}"
    {% endfor %}
    """
    with DAG(
        "tutorial",
        description="First DAG",
        schedule="55 14 * * *",
        timezone="UTC",
        start_date=datetime(2020, 2, 9),
        catchup=False,
        paused=False,
        max_active_runs=16,
        max_active_tasks=16,
        tags=["example"],
        params={"my_param": "Parameter I passed in"},
        default_args=default_args,
    ) as dag:
        t1 = Bash("print_date", "date")
        t2 = Bash("sleep", "sleep 5", retries=3)
        t3 = Bash("templated", templated_command)
        t2.set_upstream(t1)
        t1.set_downstream(t3)
'''


def test_the_tutorial_in_python_is_the_tutorial_yaml(tmp_path: Path) -> None:
    (compiled,) = dagfiles.load_dag_file(write(tmp_path, TUTORIAL_NATIVE))
    (expected,) = loading.load_dag_file(EXAMPLES / "tutorial.yaml")
    assert compiled.to_wire() == expected.to_wire()
    assert compiled == expected


def test_package_root_is_light_and_exports_the_dsl() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kubeflowlite\n"
        "from kubeflowlite import DAG, Bash, task\n"
        "heavy = [m for m in ('kubernetes', 'kopf', 'pydantic') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == ""
    assert kubeflowlite.DAG is DAG
    assert kubeflowlite.Bash is Bash


def test_dependency_operators_make_the_same_edges_as_airflow() -> None:
    with DAG("ops") as dag:
        a, b, c, d, e, f = (Empty(name) for name in "abcdef")
        a >> [b, c]
        [b, c] >> d
        e << d
        f.set_upstream([a, e])
    assert {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks.values()} == {
        "a": [],
        "b": ["a"],
        "c": ["a"],
        "d": ["b", "c"],
        "e": ["d"],
        "f": ["a", "e"],
    }
    assert dag.tasks["a"].downstream_task_ids == {"b", "c", "f"}


def test_chain_and_labels() -> None:
    with DAG("chained") as dag:
        a, b1, b2, c1, c2, d = (Empty(name) for name in ("a", "b1", "b2", "c1", "c2", "d"))
        chain(a, [b1, b2], [c1, c2], d)
        e = Empty("e")
        d >> Label("when done") >> e
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks.values()}
    assert upstream == {
        "a": [],
        "b1": ["a"],
        "b2": ["a"],
        "c1": ["b1"],
        "c2": ["b2"],
        "d": ["c1", "c2"],
        "e": ["d"],
    }


def test_every_spec_field_is_reachable_with_python_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from datetime import datetime, timedelta, timezone
        from kubeflowlite import DAG, Bash, Command, Empty, Sensor, Trigger, TriggerRule

        with DAG(
            "everything",
            description="all fields",
            schedule="@daily",
            timezone="Europe/Berlin",
            start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
            end_date=datetime(2024, 12, 31),
            catchup=True,
            paused=True,
            max_active_runs=2,
            max_active_tasks=3,
            tags=["a", "b"],
            params={"n": 1},
            pod_cleanup="onSuccess",
            successful_runs_history_limit=5,
            failed_runs_history_limit=6,
            namespace="team",
            labels={"team": "data"},
            default_args={"image": "python:3.11", "pod": {"nodeSelector": {"disk": "ssd"}}},
        ):
            c = Command(
                "c",
                ["python", "-c"],
                args=["print(1)"],
                env={"A": "{{ ds }}"},
                retry_delay=timedelta(seconds=90),
                max_retry_delay=timedelta(hours=2),
                execution_timeout=timedelta(milliseconds=250),
                retry_exponential_backoff=True,
                trigger_rule=TriggerRule.all_done,
                depends_on_past=True,
                owner="me",
            )
            s = Sensor(
                "s",
                external_dag_id="other",
                external_task_id="t",
                offset=-timedelta(days=1),
                allowed_states=["success", "skipped"],
                poke_interval=timedelta(seconds=5),
                timeout=timedelta(hours=1),
            )
            t = Trigger("t", trigger_dag_id="other", conf={"x": "{{ ds }}"}, wait_for_completion=True)
            b = Bash("b", "echo hi", branch=True, trigger_rule="one_success")
            e = Empty("e")
            c >> s >> t >> b >> e
        """,
    )
    (dag,) = dagfiles.load_dag_file(path)
    wire = dag.to_wire()
    spec = wire["spec"]
    assert wire["metadata"] == {"name": "everything", "namespace": "team", "labels": {"team": "data"}}
    assert spec["startDate"] == "2024-01-01T00:00:00Z"
    assert spec["endDate"] == "2024-12-31T00:00:00Z"
    assert (spec["timezone"], spec["catchup"], spec["paused"], spec["podCleanup"]) == (
        "Europe/Berlin",
        True,
        True,
        "onSuccess",
    )
    assert (spec["successfulRunsHistoryLimit"], spec["failedRunsHistoryLimit"]) == (5, 6)
    assert spec["defaults"] == {"image": "python:3.11", "pod": {"nodeSelector": {"disk": "ssd"}}}
    tasks = {task["name"]: task for task in spec["tasks"]}
    assert tasks["c"]["env"] == [{"name": "A", "value": "{{ ds }}"}]
    assert (tasks["c"]["retryDelay"], tasks["c"]["maxRetryDelay"], tasks["c"]["executionTimeout"]) == (
        "1m30s",
        "2h",
        "250ms",
    )
    assert tasks["c"]["triggerRule"] == "all_done"
    assert tasks["c"]["command"] == ["python", "-c"] and tasks["c"]["args"] == ["print(1)"]
    assert tasks["s"]["sensor"]["offset"] == "-1d"
    assert tasks["s"]["sensor"]["pokeInterval"] == "5s"
    assert tasks["t"]["triggerDag"] == {
        "dag": "other",
        "conf": {"x": "{{ ds }}"},
        "waitForCompletion": True,
        "pokeInterval": "10s",
    }
    assert tasks["b"]["branch"] is True and tasks["b"]["triggerRule"] == "one_success"
    assert tasks["e"]["type"] == "empty" and tasks["e"]["dependsOn"] == ["b"]
    assert "pythonSource" not in spec


def test_taskflow_results_make_dependencies_and_xcom_references(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from kubeflowlite import DAG, task

        @task
        def extract():
            return {"a": 1, "b": 2}

        @task(multiple_outputs=True, retries=2)
        def transform(data, factor=1):
            return {"total": sum(data.values()) * factor}

        @task
        def load(total, *, label):
            print(label, total)

        with DAG("etl") as dag:
            data = extract()
            result = transform(data, factor=10)
            load(result["total"], label="sum")
            load.override(task_id="load_again")(result["total"], label="again")
            load(data, label="raw")
        """,
    )
    (dag,) = dagfiles.load_dag_file(path)
    tasks = {task.name: task for task in dag.spec.tasks}
    assert list(tasks) == ["extract", "transform", "load", "load_again", "load__1"]
    assert tasks["transform"].depends_on == ["extract"]
    assert tasks["transform"].retries == 2
    assert tasks["transform"].python is not None and tasks["transform"].python.multiple_outputs
    assert tasks["transform"].python.args == [{XCOM_REF_KEY: {"task": "extract", "key": "return_value"}}]
    assert tasks["transform"].python.kwargs == {"factor": 10}
    assert tasks["load"].python is not None
    assert tasks["load"].python.args == [{XCOM_REF_KEY: {"task": "transform", "key": "total"}}]
    assert tasks["load"].depends_on == ["transform"]
    assert tasks["load__1"].depends_on == ["extract"]
    assert dag.spec.python_source is not None
    assert dag.spec.python_source.filename == "dag_file.py"
    assert dag.spec.python_source.code == path.read_text()


def test_dag_decorator_builds_a_dag_named_after_the_function(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from kubeflowlite import dag, task

        @dag(schedule="@daily", tags=["x"])
        def my_pipeline(threshold=3):
            @task
            def one():
                return 1

            @task.short_circuit
            def check(value):
                return value > 0

            check(one())

        my_pipeline()
        """,
    )
    (compiled,) = dagfiles.load_dag_file(path)
    assert compiled.dag_id == "my-pipeline"
    assert compiled.spec.params == {"threshold": 3}
    check = compiled.spec.tasks[1]
    assert (check.name, check.short_circuit, check.depends_on) == ("check", True, ["one"])


# -- errors name the file and line --------------------------------------------------------


def test_invalid_field_names_the_task_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from datetime import timedelta
        from kubeflowlite import DAG, Bash

        with DAG("bad") as dag:
            ok = Bash("ok", "true")
            broken = Bash("broken", "true", retries=-1, retry_delay="soon")
            ok >> broken
        """,
    )
    with pytest.raises(InvalidDAGError) as caught:
        dagfiles.load_dag_file(path)
    line = line_of(path, 'Bash("broken"')
    assert str(caught.value).splitlines() == [
        f"{path}:{line}: task 'broken': retries: must be >= 0 (got -1)",
        f"{path}:{line}: task 'broken': retry_delay: not a duration: 'soon' "
        "(expected e.g. 30s, 5m, 1h30m, 1d, 250ms, or a number of seconds)",
    ]


@pytest.mark.parametrize(
    ("body", "fragment", "message"),
    [
        ('raise RuntimeError("no database")', "raise Runtime", "raised RuntimeError: no database"),
        ("Bash('orphan', 'true')", "orphan", "task 'orphan' is not in a DAG"),
        (
            "with DAG('d'):\n    Bash('t', 'a')\n    Bash('t', 'b')",
            "Bash('t', 'b')",
            "DAG 'd' already has a task 't' (defined at",
        ),
        (
            "with DAG('d', schedule_interval='@daily'):\n    pass",
            "with DAG",
            "unknown argument 'schedule_interval'",
        ),
        ("x = (", "x = (", "syntax error"),
        (
            "with DAG('d'):\n    Python('p', lambda: 1, args=[object()])",
            "Python('p'",
            "task 'p': args: object",
        ),
    ],
)
def test_import_and_definition_errors_name_file_and_line(
    tmp_path: Path, body: str, fragment: str, message: str
) -> None:
    path = write(tmp_path, "from kubeflowlite import DAG, Bash, Python\n" + body + "\n")
    with pytest.raises(InvalidDAGError) as caught:
        dagfiles.load_dag_file(path)
    text = str(caught.value)
    assert text.startswith(f"{path}:{line_of(path, fragment)}: "), text
    assert message in text


def test_two_dags_with_one_id_name_the_second_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from kubeflowlite import DAG, Empty
        with DAG("same"):
            Empty("a")
        with DAG("same"):
            Empty("b")
        """,
    )
    with pytest.raises(InvalidDAGError) as caught:
        dagfiles.load_dag_file(path)
    first, second = line_of(path, 'Empty("a")') - 1, line_of(path, 'Empty("b")') - 1
    assert str(caught.value) == (
        f"{path}:{second}: dag_id 'same': defined twice in this file (also at line {first})"
    )


def test_folder_finds_every_dag_and_rejects_one_id_in_two_files(tmp_path: Path) -> None:
    write(tmp_path, "from kubeflowlite import DAG, Empty\nwith DAG('one'):\n    Empty('a')\n", "a.py")
    write(tmp_path, "from kubeflowlite import DAG, Empty\nwith DAG('two'):\n    Empty('a')\n", "b.py")
    write(tmp_path, "HELPER = 1\n", "helpers.py")
    (tmp_path / "c.yaml").write_text((EXAMPLES / "xcom.yaml").read_text())
    assert sorted(dag.dag_id for dag in dagfiles.load_dags(tmp_path)) == ["one", "two", "xcom"]
    write(tmp_path, "from kubeflowlite import DAG, Empty\nwith DAG('one'):\n    Empty('b')\n", "d.py")
    with pytest.raises(InvalidDAGError) as caught:
        dagfiles.load_dags(tmp_path)
    assert f"{tmp_path / 'd.py'}: DAG 'one' is also defined in {tmp_path / 'a.py'}" in str(caught.value)


# -- properties ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=12).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda e: e[0] < e[1])),
        )
    )
)
def test_edges_written_with_operators_are_the_compiled_dependencies(
    graph: tuple[int, set[tuple[int, int]]],
) -> None:
    count, edges = graph
    with DAG("prop") as dag:
        tasks = [Empty(f"t{i}") for i in range(count)]
        for up, down in sorted(edges):
            if (up + down) % 2:
                tasks[up] >> tasks[down]
            else:
                tasks[down] << tasks[up]
    compiled = dag.compile()
    assert {(up, task.name) for task in compiled.spec.tasks for up in task.depends_on} == {
        (f"t{up}", f"t{down}") for up, down in edges
    }


@settings(max_examples=100, deadline=None)
@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
def test_timedeltas_compile_to_durations_that_parse_back(delta: timedelta) -> None:
    with DAG("durations") as dag:
        Empty("e", retry_delay=delta)
    compiled = dag.compile()
    retry_delay = compiled.spec.tasks[0].retry_delay
    assert retry_delay is not None
    exact = timedelta(milliseconds=round(delta / timedelta(milliseconds=1)))
    assert durations.parse_duration(retry_delay) == exact


def test_python_task_with_lambda_and_output(tmp_path: Path) -> None:
    with DAG("py") as dag:
        first = Python("first", lambda: 1)
        Python("second", lambda value: value, args=[first.output])
    assert dag.tasks["second"].upstream_task_ids == {"first"}
    assert isinstance(dag.tasks["second"], tasks.Python)


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)).map(
        lambda moment: moment.replace(second=0, microsecond=0)
    ),
    every=st.sampled_from(
        [timedelta(minutes=n) for n in (1, 5, 15, 30)]
        + [timedelta(hours=n) for n in (1, 2, 6, 12)]
        + [timedelta(days=1), timedelta(weeks=1)]
    ),
)
def test_a_timedelta_schedule_becomes_the_cron_with_the_same_run_times(
    start: datetime, every: timedelta
) -> None:
    from croniter import croniter

    from kubeflowlite.dsl import compile as compiler

    cron = compiler._interval_as_cron(every, start.replace(tzinfo=UTC), None)
    assert cron is not None
    fires = croniter(cron, start.replace(tzinfo=UTC) - timedelta(seconds=1))
    assert [fires.get_next(datetime) for _ in range(4)] == [
        start.replace(tzinfo=UTC) + k * every for k in range(4)
    ]


@pytest.mark.parametrize(
    ("every", "start", "timezone"),
    [
        (timedelta(minutes=7), datetime(2024, 1, 1, tzinfo=UTC), None),
        (timedelta(hours=5), datetime(2024, 1, 1, tzinfo=UTC), None),
        (timedelta(days=2), datetime(2024, 1, 1, tzinfo=UTC), None),
        (timedelta(days=1), datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC), None),
        (timedelta(days=1), datetime(2024, 1, 1, tzinfo=UTC), "Europe/Berlin"),
        (timedelta(days=1), None, None),
    ],
)
def test_a_timedelta_schedule_without_a_cron_equivalent_is_an_error(
    every: timedelta, start: datetime | None, timezone: str | None
) -> None:
    with DAG("d", schedule=every, start_date=start, timezone=timezone) as dag:
        Empty("e")
    with pytest.raises(InvalidDAGError) as caught:
        dag.compile()
    assert f"{dag.location}: schedule: a timedelta schedule ({every}) is not supported here" in str(
        caught.value
    )


def test_a_timedelta_schedule_compiles_to_cron_anchored_at_the_start() -> None:
    with DAG("d", schedule=timedelta(days=1), start_date=datetime(2021, 1, 1, 14, 55)) as dag:
        Empty("e")
    assert dag.compile().spec.schedule == "55 14 * * *"


def test_the_modules_a_dag_file_imports_from_its_folder_are_found_transitively(tmp_path: Path) -> None:
    from kubeflowlite.dsl.siblings import sibling_modules

    (tmp_path / "helpers.py").write_text("import json\nfrom shared.util import f\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "__init__.py").write_text("")
    (tmp_path / "shared" / "util.py").write_text("import deeper\ndef f(): return 1\n")
    (tmp_path / "deeper.py").write_text("X = 1\n")
    (tmp_path / "unused.py").write_text("Y = 2\n")
    (tmp_path / "shared" / "__pycache__").mkdir()
    (tmp_path / "shared" / "__pycache__" / "stale.py").write_text("")
    dag_file = tmp_path / "the_dag.py"
    source = "import os\nimport helpers\nfrom . import nothing\n\ndef g():\n    import the_dag\n"
    dag_file.write_text(source)
    assert sibling_modules(dag_file, source) == {
        "deeper.py": "X = 1\n",
        "helpers.py": "import json\nfrom shared.util import f\n",
        "shared/__init__.py": "",
        "shared/util.py": "import deeper\ndef f(): return 1\n",
    }
    assert sibling_modules(tmp_path / "no_such_file.py", source) == {}


def test_a_python_task_imports_the_helpers_beside_its_dag_file_when_run_locally(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from kubeflowlite.cli.main import main

    (tmp_path / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    path = tmp_path / "helped_dag.py"
    path.write_text(
        "from kubeflowlite import DAG, task\nfrom helpers import double\n\n"
        "@task\ndef use():\n    return double(21)\n\nwith DAG('helped'):\n    use()\n"
    )
    runs = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", str(path), "--runs-dir", str(runs), "--date", "2024-01-01"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (runs / "helped").iterdir()
    assert json.loads((run_dir / "xcom.json").read_text()) == {"use": 42}


@pytest.mark.parametrize("bad", ["../escape.py", "/abs.py", "lib/notes.txt", "a//b.py", "x-y.py"])
def test_shipped_module_paths_must_stay_inside_the_source_folder(tmp_path: Path, bad: str) -> None:
    with DAG("d") as dag:
        Python("p", print)
    document = dag.compile().to_wire()
    document["spec"]["pythonSource"]["modules"] = {bad: ""}
    with pytest.raises(InvalidDAGError, match="invalid module path"):
        loading.parse_dag(document, source="x")
