"""The cluster commands' local side: CRD output, and input checked before any cluster is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kubeflowlite.cli.main import main
from kubeflowlite.k8s import crdgen

NO_CLUSTER = {"KUBECONFIG": "/nonexistent/kubeconfig"}


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=NO_CLUSTER)
    return result.exit_code, result.stdout, result.stderr


def test_crds_prints_the_generated_definitions() -> None:
    code, out, _ = invoke("crds")
    assert code == 0
    documents = [doc for doc in yaml.safe_load_all(out) if doc]
    assert sorted(doc["metadata"]["name"] for doc in documents) == [
        "dagruns.kubeflowlite.io",
        "dags.kubeflowlite.io",
    ]


def test_crds_output_writes_the_committed_files(tmp_path: Path) -> None:
    code, out, _ = invoke("crds", "--output", str(tmp_path))
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(crdgen.render_crds())
    assert all(str(tmp_path) in line for line in out.splitlines())


def test_apply_reports_every_problem_before_touching_a_cluster(tmp_path: Path) -> None:
    dag = {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": "bad"},
        "spec": {"tasks": [{"name": "a", "bash": "x", "dependsOn": ["ghost"]}, {"name": "b", "retries": -1}]},
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(dag))
    code, _, err = invoke("apply", str(tmp_path / "bad.yaml"))
    assert code == 2
    assert "ghost" in err and "retries" in err and "nothing applied" in err
    assert "cluster configuration" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("trigger", "etl", "--conf", "{nope"), "not valid JSON"),
        (("trigger", "etl", "--conf", "[1]"), "JSON object"),
        (("trigger", "etl", "--date", "yesterday"), "Invalid value for '--date': invalid date 'yesterday'"),
        (("trigger", "etl", "-p", "novalue"), "-p expects key=value"),
        (("backfill", "etl", "-s", "soon", "-e", "2024-01-01"), "Invalid value for '-s' / '--start-date'"),
        (("backfill", "etl", "-s", "2024-01-02", "-e", "2024-01-01"), "before --start-date"),
        (
            ("operator", "--liveness", "https://0.0.0.0:8080/healthz"),
            "'--liveness': expected http://HOST:PORT/PATH",
        ),
        (
            ("operator", "--liveness", "http://0.0.0.0:80x/healthz"),
            "'--liveness': expected http://HOST:PORT/PATH",
        ),
        (
            ("operator", "--metrics-port", "9090", "--liveness", "http://0.0.0.0:9090/healthz"),
            "'--liveness': port 9090 is also --metrics-port",
        ),
        (("operator", "--liveness", "http://0.0.0.0/healthz", "--metrics-port", "80"), "port 80 is also"),
    ],
)
def test_bad_arguments_exit_2_before_touching_a_cluster(args: tuple[str, ...], message: str) -> None:
    code, _, err = invoke(*args)
    assert code == 2 and message in err


def test_a_missing_cluster_is_a_clear_error() -> None:
    code, _, err = invoke("dags")
    assert code == 2 and "cannot load the cluster configuration" in err
