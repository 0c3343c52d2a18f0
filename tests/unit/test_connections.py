"""Variables and Connections: their text forms, what templates may read, and where local runs find them.

Boundary: pure parsing and template rendering; local runs through the real CLI
group with task subprocesses, reading AIRFLOW_CONN_* / KFL_VAR_* and the files
named by KFL_CONNECTIONS_FILE / KFL_VARIABLES_FILE; the operator's pure parts
(objects -> config, Pod env by secretKeyRef) without a cluster.
"""

from __future__ import annotations

import base64
import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from kubeflowlite import dagfiles
from kubeflowlite.api.dag import DAG, DAGSpec, ObjectMeta, Task
from kubeflowlite.api.dagrun import DAGRun
from kubeflowlite.cli.main import main
from kubeflowlite.core import connections, templating
from kubeflowlite.core.schedule import RunInterval
from kubeflowlite.k8s import launch, runtime_config, taskscript
from kubeflowlite.local import runtime_config as local_config

URI = "postgres://etl%40corp:s3cr%2Ft@db.example.com:5433/warehouse?sslmode=require"


def test_the_uri_form_parses_as_airflow_does() -> None:
    conn = connections.parse_connection("my_db", URI)
    assert (conn.conn_type, conn.host, conn.login, conn.password, conn.port, conn.schema) == (
        "postgres",
        "db.example.com",
        "etl@corp",
        "s3cr/t",
        5433,
        "warehouse",
    )
    assert conn.extra_dejson == {"sslmode": "require"}
    assert "s3cr" not in repr(conn)


def test_the_json_form_parses_with_extra_as_object_or_text() -> None:
    text = json.dumps({"conn_type": "http", "host": "api", "port": "8080", "extra": '{"timeout": 3}'})
    conn = connections.parse_connection("api", text)
    assert (conn.conn_type, conn.host, conn.port, conn.extra_dejson) == ("http", "api", 8080, {"timeout": 3})


@pytest.mark.parametrize("text", ["not a uri", "{broken", "[1]", "postgres://h:notaport/x"])
def test_bad_connection_texts_are_errors_that_do_not_echo_the_value(text: str) -> None:
    with pytest.raises(connections.ConnectionFormatError) as caught:
        connections.parse_connection("bad", text)
    assert "connection 'bad'" in str(caught.value)
    assert text not in str(caught.value)


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12),
    st.text(min_size=1, max_size=12),
    st.integers(min_value=1, max_value=65535),
)
def test_json_form_round_trips_any_login_and_port(host: str, login: str, port: int) -> None:
    conn = connections.parse_connection(
        "x", json.dumps({"conn_type": "t", "host": host, "login": login, "password": "p", "port": port})
    )
    assert (conn.host, conn.login, conn.port, conn.password) == (host, login, port, "p")


def render(text: str, conns: dict[str, str], variables: dict[str, str] | None = None) -> str:
    task = Task(name="t", bash=text)
    day = datetime(2024, 1, 1, tzinfo=UTC)
    context = templating.template_context(
        dag=DAG(metadata=ObjectMeta(name="d"), spec=DAGSpec(tasks=[task])),
        task=task,
        interval=RunInterval(day, day, day),
        run_id="manual__x",
        conf={},
        try_number=1,
        variables=variables or {},
        connections=conns,
    )
    return templating.render_string(text, context, field="tasks[t].bash")


def test_templates_read_connection_fields_but_never_the_password() -> None:
    conns = {"my_db": URI}
    assert render("{{ conn.my_db.host }}:{{ conn.my_db.port }}/{{ conn.my_db.schema }}", conns) == (
        "db.example.com:5433/warehouse"
    )
    assert render("{{ conn.my_db.login }} {{ conn.my_db.extra_dejson.sslmode }}", conns) == "etl@corp require"
    for secret in ("password", "get_uri"):
        with pytest.raises(templating.TemplateError) as caught:
            render(f"{{{{ conn.my_db.{secret} }}}}", conns)
        assert "not available in templates" in str(caught.value) and "AIRFLOW_CONN_MY_DB" in str(caught.value)
        assert "s3cr" not in str(caught.value)
    with pytest.raises(templating.TemplateError, match="connection 'other' is not defined"):
        render("{{ conn.other.host }}", conns)


def test_local_variables_and_connections_come_from_env_over_files(tmp_path: Path) -> None:
    variables = tmp_path / "variables.json"
    variables.write_text(json.dumps({"env": "file", "config": {"project": "p1"}, "only_file": "yes"}))
    conns = tmp_path / "connections.json"
    conns.write_text(
        json.dumps({"my_db": {"conn_type": "mysql", "host": "file-host"}, "api": "http://api:80"})
    )
    environ = {
        local_config.VARIABLES_FILE_ENV: str(variables),
        local_config.CONNECTIONS_FILE_ENV: str(conns),
        "KFL_VAR_env": "environment",
        "AIRFLOW_CONN_MY_DB": "postgres://env-host/db",
    }
    assert local_config.local_variables(environ) == {
        "env": "environment",
        "config": '{"project": "p1"}',
        "only_file": "yes",
    }
    found = local_config.local_connections(environ)
    assert found["my_db"] == "postgres://env-host/db"
    assert connections.parse_connection("api", found["api"]).port == 80


