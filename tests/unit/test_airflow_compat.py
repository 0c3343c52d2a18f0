"""kubeflowlite.airflow: Airflow DAG files, only their imports changed, compile and run with Airflow's results.

Boundary: DAG files on disk (the seed tutorial in examples/python/, others written
to a temporary directory), loaded by kubeflowlite.dagfiles and run with the real
CLI group (tasks as real subprocesses). Warnings are captured with pytest.warns.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagfile_text import line_of
from dagfile_text import write as write_dag_file

from kubeflowlite import dagfiles
from kubeflowlite.airflow._compat import AirflowCompatWarning
from kubeflowlite.api.dagrun import DAGRun
from kubeflowlite.cli.main import main
from kubeflowlite.core import loading
from kubeflowlite.core.validation import InvalidDAGError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(tmp_path: Path, text: str, name: str = "airflow_dag.py") -> Path:
    return write_dag_file(tmp_path, text, name)


def run(path: Path, runs: Path, *args: str) -> tuple[DAGRun, Path]:
    result = CliRunner().invoke(
        main, ["run", str(path), "--runs-dir", str(runs), "-o", "json", *args], catch_exceptions=False
    )
    parsed = DAGRun.model_validate(json.loads(result.stdout))
    (run_dir,) = (runs / parsed.spec.dag_name).iterdir()
    return parsed, run_dir


def states(run_: DAGRun) -> dict[str, str]:
    return {task: instance.state.value for task, instance in run_.status.tasks.items()}


def test_seed_tutorial_compiles_to_the_tutorial_yaml_graph() -> None:
    with pytest.warns(AirflowCompatWarning, match="prometheusrule"):
        (seed,) = dagfiles.load_dag_file(EXAMPLES / "python" / "tutorial.py")
    (yaml_dag,) = loading.load_dag_file(EXAMPLES / "tutorial.yaml")
    assert seed.dag_id == "test"
    assert seed.spec.schedule == yaml_dag.spec.schedule
    assert seed.spec.start_date == yaml_dag.spec.start_date
    assert seed.spec.params == yaml_dag.spec.params
    assert seed.spec.description == yaml_dag.spec.description
    for field in ("owner", "retries", "retry_delay", "depends_on_past"):
        assert getattr(seed.spec.defaults, field) == getattr(yaml_dag.spec.defaults, field), field
    shape = {
        (t.name, tuple(t.depends_on), t.retries, (t.bash or "").split()[:1] == ["date"])
        for t in seed.spec.tasks
    }
    assert shape == {
        (t.name, tuple(t.depends_on), t.retries, (t.bash or "").split()[:1] == ["date"])
        for t in yaml_dag.spec.tasks
    }


def test_seed_tutorial_runs_like_the_tutorial_yaml(tmp_path: Path) -> None:
    with pytest.warns(AirflowCompatWarning):
        seed_run, seed_dir = run(
            EXAMPLES / "python" / "tutorial.py", tmp_path / "runs", "--date", "2020-02-09"
        )
    yaml_run, yaml_dir = run(EXAMPLES / "tutorial.yaml", tmp_path / "runs", "--date", "2020-02-09")
    assert (
        states(seed_run)
        == states(yaml_run)
        == {
            "print_date": "success",
            "sleep": "success",
            "templated": "success",
        }
    )

    def lines(run_dir: Path) -> list[str]:
        text = (run_dir / "templated" / "try-1.log").read_text()
        return [line.strip() for line in text.splitlines() if line.strip()]

    assert lines(seed_dir) == lines(yaml_dir)
    assert lines(seed_dir)[:3] == ["2020-02-09", "2020-02-16", "Parameter I passed in"]


AIRFLOW2 = """
    import json
    from datetime import datetime, timedelta

    from kubeflowlite.airflow import DAG
    from kubeflowlite.airflow.decorators import task
    from kubeflowlite.airflow.models import Variable
    from kubeflowlite.airflow.models.baseoperator import chain
    from kubeflowlite.airflow.operators.bash import BashOperator
    from kubeflowlite.airflow.operators.empty import EmptyOperator
    from kubeflowlite.airflow.operators.python import BranchPythonOperator, PythonOperator, ShortCircuitOperator
    from kubeflowlite.airflow.utils.dates import days_ago
    from kubeflowlite.airflow.utils.edgemodifier import Label
    from kubeflowlite.airflow.utils.trigger_rule import TriggerRule

    CONFIG = Variable.get("config", deserialize_json=True)

    def push(**kwargs):
        task_instance = kwargs["task_instance"]
        task_instance.xcom_push(key="the_key", value=CONFIG["environment"])

    def pull(day, **kwargs):
        value = kwargs["ti"].xcom_pull(task_ids="push", key="the_key")
        print("pulled", value, day, kwargs["templates_dict"]["when"])
        return value

    def pick(**context):
        return "path_a" if context["params"]["go_a"] else "path_b"

    with DAG(
        "airflow_2",
        schedule_interval="@daily",
        start_date=days_ago(2),
        params={"go_a": True},
        default_args={"owner": "data", "retries": 0, "retry_delay": timedelta(seconds=1), "pool": "default"},
        tags=["compat"],
    ) as dag:
        pushed = PythonOperator(task_id="push", python_callable=push, provide_context=True)
        pulled = PythonOperator(
            task_id="pull",
            python_callable=pull,
            op_kwargs={"day": "{{ ds }}"},
            templates_dict={"when": "{{ ds_nodash }}"},
        )
        branch = BranchPythonOperator(task_id="branch", python_callable=pick)
        a = EmptyOperator(task_id="path_a")
        b = BashOperator(task_id="path_b", bash_command="echo b")
        join = EmptyOperator(task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        check = ShortCircuitOperator(task_id="check", python_callable=lambda: False)
        never = BashOperator(task_id="never", bash_command="exit 1")
        chain(pushed, pulled, branch)
        branch >> Label("a") >> a >> join
        branch >> b >> join
        join >> check >> never

        @task
        def total(values):
            return sum(values)

        total([1, 2, 3]) >> join
"""


def test_an_airflow2_dag_runs_with_airflows_task_states(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFL_VAR_config", json.dumps({"environment": "prod"}))
    path = write(tmp_path, AIRFLOW2)
    with pytest.warns(AirflowCompatWarning, match="pool is ignored"):
        airflow_run, run_dir = run(path, tmp_path / "runs", "--date", "2024-05-01")
    assert airflow_run.spec.dag_name == "airflow-2"  # dag ids become Kubernetes names
    assert states(airflow_run) == {
        "push": "success",
        "pull": "success",
        "branch": "success",
        "path_a": "success",
        "path_b": "skipped",
        "join": "success",
        "check": "success",
        "never": "skipped",
        "total": "success",
    }
    values = json.loads((run_dir / "xcom.json").read_text())
    assert values["pull"] == "prod" and values["total"] == 6 and values["branch"] == "path_a"
    assert "pulled prod 2024-05-01 20240501" in (run_dir / "pull" / "try-1.log").read_text()


@pytest.mark.parametrize(
    ("code", "fragment", "message"),
    [
        (
            "BashOperator(task_id='t', bash_command='true', on_failure_callback=print)",
            "on_failure_callback",
            "BashOperator: 'on_failure_callback' is not supported by kubeflowlite",
        ),
        ("BashOperator(task_id='t', bash_command='run.sh ')", "run.sh", "'bash_command ending in .sh'"),
        (
            "BashOperator(task_id='t', bash_command='true', trigger_rule=TriggerRule.DUMMY)",
            "TriggerRule.DUMMY",
            "TriggerRule.DUMMY is not supported by kubeflowlite (supported: ALL_SUCCESS,",
        ),
        (
            "from kubeflowlite.airflow.utils.task_group import TaskGroup",
            "task_group",
            "airflow.utils.task_group is not supported by kubeflowlite",
        ),
        (
            "from kubeflowlite.airflow.operators.python import PythonVirtualenvOperator",
            "PythonVirtualenvOperator",
            "airflow.operators.python.PythonVirtualenvOperator is not supported by kubeflowlite",
        ),
        (
            "from kubeflowlite.airflow.models.baseoperator import BaseOperator\n    class Mine(BaseOperator): pass",
            "class Mine",
            "custom operator Mine: subclassing BaseOperator is not supported by kubeflowlite",
        ),
        (
            "from kubeflowlite.airflow.decorators import task\n    task.virtualenv(lambda: 1)",
            "task.virtualenv",
            "@task.virtualenv is not supported by kubeflowlite",
        ),
        (
            "from kubeflowlite.airflow.decorators import task\n    task(lambda x: x).expand(x=[1, 2])",
            ".expand(",
            "@task <lambda>().expand: dynamic task mapping is not supported by kubeflowlite",
        ),
        (
            "from kubeflowlite.airflow.decorators import task\n    task(lambda: 1, sla=60)()",
            "sla=60",
            "@task: 'sla' is not supported by kubeflowlite (SLAs are not tracked)",
        ),
        (
            "BashOperator.partial(task_id='t').expand(bash_command=['true'])",
            ".partial(",
            "BashOperator.partial: dynamic task mapping is not supported by kubeflowlite",
        ),
        (
            "BashOperator(task_id='t', bash_command='echo {{ ti.xcom_push(key=1, value=2) }}')",
            "xcom_push",
            "BashOperator: 'xcom_push in a template' is not supported by kubeflowlite",
        ),
        (
            "BashOperator(task_id='t', bash_command='true', skip_on_exit_code=[3, 4])",
            "skip_on_exit_code",
            "BashOperator: 'skip_on_exit_code with several codes' is not supported by kubeflowlite",
        ),
    ],
)
def test_unsupported_airflow_features_are_errors_naming_them_and_the_line(
    tmp_path: Path, code: str, fragment: str, message: str
) -> None:
    path = write(
        tmp_path,
        "from kubeflowlite.airflow import DAG\n"
        "from kubeflowlite.airflow.operators.bash import BashOperator\n"
        "from kubeflowlite.airflow.operators.python import ShortCircuitOperator\n"
        "from kubeflowlite.airflow.utils.trigger_rule import TriggerRule\n"
        "with DAG('d'):\n"
        f"    {code}\n",
    )
    with pytest.raises(InvalidDAGError) as caught:
        dagfiles.load_dag_file(path)
    assert str(caught.value).startswith(f"{path}:{line_of(path, fragment)}: ")
    assert message in str(caught.value)


def test_unsupported_dag_arguments_name_the_dag_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from datetime import timedelta
        from kubeflowlite.airflow.models import DAG
        dag = DAG("d", default_args={"sla": timedelta(hours=1)})
        """,
    )
    with pytest.raises(InvalidDAGError) as caught:
        dagfiles.load_dag_file(path)
    assert str(caught.value) == (
        f"{path}:{line_of(path, 'DAG(')}: default_args: 'sla' is not supported by kubeflowlite (SLAs are not tracked)"
    )


