"""The cluster commands a user types, against the hermetic cluster and a running operator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from operator_harness import (
    Api,
    OperatorProcess,
    dag_manifest,
    kwok,
    task_states,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]


def cli(cluster: Any, namespace: str, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "kubeflowlite", *args, f"--kubeconfig={cluster.kubeconfig}", "-n", namespace],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_apply_validates_locally_and_prints_every_problem(
    cluster: Any, namespace: str, crds: None, tmp_path: Path
) -> None:
    bad = dag_manifest(
        "bad", [{"name": "a", "bash": "true", "dependsOn": ["ghost"]}, {"name": "a", "bash": "x"}]
    )
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(dag_manifest("good", [{"name": "a", "bash": "true"}])))

    refused = cli(cluster, namespace, "apply", str(tmp_path), code=2)
    assert "ghost" in refused.stderr and "duplicate" in refused.stderr.lower()
    assert "nothing applied" in refused.stderr
    assert cluster.kubectl("get", "dags", "-n", namespace, "-o", "name").stdout == ""

    (tmp_path / "bad.yaml").unlink()
    applied = cli(cluster, namespace, "apply", str(tmp_path))
    assert "good applied" in applied.stdout
    cli(cluster, namespace, "apply", str(tmp_path / "good.yaml"))  # idempotent
    assert (
        cluster.kubectl("get", "dags", "-n", namespace, "-o", "name").stdout.strip()
        == "dag.kubeflowlite.io/good"
    )


def test_trigger_get_logs_runs_and_dags(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess, tmp_path: Path
) -> None:
    tasks = [
        {"name": "push", "bash": "echo", "pod": kwok(message='{"rows": 42}')},
        {"name": "push_by_output", "bash": "echo"},
        {
            "name": "pull",
            "bash": "echo {{ ti.xcom_pull(task_ids='push')['rows'] }}",
            "dependsOn": ["push", "push_by_output"],
        },
    ]
    (tmp_path / "xcom.yaml").write_text(yaml.safe_dump(dag_manifest("xcom", tasks)))
    cli(cluster, namespace, "apply", str(tmp_path / "xcom.yaml"))
    created = cli(
        cluster, namespace, "trigger", "xcom", "--date", "2024-03-01", "--conf", '{"k": 1}', "-p", "day=mon"
    )
    run = created.stdout.split("/")[1].split()[0]
    assert run == "xcom-manual-20240301t000000"
    cli(cluster, namespace, "trigger", "xcom", "--date", "2024-03-01", code=1)  # the same run twice: refused

    finished = api.wait_run(run)
    assert finished["status"]["state"] == "success"
    assert finished["spec"]["conf"] == {"k": 1, "day": "mon"}
    owner = finished["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("DAG", "xcom", api.dag("xcom")["metadata"]["uid"])
    tree = cli(cluster, namespace, "get", run).stdout
    assert "xcom-manual-20240301t000000" in tree and "pull" in tree and "try 1" in tree and "success" in tree
    assert "runType: manual" in cli(cluster, namespace, "get", run, "-o", "yaml").stdout
    runs = cli(cluster, namespace, "runs", "xcom").stdout
    assert run in runs and "success" in runs and "3/3" in runs
    dags = cli(cluster, namespace, "dags").stdout
    assert "xcom" in dags and "True" in dags

    logs = cli(
        cluster, namespace, "logs", run, "pull", "--try", "1", code=1
    )  # KWOK Pods have no log endpoint
    assert "pull" in logs.stderr or "error" in logs.stderr.lower()
    cli(cluster, namespace, "logs", run, "nothing", code=1)


def test_pause_and_unpause(cluster: Any, namespace: str, api: Api, operator: OperatorProcess) -> None:
    manifest = dag_manifest(
        "toggled",
        [{"name": "t", "bash": "true"}],
        schedule="@daily",
        startDate="2020-01-01T00:00:00Z",
        endDate="2020-01-03T00:00:00Z",
        catchup=True,
        paused=True,
    )
    api.apply(manifest)
    assert "paused" in cli(cluster, namespace, "pause", "toggled").stdout
    assert api.dag("toggled")["spec"]["paused"] is True
    cli(cluster, namespace, "unpause", "toggled")
    wait_for(lambda: len(api.runs()) == 3, what="three scheduled runs after unpausing")
    cli(cluster, namespace, "pause", "nosuchdag", code=1)


def test_backfill_creates_runs_and_reruns_failed_tasks(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess
) -> None:
    flaky = {
        "name": "t",
        "bash": "true",
        "pod": kwok(outcome="{{ 'failure' if ti.try_number == 1 and ds == '2021-01-02' else 'success' }}"),
    }
    api.apply(
        dag_manifest("filled", [flaky], schedule="@daily", startDate="2021-01-01T00:00:00Z", paused=True)
    )

    out = cli(cluster, namespace, "backfill", "filled", "-s", "2021-01-01", "-e", "2021-01-03").stdout
    assert out.count("created") == 3
    for day in (1, 2, 3):
        api.wait_run(f"filled-backfill-2021010{day}t000000")
    assert [task_states(api.run(f"filled-backfill-2021010{d}t000000"))["t"] for d in (1, 2, 3)] == [
        "success",
        "failed",
        "success",
    ]

    rerun = cli(
        cluster,
        namespace,
        "backfill",
        "filled",
        "-s",
        "2021-01-01",
        "-e",
        "2021-01-03",
        "--rerun-failed-tasks",
    ).stdout
    assert "cleared t" in rerun and "kept" in rerun
    wait_for(
        lambda: task_states(api.run("filled-backfill-20210102t000000"))["t"] == "success", what="the re-run"
    )
    assert api.run("filled-backfill-20210102t000000")["status"]["tasks"]["t"]["tryNumber"] == 2

    reset = cli(
        cluster, namespace, "backfill", "filled", "-s", "2021-01-03", "-e", "2021-01-03", "--reset-dagruns"
    ).stdout
    assert "created" in reset
    api.wait_run("filled-backfill-20210103t000000")
    assert len(api.runs()) == 3