def test_a_local_run_renders_var_and_conn_and_gives_the_task_its_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = tmp_path / "variables.json"
    variables.write_text(json.dumps({"config": {"environment": "prod"}}))
    monkeypatch.setenv(local_config.VARIABLES_FILE_ENV, str(variables))
    monkeypatch.setenv("AIRFLOW_CONN_MY_DB", URI)
    source = tmp_path / "conn_dag.py"
    source.write_text(
        textwrap.dedent(
            """
            from kubeflowlite import DAG, Bash, Python
            from kubeflowlite.airflow.models import Variable

            ENVIRONMENT = Variable.get("config", deserialize_json=True)["environment"]

            def use(**context):
                import os
                from urllib.parse import urlsplit
                return urlsplit(os.environ["AIRFLOW_CONN_MY_DB"]).password == "s3cr%2Ft" and ENVIRONMENT

            with DAG("conns"):
                Bash("show", "echo {{ var.json.config.environment }} {{ conn.my_db.host }}") >> Python(
                    "use", use, connections=["my_db"]
                )
            """
        )
    )
    result = CliRunner().invoke(
        main, ["run", str(source), "--runs-dir", str(tmp_path / "runs"), "-o", "json"], catch_exceptions=False
    )
    run = DAGRun.model_validate(json.loads(result.stdout))
    assert {t: i.state.value for t, i in run.status.tasks.items()} == {"show": "success", "use": "success"}
    (run_dir,) = (tmp_path / "runs" / "conns").iterdir()
    assert json.loads((run_dir / "xcom.json").read_text()) == {"show": "prod db.example.com", "use": "prod"}


# -- the operator's pure parts ---------------------------------------------------------------


def secret(name: str, conn_id: str, text: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "annotations": {runtime_config.CONN_ID_ANNOTATION: conn_id}},
        "data": {runtime_config.CONNECTION_KEY: base64.b64encode(text.encode()).decode()},
    }


def test_objects_become_the_namespace_config() -> None:
    config = runtime_config.from_objects(
        [
            {"metadata": {"name": "b"}, "data": {"x": "2"}},
            {"metadata": {"name": "a"}, "data": {"x": "1", "y": "y"}},
        ],
        [secret("kfl-conn-my-db", "my_db", URI), {"metadata": {"name": "junk"}}],
    )
    assert config.variables == {"x": "2", "y": "y"}
    assert config.connections == {"my_db": URI}
    assert config.secrets == {"my_db": "kfl-conn-my-db"}


def test_a_task_pod_gets_connections_by_secret_reference_only(tmp_path: Path) -> None:
    source = tmp_path / "d.py"
    source.write_text(
        "from kubeflowlite import DAG, Bash\n"
        "with DAG('d'):\n"
        "    Bash('t', 'echo {{ conn.my_db.host }}', connections=['my_db'])\n"
        "    Bash('u', 'true', connections=['missing'])\n"
    )
    (dag,) = dagfiles.load_dag_file(source)
    day = datetime(2024, 1, 1, tzinfo=UTC)
    facts = launch.RunFacts(
        namespace="ns",
        run_name="d-1",
        run_uid="uid",
        dag_name="d",
        spec=dag.spec,
        interval=RunInterval(day, day, day),
        run_type="manual",
        connections={"my_db": URI},
        connection_secrets={"my_db": "kfl-conn-my-db"},
    )
    pod = launch.pod_for_try(facts, "t", 1, xcoms={}, now=day)
    assert isinstance(pod, dict)
    assert "s3cr" not in json.dumps(pod)
    (main_container,) = pod["spec"]["containers"]
    assert main_container["command"] == taskscript.bash_command("echo db.example.com")
    assert {
        "name": "AIRFLOW_CONN_MY_DB",
        "valueFrom": {"secretKeyRef": {"name": "kfl-conn-my-db", "key": "connection"}},
    } in main_container["env"]
    failed = launch.pod_for_try(facts, "u", 1, xcoms={}, now=day)
    assert not isinstance(failed, dict)
    assert (
        failed.message
        == "tasks[u].connections: connection 'missing' is not defined in this namespace (known: my_db)"
    )


def test_without_secret_access_connections_refer_to_the_cli_secret_names() -> None:
    entries = runtime_config.connection_env(["my_db"], {}, secrets_listed=False)
    assert entries == [
        {
            "name": "AIRFLOW_CONN_MY_DB",
            "valueFrom": {
                "secretKeyRef": {"name": runtime_config.connection_secret_name("my_db"), "key": "connection"}
            },
        }
    ]
    with pytest.raises(KeyError):
        runtime_config.connection_env(["my_db"], {}, secrets_listed=True)