def test_task_params_join_the_dag_params_and_a_clash_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from kubeflowlite.airflow import DAG
        from kubeflowlite.airflow.operators.bash import BashOperator
        with DAG("d", params={"a": 1}):
            BashOperator(task_id="t1", bash_command="true", params={"b": 2})
            BashOperator(task_id="t2", bash_command="true", params={"a": 3})
        """,
    )
    with pytest.raises(InvalidDAGError) as caught:
        dagfiles.load_dag_file(path)
    assert f"{path}:{line_of(path, 't2')}: BashOperator: params['a'] = 3 differs from the DAG's 1" in str(
        caught.value
    )


def test_sensor_and_trigger_operators_compile_to_the_spec_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from datetime import timedelta
        from kubeflowlite.airflow.models import DAG
        from kubeflowlite.airflow.operators.dagrun_operator import TriggerDagRunOperator
        from kubeflowlite.airflow.operators.dummy_operator import DummyOperator
        from kubeflowlite.airflow.sensors.external_task_sensor import ExternalTaskSensor

        with DAG("child_dag", schedule_interval="0 3 * * *") as dag:
            wait = ExternalTaskSensor(
                task_id="wait",
                external_dag_id="parent_dag",
                external_task_id="load",
                execution_delta=timedelta(hours=1),
                poke_interval=30,
                timeout=600,
                mode="reschedule",
            )
            kick = TriggerDagRunOperator(
                task_id="kick", trigger_dag_id="report_dag", conf={"day": "{{ ds }}"}, wait_for_completion=True
            )
            wait >> DummyOperator(task_id="noop") >> kick
        """,
    )
    (dag,) = dagfiles.load_dag_file(path)
    assert dag.dag_id == "child-dag"
    assert dag.metadata.annotations == {"kubeflowlite.io/airflow-dag-id": "child_dag"}
    wire = {task["name"]: task for task in dag.to_wire()["spec"]["tasks"]}
    assert wire["wait"]["sensor"] == {
        "dag": "parent-dag",
        "task": "load",
        "offset": "-1h",
        "allowedStates": ["success"],
        "failedStates": ["failed"],
        "pokeInterval": "30s",
        "timeout": "10m",
    }
    assert wire["kick"]["triggerDag"] == {
        "dag": "report-dag",
        "conf": {"day": "{{ ds }}"},
        "waitForCompletion": True,
        "pokeInterval": "10s",
    }
    assert wire["noop"]["type"] == "empty" and wire["kick"]["dependsOn"] == ["noop"]


