"""The Pod and ConfigMap of a Python function task on a cluster, built purely (no API server).

Boundary: a Python DAG file compiled by kubeflowlite.dagfiles, then k8s.launch.pod_for_try
(the operator's path from "start try N" to a manifest) and k8s.pysource's builders.
The cluster test (tests/cluster/test_operator_python.py) checks the same objects
are created on a real apiserver.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeflowlite import dagfiles
from kubeflowlite.api.dag import DAG, PythonSource
from kubeflowlite.core.engine import AttemptPhase
from kubeflowlite.core.schedule import RunInterval
from kubeflowlite.core.taskenv import ENV_PYTASK_CONTEXT, ENV_PYTASK_SOURCE, ENV_XCOM_FILE
from kubeflowlite.k8s import launch, names, pods, pysource, taskscript
from kubeflowlite.k8s.observe import attempt_from_pod

DAY = datetime(2024, 3, 1, tzinfo=UTC)
SOURCE = """
from kubeflowlite import DAG, Bash, task

@task
def extract():
    return {"n": 2}

@task
def double(data, when):
    return data["n"] * 2

with DAG("etl"):
    double(extract(), "{{ ds }}") >> Bash("after", "echo done", pod={"automountServiceAccountToken": True})
"""


def compiled(tmp_path: Path) -> DAG:
    path = tmp_path / "etl_dag.py"
    path.write_text(textwrap.dedent(SOURCE))
    (dag,) = dagfiles.load_dag_file(path)
    return dag


def facts_for(dag: DAG) -> launch.RunFacts:
    return launch.RunFacts(
        namespace="ns",
        run_name="etl-manual-20240301t000000",
        run_uid="uid-1",
        dag_name="etl",
        spec=dag.spec,
        interval=RunInterval(DAY, DAY, DAY),
        run_type="manual",
    )


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    (main,) = [c for c in pod["spec"]["containers"] if c["name"] == pods.MAIN_CONTAINER]
    return {item["name"]: item["value"] for item in main["env"]}


def test_a_python_task_pod_runs_the_bootstrap_on_the_mounted_source(tmp_path: Path) -> None:
    dag = compiled(tmp_path)
    facts = facts_for(dag)
    pod = launch.pod_for_try(facts, "double", 2, xcoms={"extract": '{"n":2}'}, now=DAY)
    assert isinstance(pod, dict)
    spec = pod["spec"]
    (main,) = spec["containers"]
    assert main["command"] == ["python3", "-m", "kubeflowlite.pytask"]
    assert main["image"] == pysource.DEFAULT_PYTHON_IMAGE
    assert main["image"].startswith("kubeflowlite/kubeflowlite:")
    assert spec["automountServiceAccountToken"] is False
    (volume,) = spec["volumes"]
    assert volume["name"] == pysource.SOURCE_VOLUME
    assert volume["configMap"]["name"] == "etl-manual-20240301t000000-pysrc"
    items = {item["path"]: item["key"] for item in volume["configMap"]["items"]}
    assert items["source/etl_dag.py"] == "etl_dag.py"
    assert items["lib/kubeflowlite/pytask.py"] == "lib.pytask.py"
    assert items["lib/kubeflowlite/airflow/operators/bash.py"] == "lib.airflow.operators.bash.py"
    assert main["volumeMounts"] == [
        {"name": pysource.SOURCE_VOLUME, "mountPath": "/kfl/python", "readOnly": True}
    ]
    env = env_of(pod)
    assert env[ENV_PYTASK_SOURCE] == "/kfl/python/source/etl_dag.py"
    assert env["PYTHONPATH"] == "/kfl/python/lib"
    assert env[ENV_XCOM_FILE] == pods.XCOM_FILE
    context = json.loads(env[ENV_PYTASK_CONTEXT])
    assert (context["dag_id"], context["task_id"], context["try_number"]) == ("etl", "double", 2)
    assert context["xcoms"] == {"extract": {"n": 2}}
    assert context["args"] == [{"__kfl_xcom__": {"task": "extract", "key": "return_value"}}, "2024-03-01"]
    assert context["ds"] == "2024-03-01"
    assert pod["metadata"]["labels"][names.LABEL_TASK] == "double"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_other_tasks_keep_their_pods_and_an_explicit_token_choice_wins(tmp_path: Path) -> None:
    dag = compiled(tmp_path)
    facts = facts_for(dag)
    bash = launch.pod_for_try(facts, "after", 1, xcoms={}, now=DAY)
    assert isinstance(bash, dict)
    assert not pysource.is_python_pod(bash)
    assert bash["spec"]["containers"][0]["command"] == taskscript.bash_command("echo done")
    assert ENV_PYTASK_CONTEXT not in env_of(bash)
    overridden = pysource.python_pod(
        bash,
        run_name=facts.run_name,
        source=dag.spec.python_source or PythonSource(filename="x", code=""),
        facts={},
    )
    assert overridden["spec"]["automountServiceAccountToken"] is True


def test_the_source_configmap_is_owned_and_labelled_like_the_runs_other_objects(tmp_path: Path) -> None:
    dag = compiled(tmp_path)
    assert dag.spec.python_source is not None
    manifest = pysource.configmap_manifest(
        run_name="etl-manual-20240301t000000",
        run_uid="uid-1",
        namespace="ns",
        dag_name="etl",
        source=dag.spec.python_source,
    )
    assert manifest["metadata"]["name"] == "etl-manual-20240301t000000-pysrc"
    assert manifest["metadata"]["labels"] == names.run_labels(
        dag="etl", run_name="etl-manual-20240301t000000", component="python-source"
    )
    assert manifest["metadata"]["ownerReferences"] == [
        pods.owner_reference(run_name="etl-manual-20240301t000000", run_uid="uid-1")
    ]
    assert manifest["data"]["etl_dag.py"] == dag.spec.python_source.code
    package = Path(pysource.__file__).parents[1]
    assert manifest["data"]["lib.dsl.tasks.py"] == (package / "dsl" / "tasks.py").read_text()
    assert len(json.dumps(manifest)) < 256 * 1024  # far below a ConfigMap's 1 MiB
    assert manifest["immutable"] is True


def test_a_long_run_name_still_gives_a_valid_configmap_name() -> None:
    name = pysource.configmap_name("x" * 80)
    assert len(name) <= 63 and name.endswith("-pysrc") and names.is_dns_label(name)
    assert name != pysource.configmap_name("x" * 81)


def test_the_skip_exit_code_of_a_python_pod_is_observed_as_a_skipped_try(tmp_path: Path) -> None:
    dag = compiled(tmp_path)
    built = launch.pod_for_try(facts_for(dag), "double", 1, xcoms={}, now=DAY)
    assert isinstance(built, dict)
    assert built["metadata"]["annotations"]["kubeflowlite.io/skip-exit-code"] == "99"

    def finished(manifest: dict[str, Any], exit_code: int) -> dict[str, Any]:
        state = {
            "terminated": {"exitCode": exit_code, "reason": "Error", "finishedAt": "2024-03-01T00:00:09Z"}
        }
        return {
            **manifest,
            "metadata": {**manifest["metadata"], "creationTimestamp": "2024-03-01T00:00:00Z"},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "main", "state": state}]},
        }

    assert attempt_from_pod(finished(built, 99), now=DAY).phase is AttemptPhase.skipped
    assert attempt_from_pod(finished(built, 1), now=DAY).phase is AttemptPhase.failed
    bash = launch.pod_for_try(facts_for(dag), "after", 1, xcoms={}, now=DAY)
    assert isinstance(bash, dict)
    assert attempt_from_pod(finished(bash, 99), now=DAY).phase is AttemptPhase.failed


def materialize(configmap: dict[str, Any], volume: dict[str, Any], root: Path) -> None:
    """Write the ConfigMap's items as the kubelet mounts them."""
    for item in volume["configMap"]["items"]:
        target = root / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(configmap["data"][item["key"]])


