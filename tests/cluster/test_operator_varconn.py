"""Variables and Connections on a real apiserver: the CLI writes them, the operator renders and references them.

Boundary: the `kubeflowlite` command in a subprocess (as a user types it) and the
operator process of the harness, against the hermetic cluster. Secrets must never
show: not in the Pod spec, the DAGRun, the namespace's Events or the operator log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from operator_harness import Api, OperatorProcess, dag_manifest, task_states

from kubeflowlite.k8s import runtime_config, taskscript

SECRET = "s3cret-pw"


def cli(cluster: Any, namespace: str, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "kubeflowlite", *args, f"--kubeconfig={cluster.kubeconfig}", "-n", namespace],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ),
    )
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_variables_and_connections_from_the_cli_reach_tasks_without_leaking_the_secret(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess, tmp_path: Path
) -> None:
    cli(cluster, namespace, "variables", "set", "greeting", "hello")
    variables_file = tmp_path / "variables.json"
    variables_file.write_text(json.dumps({"config": {"env": "prod"}, "team": "data"}))
    assert (
        "2 variables imported" in cli(cluster, namespace, "variables", "import", str(variables_file)).stdout
    )
    assert cli(cluster, namespace, "variables", "get", "config").stdout.strip() == '{"env": "prod"}'
    assert cli(cluster, namespace, "variables", "list").stdout.splitlines() == [
        'config\t{"env": "prod"}',
        "greeting\thello",
        "team\tdata",
    ]
    cli(cluster, namespace, "variables", "get", "nope", code=1)

    uri = f"postgres://etl:{SECRET}@db.example.com:5432/warehouse"
    cli(cluster, namespace, "connections", "add", "my_db", "--uri", uri)
    shown = cli(cluster, namespace, "connections", "get", "my_db").stdout
    assert json.loads(shown)["host"] == "db.example.com" and json.loads(shown)["password"] == "***"
    listed = cli(cluster, namespace, "connections", "list").stdout
    assert listed.strip() == "my_db\tpostgres\tdb.example.com"
    assert SECRET not in shown + listed
    bad = cli(cluster, namespace, "connections", "add", "bad", "--uri", "nonsense", code=2)
    assert "connection 'bad'" in bad.stderr

    command = (
        "echo {{ var.value.greeting }} {{ var.json.config.env }} {{ conn.my_db.host }}:{{ conn.my_db.port }}"
    )
    api.apply(dag_manifest("uses-config", [{"name": "show", "bash": command, "connections": ["my_db"]}]))
    run = api.create_run("uses-config", "2024-01-01T00:00:00Z")
    finished = api.wait_run(run)
    assert task_states(finished) == {"show": "success"}

    (pod,) = api.pods(run)
    main = pod.spec.containers[0]
    assert main.command == taskscript.bash_command("echo hello prod db.example.com:5432")
    (conn_env,) = [e for e in main.env if e.name == "AIRFLOW_CONN_MY_DB"]
    assert conn_env.value is None
    assert (conn_env.value_from.secret_key_ref.name, conn_env.value_from.secret_key_ref.key) == (
        runtime_config.connection_secret_name("my_db"),
        "connection",
    )
    assert runtime_config.connection_secret_name("my_db").startswith("kfl-conn-my-db")
    pod_json = cluster.kubectl("get", "pod", pod.metadata.name, "-n", namespace, "-o", "json").stdout
    run_json = cluster.kubectl("get", "dagrun", run, "-n", namespace, "-o", "json").stdout
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    for text in (pod_json, run_json, events, operator.log()):
        assert SECRET not in text

    # A task refusing to render the password names the way to get it instead.
    api.apply(dag_manifest("leaky", [{"name": "leak", "bash": "echo {{ conn.my_db.password }}"}]))
    leaky = api.wait_run(api.create_run("leaky", "2024-01-01T00:00:00Z"))
    message = leaky["status"]["tasks"]["leak"]["message"]
    assert "not available in templates" in message and SECRET not in json.dumps(leaky)