SHORT_CIRCUIT = """
    from kubeflowlite.airflow import DAG
    from kubeflowlite.airflow.operators.bash import BashOperator
    from kubeflowlite.airflow.operators.python import ShortCircuitOperator
    from kubeflowlite.airflow.utils.trigger_rule import TriggerRule

    with DAG("short_circuit"):
        check = ShortCircuitOperator(task_id="check", python_callable=lambda: False, IGNORE)
        direct = BashOperator(task_id="direct", bash_command="true")
        later = BashOperator(task_id="later", bash_command="true", trigger_rule=TriggerRule.ALL_DONE)
        check >> direct >> later
"""


@pytest.mark.parametrize(
    ("ignore", "later"),
    [
        ("ignore_downstream_trigger_rules=True", "skipped"),
        ("ignore_downstream_trigger_rules=False", "success"),
    ],
)
def test_short_circuit_skips_all_downstream_or_only_the_direct_tasks(
    tmp_path: Path, ignore: str, later: str
) -> None:
    path = write(tmp_path, SHORT_CIRCUIT.replace("IGNORE", ignore))
    short_run, _ = run(path, tmp_path / "runs")
    assert states(short_run) == {"check": "success", "direct": "skipped", "later": later}


def test_dag_arguments_beyond_description_must_be_named(tmp_path: Path) -> None:
    path = write(tmp_path, "from kubeflowlite.airflow import DAG\ndag = DAG('d', 'about', '@daily')\n")
    with pytest.raises(InvalidDAGError, match="pass the arguments after dag_id and description by name"):
        dagfiles.load_dag_file(path)
    path = write(
        tmp_path, "from kubeflowlite.airflow import DAG\ndag = DAG('d', 'about', catchup=True)\n", "ok.py"
    )
    with pytest.raises(InvalidDAGError, match="a DAG needs at least one task"):  # accepted, but empty
        dagfiles.load_dag_file(path)


