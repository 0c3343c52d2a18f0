"""Python function tasks on a real apiserver: the run's source ConfigMap and the task Pods the operator creates.

KWOK simulates the Pods (nothing executes), so this checks the objects: the
ConfigMap `<run>-pysrc` owned and labelled like the run's other objects, and each
Python task's Pod running the bootstrap on the mounted source with its rendered
context (upstream XComs included) and no service account token. The function
itself runs for real in tests/unit/test_pytask.py (subprocesses) and, on a real
node, in the end-to-end tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

from operator_harness import Api, OperatorProcess, task_states

from kubeflowlite import dagfiles
from kubeflowlite.core import loading

SOURCE = """
from kubeflowlite import DAG, task

# KWOK reports this annotation as the Pod's termination message: the XCom a real Pod would write.
@task(pod={"metadata": {"annotations": {"kwok.kubeflowlite.io/message": '{"n": 2}'}}})
def extract():
    return {"n": 2}

@task
def double(data, when):
    return data["n"] * 2

with DAG("pyetl"):
    double(extract(), "{{ ds }}")
"""


def test_python_tasks_get_the_source_configmap_and_the_bootstrap_pod(
    api: Api, operator: OperatorProcess, tmp_path: Path
) -> None:
    path = tmp_path / "pyetl.py"
    path.write_text(textwrap.dedent(SOURCE))
    (dag,) = dagfiles.load_dag_file(path)
    api.apply(dag.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"}))
    run = api.create_run("pyetl", "2024-03-01T00:00:00Z")

    finished = api.wait_run(run)
    assert task_states(finished) == {"extract": "success", "double": "success"}

    source = api.configmap(f"{run}-pysrc")
    assert source.data["pyetl.py"] == path.read_text()
    assert "lib.pytask.py" in source.data  # the bootstrap ships with the source
    assert source.immutable is True
    owner = source.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("DAGRun", run, finished["metadata"]["uid"])
    assert source.metadata.labels["kubeflowlite.io/run"] == run
    assert source.metadata.labels["kubeflowlite.io/dag"] == "pyetl"

    pods = {p.metadata.labels["kubeflowlite.io/task"]: p for p in api.pods(run)}
    double = pods["double"]
    assert double.spec.automount_service_account_token is False
    (main,) = double.spec.containers
    assert main.command == ["python3", "-m", "kubeflowlite.pytask"]
    assert [
        (m.name, m.mount_path, m.read_only) for m in main.volume_mounts if m.name == "kfl-python-source"
    ] == [("kfl-python-source", "/kfl/python", True)]
    (volume,) = [v for v in double.spec.volumes if v.name == "kfl-python-source"]
    assert volume.config_map.name == f"{run}-pysrc"
    env = {item.name: item.value for item in main.env}
    assert env["KFL_PYTASK_SOURCE"] == "/kfl/python/source/pyetl.py"
    assert env["PYTHONPATH"] == "/kfl/python/lib"
    context = json.loads(env["KFL_PYTASK_CONTEXT"])
    assert context["xcoms"] == {"extract": {"n": 2}}
    assert context["args"][1] == "2024-03-01"
    assert api.configmap(f"{run}-xcom").data["extract"] == '{"n":2}'


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_seed_tutorial_in_python_runs_on_the_cluster_like_the_yaml_one(
    api: Api, operator: OperatorProcess
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the seed's email address: warned about in the unit tests
        (seed,) = dagfiles.load_dag_file(EXAMPLES / "python" / "tutorial.py")
    (yaml_dag,) = loading.load_dag_file(EXAMPLES / "tutorial.yaml")
    # The sleep task keeps a 5 s command; KWOK simulates the Pods, so only the states are compared.
    for dag in (seed, yaml_dag):
        api.apply(dag.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"}))
    seed_run = api.wait_run(api.create_run(seed.dag_id, "2020-02-09T00:00:00Z"))
    yaml_run = api.wait_run(api.create_run(yaml_dag.dag_id, "2020-02-09T00:00:00Z"))
    assert (
        task_states(seed_run)
        == task_states(yaml_run)
        == {
            "print_date": "success",
            "sleep": "success",
            "templated": "success",
        }
    )
    templated = {
        p.metadata.labels["kubeflowlite.io/task"]: p for p in api.pods(seed_run["metadata"]["name"])
    }["templated"]
    script = templated.spec.containers[0].command[-1]  # k8s.taskscript: the task's script comes last
    assert "2020-02-16" in script and "Parameter I passed in" in script


SKIPPING = """
from kubeflowlite import DAG, Bash, Python

def check():
    from kubeflowlite.airflow.exceptions import AirflowSkipException
    raise AirflowSkipException("no data")

# KWOK ends this Pod as the bootstrap would after AirflowSkipException: exit code 99.
SKIP = {"metadata": {"annotations": {"kwok.kubeflowlite.io/outcome": "failure", "kwok.kubeflowlite.io/exit-code": "99"}}}

with DAG("pyskip"):
    Python("check", check, pod=SKIP) >> Bash("after", "true")
"""


def test_a_python_pod_exiting_with_the_skip_code_skips_its_task(
    api: Api, operator: OperatorProcess, tmp_path: Path
) -> None:
    path = tmp_path / "pyskip.py"
    path.write_text(textwrap.dedent(SKIPPING))
    (dag,) = dagfiles.load_dag_file(path)
    api.apply(dag.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"}))
    finished = api.wait_run(api.create_run("pyskip", "2024-03-01T00:00:00Z"))
    assert finished["status"]["state"] == "success"
    assert task_states(finished) == {"check": "skipped", "after": "skipped"}
    assert finished["status"]["tasks"]["check"]["message"] == "skipped by the task"


def test_apply_takes_a_folder_of_python_dag_files(cluster: Any, namespace: str, crds: None) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubeflowlite",
            "apply",
            str(EXAMPLES / "python"),
            f"--kubeconfig={cluster.kubeconfig}",
            "-n",
            namespace,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    applied = sorted(line.split()[0] for line in result.stdout.splitlines())
    assert applied == [
        "dag.kubeflowlite.io/python-branching",
        "dag.kubeflowlite.io/taskflow-etl",
        "dag.kubeflowlite.io/test",
    ]
    stored = json.loads(cluster.kubectl("get", "dag", "taskflow-etl", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["pythonSource"]["code"] == (EXAMPLES / "python" / "taskflow_etl.py").read_text()
    assert [task["python"]["callable"] for task in stored["spec"]["tasks"]] == [
        "extract",
        "transform",
        "load",
    ]
