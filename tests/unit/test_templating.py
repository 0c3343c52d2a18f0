"""core.templating: Airflow's template context, strict undefined, the sandbox, the seed's templated command."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeflowlite.api.dag import DAG, Task, effective_task
from kubeflowlite.core import templating
from kubeflowlite.core.loading import load_dag_file
from kubeflowlite.core.schedule import RunInterval, Schedule
from kubeflowlite.core.templating import (
    RenderedTask,
    TemplateError,
    render_mapping,
    render_string,
    render_task,
    run_id_for,
    template_context,
    variables_from_env,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
D = datetime(2020, 2, 9, tzinfo=UTC)


def make_dag(**spec: Any) -> DAG:
    spec.setdefault("tasks", [{"name": "t", "bash": "true", "owner": "alice"}])
    return DAG.model_validate({"metadata": {"name": "demo"}, "spec": spec})


def context(
    dag: DAG | None = None,
    *,
    interval: RunInterval | None = None,
    conf: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    dag = dag or make_dag(description="A demo", tags=["x", "y"], params={"p": "default", "q": 1})
    return template_context(
        dag=dag,
        task=effective_task(dag.spec, dag.spec.tasks[0]),
        interval=interval or RunInterval(D, D, datetime(2020, 2, 10, tzinfo=UTC)),
        run_id=run_id_for("scheduled", D),
        conf=conf or {},
        try_number=kwargs.pop("try_number", 1),
        **kwargs,
    )


def r(text: str, ctx: dict[str, Any] | None = None) -> str:
    return render_string(text, ctx if ctx is not None else context())


def test_dates() -> None:
    assert r("{{ ds }} {{ ds_nodash }}") == "2020-02-09 20200209"
    assert r("{{ ts }}") == "2020-02-09T00:00:00+00:00"
    assert r("{{ ts_nodash }}") == "20200209T000000"
    assert r("{{ logical_date.year }}-{{ logical_date.strftime('%m') }}") == "2020-02"
    assert r("{{ data_interval_start.isoformat() }}") == "2020-02-09T00:00:00+00:00"
    assert r("{{ data_interval_end.isoformat() }}") == "2020-02-10T00:00:00+00:00"


def test_prev_and_next_ds() -> None:
    assert r("{{ next_ds }}") == "2020-02-10"  # a scheduled interval: next run is at its end
    assert r("{{ prev_ds }}") == "None"  # the DAG has no schedule to look back on
    daily = make_dag(schedule="@daily")
    assert (
        r("{{ prev_ds }} {{ next_ds }} {{ prev_ds_nodash }}", context(daily))
        == "2020-02-08 2020-02-10 20200208"
    )
    explicit = context(
        prev_logical_date=datetime(2020, 2, 8, tzinfo=UTC),
        next_logical_date=datetime(2020, 2, 11, tzinfo=UTC),
    )
    assert r("{{ prev_ds }} {{ next_ds }}", explicit) == "2020-02-08 2020-02-11"
    manual = context(interval=RunInterval(D, D, D))
    assert r("{{ next_ds }}", manual) == "None"


def test_run_id() -> None:
    assert run_id_for("scheduled", D) == "scheduled__2020-02-09T00:00:00+00:00"
    assert run_id_for("manual", datetime(2020, 2, 9, 1, 2, 3)) == "manual__2020-02-09T01:02:03+00:00"
    assert r("{{ run_id }}") == "scheduled__2020-02-09T00:00:00+00:00"


def test_dag_task_and_dag_run() -> None:
    assert r("{{ dag.dag_id }}|{{ dag.description }}|{{ dag.tags | join(',') }}") == "demo|A demo|x,y"
    assert r("{{ task.task_id }} {{ task.owner }}") == "t alice"
    ctx = context(conf={"p": "from conf"})
    assert r("{{ dag_run.conf.p }} {{ dag_run.run_id }} {{ dag_run.logical_date.day }}", ctx) == (
        "from conf scheduled__2020-02-09T00:00:00+00:00 9"
    )


def test_params_are_overridden_by_conf() -> None:
    assert r("{{ params.p }} {{ params.q }}") == "default 1"
    assert r("{{ params.p }} {{ params.q }} {{ params.new }}", context(conf={"p": "c", "new": 3})) == "c 1 3"


def test_variables() -> None:
    variables = variables_from_env(
        {"KFL_VAR_my_var": "hello", "KFL_VAR_cfg": '{"a": [1, 2]}', "KFL_VAR_": "x", "OTHER": "y"}
    )
    assert variables == {"my_var": "hello", "cfg": '{"a": [1, 2]}'}
    ctx = context(variables=variables)
    assert r("{{ var.value.my_var }} {{ var.json.cfg.a[1] }}", ctx) == "hello 2"
    assert r("{{ var.value.get('missing', 'fallback') }}", ctx) == "fallback"
    with pytest.raises(TemplateError, match=r"variable 'nope' is not set .*KFL_VAR_nope"):
        render_string("{{ var.value.nope }}", ctx, field="tasks[t].bash")


def test_macros() -> None:
    assert r("{{ macros.ds_add(ds, 7) }} {{ macros.ds_add(ds, -10) }}") == "2020-02-16 2020-01-30"
    assert r("{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y') }}") == "09/02/2020"
    assert r("{{ (logical_date + macros.timedelta(hours=3)).hour }}") == "3"
    assert r("{{ macros.datetime(2021, 1, 2).strftime('%Y') }}") == "2021"


def test_ti() -> None:
    calls: list[dict[str, Any]] = []

    def pull(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return {"rows": 42}

    ctx = context(xcom_pull=pull, try_number=3)
    assert r("{{ ti.xcom_pull(task_ids='extract')['rows'] }}", ctx) == "42"
    assert calls == [{"task_ids": "extract", "key": "return_value"}]
    r("{{ ti.xcom_pull(task_ids=['a', 'b'], key='k') }}", ctx)
    assert calls[-1] == {"task_ids": ["a", "b"], "key": "k"}
    assert r("{{ ti.try_number }} {{ ti.task_id }}", ctx) == "3 t"
    assert r("{{ ti.xcom_pull(task_ids='extract') }}") == "None"  # no puller: None, as for a missing XCom


def test_a_typo_is_an_error_naming_the_field() -> None:
    with pytest.raises(TemplateError) as caught:
        render_string("echo {{ params.my_paramm }}", context(), field="tasks[templated].bash")
    assert str(caught.value).startswith("tasks[templated].bash: 'dict object' has no attribute 'my_paramm'")
    with pytest.raises(TemplateError, match="'dss' is undefined"):
        r("{{ dss }}")


def test_runtime_errors_carry_their_line() -> None:
    with pytest.raises(TemplateError) as caught:
        render_string("echo ok\necho {{ nope }}\n", context(), field="f")
    assert caught.value.line == 2 and "(line 2)" in str(caught.value)


def test_syntax_error_names_field_and_line() -> None:
    with pytest.raises(TemplateError) as caught:
        render_string("a\n{% for x in y %}\n", context(), field="tasks[t].bash")
    assert str(caught.value).startswith("tasks[t].bash: ")
    assert caught.value.line is not None


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ macros.ds_add.__globals__ }}",
        "{{ ti._pull }}",
        "{% set l = [1] %}{{ l.append(2) }}",
        "{{ params.update({'x': 1}) }}",
    ],
)
def test_sandbox(template: str) -> None:
    with pytest.raises(TemplateError):
        r(template)


def test_render_task_renders_every_command_field() -> None:
    dag = make_dag(
        params={"who": "world"},
        defaults={"env": [{"name": "WHEN", "value": "{{ ds_nodash }}"}]},
        tasks=[{"name": "c", "command": ["echo", "{{ params.who }}"], "args": ["{{ ds }}"]}],
    )
    task = effective_task(dag.spec, dag.spec.tasks[0])
    ctx = template_context(
        dag=dag, task=task, interval=RunInterval(D, D, D), run_id="manual__x", conf={}, try_number=1
    )
    assert render_task(task, ctx) == RenderedTask(
        bash=None, command=["echo", "world"], args=["2020-02-09"], env={"WHEN": "20200209"}
    )
    bad = task.model_copy(update={"args": ["ok", "{{ oops }}"]})
    with pytest.raises(TemplateError, match=r"^tasks\[c\]\.args\[1\]: 'oops' is undefined"):
        render_task(bad, ctx)


def test_render_mapping_for_annotations() -> None:
    assert render_mapping({"a": "{{ ds }}", "b": "plain"}, context(), field="pod.metadata.annotations") == {
        "a": "2020-02-09",
        "b": "plain",
    }
    with pytest.raises(TemplateError, match=r"pod\.metadata\.annotations\[b\]"):
        render_mapping({"b": "{{ x }}"}, context(), field="pod.metadata.annotations")


def test_the_seed_tutorial_command() -> None:
    (dag,) = load_dag_file(EXAMPLES / "tutorial.yaml")
    task = effective_task(dag.spec, next(t for t in dag.spec.tasks if t.name == "templated"))
    ctx = template_context(
        dag=dag,
        task=task,
        interval=Schedule.from_spec(dag.spec).interval_for(D),
        run_id=run_id_for("manual", D),
        conf={},
        try_number=1,
    )
    rendered = render_task(task, ctx)
    assert rendered.bash is not None
    lines = [line.strip() for line in rendered.bash.splitlines() if line.strip()]
    assert lines == ['echo "2020-02-09"', 'echo "2020-02-16"', 'echo "Parameter I passed in"'] * 5
    assert isinstance(task, Task)


@given(st.text(alphabet=st.characters(blacklist_characters="{}%#\r"), max_size=200))
def test_text_without_jinja_renders_to_itself(text: str) -> None:
    """(Jinja normalises line endings to \\n, so \\r is left out.)"""
    assert render_string(text, {}) == text


def test_check_syntax() -> None:
    assert templating.check_syntax("{{ ds }}") is None
    problem = templating.check_syntax("ok\n{{ ds ")
    assert problem is not None and problem.line == 2


def test_task_instance_is_airflows_longer_name_for_ti() -> None:
    ctx = context(xcom_pull=lambda **kwargs: kwargs["task_ids"], try_number=2)
    assert (
        r("{{ task_instance.xcom_pull(task_ids='extract') }} {{ task_instance.try_number }}", ctx)
        == "extract 2"
    )
    assert ctx["task_instance"] is ctx["ti"]