def test_task_bash_renders_the_returned_script_with_the_task_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFL_VAR_color", "teal")
    path = write(
        tmp_path,
        """
        from datetime import datetime
        from kubeflowlite.airflow.decorators import dag, task
        from kubeflowlite.airflow.operators.python import get_current_context

        @dag(schedule=None, start_date=datetime(2024, 1, 1), params={"who": "world"})
        def bash_templates():
            @task
            def up():
                return get_current_context()["ds_nodash"]

            @task.bash
            def greet(prefix):
                # rendered after the call, as Airflow renders @task.bash's return value
                return (
                    prefix + " {{ params.who }} {{ ds }} {{ macros.ds_add(ds, 1) }} "
                    "{{ ti.xcom_pull(task_ids='up') }} {{ var.value.color }} {{ task.task_id }}"
                )

            @task.bash
            def plain():
                return "echo 'a {literal} brace'"

            up() >> greet("echo hello")
            plain()

        bash_templates()
        """,
    )
    run_, run_dir = run(path, tmp_path / "runs", "--date", "2024-03-01", "-p", "who=you")
    assert states(run_) == {"up": "success", "greet": "success", "plain": "success"}
    values = json.loads((run_dir / "xcom.json").read_text())
    assert values["greet"] == "hello you 2024-03-01 2024-03-02 20240301 teal greet"
    assert values["plain"] == "a {literal} brace"
    (compiled,) = dagfiles.load_dag_file(path)  # Airflow's @dag: its dag_id made a name, the original kept
    assert compiled.dag_id == "bash-templates"
    assert compiled.metadata.annotations["kubeflowlite.io/airflow-dag-id"] == "bash_templates"