def mounted_pod(
    dag: DAG, task: str, tmp_path: Path, *, xcoms: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Try 1 of `task`: its Pod, its run's source ConfigMap (materialized under tmp_path/mount as the
    kubelet mounts it), and the task's environment with its paths there (XCom to tmp_path/xcom.json)."""
    assert dag.spec.python_source is not None
    facts = facts_for(dag)
    pod = launch.pod_for_try(facts, task, 1, xcoms=xcoms or {}, now=DAY)
    assert isinstance(pod, dict)
    configmap = pysource.configmap_manifest(
        run_name=facts.run_name,
        run_uid="uid-1",
        namespace="ns",
        dag_name=dag.dag_id,
        source=dag.spec.python_source,
    )
    mount = tmp_path / "mount"
    materialize(configmap, pod["spec"]["volumes"][0], mount)
    env = {
        name: value.replace("/kfl/python", str(mount))
        for name, value in env_of(pod).items()
        if name.startswith(("KFL_", "PYTHONPATH"))
    }
    env[ENV_XCOM_FILE] = str(tmp_path / "xcom.json")
    return pod, configmap, env


def run_bootstrap(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The Pod's command, `python -S -m kubeflowlite.pytask` (no site-packages), with only `env`."""
    return subprocess.run(
        [sys.executable, "-S", "-m", "kubeflowlite.pytask"],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_shipped_runtime_runs_a_task_with_a_bare_python(tmp_path: Path) -> None:
    """The image contract: python3 alone. `-S` hides site-packages (this venv's kubeflowlite)."""
    source = (
        textwrap.dedent(SOURCE)
        .replace(
            "from kubeflowlite import DAG, Bash, task",
            "from kubeflowlite.airflow.decorators import task\nfrom kubeflowlite import DAG, Bash, TriggerRule",
        )
        .replace(
            'Bash("after", "echo done",', 'Bash("after", "echo done", trigger_rule=TriggerRule.all_done,'
        )
    )
    path = tmp_path / "etl_dag.py"
    path.write_text(source)
    (dag,) = dagfiles.load_dag_file(path)
    assert dag.spec.python_source is not None
    _, _, env = mounted_pod(dag, "double", tmp_path, xcoms={"extract": '{"n":21}'})
    workdir = tmp_path / "work"
    workdir.mkdir()
    bare = subprocess.run(
        [sys.executable, "-S", "-c", "import kubeflowlite"], cwd=workdir, capture_output=True
    )
    assert bare.returncode == 1  # without the shipped lib/ there is no kubeflowlite to import
    completed = run_bootstrap(env, workdir)
    assert completed.returncode == 0, completed.stderr
    assert json.loads((tmp_path / "xcom.json").read_text()) == 42


def test_modules_beside_the_dag_file_ship_in_the_configmap_and_import_in_the_pod(tmp_path: Path) -> None:
    """helpers.py and a package beside the DAG file travel in the ConfigMap, mounted beside the source."""
    (tmp_path / "helpers.py").write_text("import lib\n\ndef double(x):\n    return 2 * x + lib.OFFSET\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "__init__.py").write_text("from lib.inner import OFFSET\n")
    (tmp_path / "lib" / "inner.py").write_text("OFFSET = 100\n")
    path = tmp_path / "helper_dag.py"
    path.write_text(
        "from kubeflowlite import DAG, task\nfrom helpers import double\n\n"
        "@task\ndef use():\n    return double(21)\n\nwith DAG('helped'):\n    use()\n"
    )
    (dag,) = dagfiles.load_dag_file(path)
    assert dag.spec.python_source is not None
    assert sorted(dag.spec.python_source.modules or {}) == ["helpers.py", "lib/__init__.py", "lib/inner.py"]
    pod, configmap, env = mounted_pod(dag, "use", tmp_path)
    items = {item["path"]: item["key"] for item in pod["spec"]["volumes"][0]["configMap"]["items"]}
    for relative in ("helpers.py", "lib/__init__.py", "lib/inner.py"):
        assert configmap["data"][items[f"source/{relative}"]] == (tmp_path / relative).read_text()
    workdir = tmp_path / "work"
    workdir.mkdir()
    completed = run_bootstrap(env, workdir)
    assert completed.returncode == 0, completed.stderr
    assert json.loads((tmp_path / "xcom.json").read_text()) == 142


def test_a_pod_reaches_an_installed_kubeflowlite_behind_the_shipped_runtime(tmp_path: Path) -> None:
    """In the project image (kubeflowlite installed) @task.bash templates and macros render in the Pod.

    The installed package is this repository's, placed after the shipped lib/ on the path;
    without it, the shipped runtime alone says what is missing instead of rendering.
    """
    path = tmp_path / "templated_dag.py"
    path.write_text(
        "from kubeflowlite import DAG, task\n\n"
        "@task.bash\ndef say():\n    return 'echo {{ ds }} {{ macros.ds_add(ds, 1) }}'\n\n"
        "with DAG('etl'):\n    say()\n"
    )
    (dag,) = dagfiles.load_dag_file(path)
    assert dag.spec.python_source is not None
    _, _, env = mounted_pod(dag, "say", tmp_path)
    repo = Path(__file__).resolve().parents[2]
    site = Path(
        subprocess.check_output(
            [
                sys.executable,
                "-c",
                "import jinja2, os; print(os.path.dirname(os.path.dirname(jinja2.__file__)))",
            ],
            text=True,
        ).strip()
    )

    def bootstrap(python_path: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-S", "-m", "kubeflowlite.pytask"],
            env={"PATH": "/usr/bin:/bin", **env, "PYTHONPATH": python_path},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    alone = bootstrap(env["PYTHONPATH"])
    assert alone.returncode == 1
    assert "rendering it needs kubeflowlite and jinja2 installed in the task's image" in alone.stderr
    installed = bootstrap(f"{env['PYTHONPATH']}:{repo}:{site}")
    assert installed.returncode == 0, installed.stderr
    assert json.loads((tmp_path / "xcom.json").read_text()) == "2024-03-01 2024-03-02"