def test_task_bash_template_errors_fail_the_task_naming_the_decorator(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from kubeflowlite.airflow.decorators import dag, task

        @dag(schedule=None)
        def broken_template():
            @task.bash
            def bad():
                return "echo {{ no_such_name.x }}"

            bad()

        broken_template()
        """,
    )
    run_, run_dir = run(path, tmp_path / "runs", "--date", "2024-03-01")
    assert states(run_) == {"bad": "failed"}
    assert "@task.bash bad()" in (run_dir / "bad" / "try-1.log").read_text()


def test_get_current_context_outside_a_running_task_is_an_error() -> None:
    from kubeflowlite.airflow.operators.python import get_current_context

    with pytest.raises(RuntimeError, match="only available while a task runs"):
        get_current_context()


def test_an_xcomarg_in_a_string_is_airflows_pull_template(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        from kubeflowlite.airflow import DAG, XComArg
        from kubeflowlite.airflow.operators.bash import BashOperator
        with DAG("d"):
            push = BashOperator(task_id="push", bash_command="echo pushed")
            pull = BashOperator(task_id="pull", bash_command=f"echo got {XComArg(push)}")
            push >> pull
        """,
    )
    run_, run_dir = run(path, tmp_path / "runs", "--date", "2024-03-01")
    assert states(run_) == {"push": "success", "pull": "success"}
    assert json.loads((run_dir / "xcom.json").read_text())["pull"] == "got pushed"


def test_bash_operator_skips_on_exit_code_99_as_airflows_does(tmp_path: Path) -> None:
    """Airflow's BashOperator ends a try skipped on exit code 99 (skip_on_exit_code's default), or on
    the one code given; None turns it off. Downstream trigger rules then see a skipped task."""
    path = write(
        tmp_path,
        """
        from datetime import datetime
        from kubeflowlite.airflow import DAG
        from kubeflowlite.airflow.operators.bash import BashOperator
        from kubeflowlite.airflow.operators.empty import EmptyOperator

        with DAG("skip99", start_date=datetime(2024, 1, 1), schedule=None) as dag:
            skipper = BashOperator(task_id="skipper", bash_command="echo bye; exit 99")
            custom = BashOperator(task_id="custom", bash_command="exit 3", skip_on_exit_code=3)
            off = BashOperator(task_id="off", bash_command="exit 99", skip_on_exit_code=None, retries=0)
            after = EmptyOperator(task_id="after")
            skipper >> after
        """,
    )
    (compiled,) = dagfiles.load_dag_file(path)
    wire = {t.name: t.skip_exit_code for t in compiled.spec.tasks}
    assert wire == {"skipper": 99, "custom": 3, "off": None, "after": None}
    ran, _ = run(path, tmp_path / "runs", "--date", "2024-01-01")
    assert states(ran) == {"skipper": "skipped", "custom": "skipped", "off": "failed", "after": "skipped"}
