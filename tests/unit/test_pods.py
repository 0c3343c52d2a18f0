"""The Pod of a task try: what the operator submits, built without a cluster."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from kubeflowlite.api.dag import DAGSpec, Task, effective_task
from kubeflowlite.core.schedule import RunInterval
from kubeflowlite.core.templating import RenderedTask
from kubeflowlite.k8s import launch, names, pods, taskscript

RUN = "tutorial-manual-20200209t145500"


def rendered_as(
    *,
    bash: str | None = None,
    command: list[str] | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> RenderedTask:
    return RenderedTask(bash=bash, command=command, args=args, env=env or {})


def build(task: Task, rendered: RenderedTask | None = None, try_number: int = 1) -> dict[str, Any]:
    return pods.build_pod(
        run_name=RUN,
        run_uid="0b7c4d5e-uid",
        namespace="team-a",
        dag_name="tutorial",
        task=task,
        rendered=rendered or rendered_as(bash=task.bash, command=task.command, args=task.args),
        try_number=try_number,
        logical_date="2020-02-09T14:55:00Z",
    )


def main_container(pod: Mapping[str, Any]) -> dict[str, Any]:
    [main] = [c for c in pod["spec"]["containers"] if c["name"] == "main"]
    return dict(main)


def env_of(pod: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in main_container(pod)["env"]}


def test_bash_task_pod() -> None:
    pod = build(Task(name="print_date", bash="date"), rendered_as(bash="date", env={"GREETING": "hi"}), 2)
    assert pod["apiVersion"] == "v1"
    assert pod["kind"] == "Pod"
    meta = pod["metadata"]
    assert meta["name"] == names.pod_name(RUN, "print_date", 2)
    assert meta["namespace"] == "team-a"
    assert meta["labels"][names.LABEL_DAG] == "tutorial"
    assert meta["labels"][names.LABEL_RUN] == RUN
    assert meta["labels"][names.LABEL_TASK] == "print_date"
    assert meta["labels"][names.LABEL_TRY] == "2"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "kubeflowlite-operator"
    assert meta["annotations"][names.ANNOTATION_TASK_ID] == "print_date"
    assert "kubeflowlite.io/skip-exit-code" not in meta["annotations"]  # a failing exit is a failure
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "kubeflowlite.io/v1alpha1",
            "kind": "DAGRun",
            "name": RUN,
            "uid": "0b7c4d5e-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert "activeDeadlineSeconds" not in spec
    main = main_container(pod)
    assert main["image"] == "busybox:1.36"
    assert main["command"] == taskscript.bash_command("date")
    assert "args" not in main
    assert main["terminationMessagePath"] == pods.XCOM_FILE
    assert main["terminationMessagePolicy"] == "File"
    assert env_of(pod) == {
        "GREETING": "hi",
        "KFL_DAG_ID": "tutorial",
        "KFL_TASK_ID": "print_date",
        "KFL_RUN_ID": RUN,
        "KFL_TRY_NUMBER": "2",
        "KFL_LOGICAL_DATE": "2020-02-09T14:55:00Z",
        "KFL_XCOM_FILE": pods.XCOM_FILE,
    }


def test_container_task_uses_rendered_command_args_and_image() -> None:
    task = Task(name="train", image="python:3.11-slim", command=["python", "-c"], args=["{{ ds }}"])
    pod = build(task, rendered_as(command=["python", "-c"], args=["2020-02-09"]))
    main = main_container(pod)
    assert main["image"] == "python:3.11-slim"
    assert main["command"] == ["python", "-c"]
    assert main["args"] == ["2020-02-09"]


def test_args_only_keeps_the_image_entrypoint() -> None:
    main = main_container(build(Task(name="t", args=["--help"]), rendered_as(args=["--help"])))
    assert "command" not in main
    assert main["args"] == ["--help"]


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [("90", 90), ("1m30s", 90), ("1h", 3600), ("250ms", 1), ("1.5s", 2), ("1d", 86400)],
)
def test_execution_timeout_becomes_active_deadline(timeout: str, seconds: int) -> None:
    pod = build(Task(name="t", bash="sleep 1", execution_timeout=timeout))
    assert pod["spec"]["activeDeadlineSeconds"] == seconds


def test_dag_defaults_reach_the_pod() -> None:
    spec = DAGSpec.model_validate(
        {
            "defaults": {
                "image": "alpine:3",
                "executionTimeout": "5m",
                "pod": {"nodeSelector": {"pool": "batch"}},
            },
            "tasks": [{"name": "t", "bash": "true"}],
        }
    )
    pod = build(effective_task(spec, spec.tasks[0]))
    assert main_container(pod)["image"] == "alpine:3"
    assert pod["spec"]["activeDeadlineSeconds"] == 300
    assert pod["spec"]["nodeSelector"] == {"pool": "batch"}


def test_pod_overrides_merge_into_spec_metadata_and_main_container() -> None:
    overrides = {
        "metadata": {"labels": {"team": "data"}, "annotations": {"sidecar.istio.io/inject": "false"}},
        "serviceAccountName": "etl",
        "nodeSelector": {"pool": "batch"},
        "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "etl-data"}}],
        "container": {
            "resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": "500m"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "imagePullPolicy": "Always",
            "envFrom": [{"secretRef": {"name": "etl-secrets"}}],
            "env": [{"name": "EXTRA", "value": "1"}],
        },
    }
    pod = build(Task(name="t", bash="true", pod=overrides), rendered_as(bash="true", env={"GREETING": "hi"}))
    meta, spec, main = pod["metadata"], pod["spec"], main_container(pod)
    assert meta["labels"]["team"] == "data"
    assert meta["labels"][names.LABEL_TASK] == "t"
    assert meta["annotations"]["sidecar.istio.io/inject"] == "false"
    assert spec["serviceAccountName"] == "etl"
    assert spec["nodeSelector"] == {"pool": "batch"}
    assert spec["tolerations"] == overrides["tolerations"]
    assert spec["volumes"] == overrides["volumes"]
    assert "container" not in spec and "metadata" not in spec
    assert main["resources"] == {"limits": {"memory": "1Gi"}, "requests": {"cpu": "500m"}}
    assert main["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert main["imagePullPolicy"] == "Always"
    assert main["envFrom"] == [{"secretRef": {"name": "etl-secrets"}}]
    assert main["command"] == taskscript.bash_command("true")
    assert env_of(pod)["GREETING"] == "hi"
    assert env_of(pod)["EXTRA"] == "1"


def test_overrides_cannot_break_what_the_operator_relies_on() -> None:
    overrides = {
        "metadata": {"labels": {names.LABEL_RUN: "other", names.LABEL_TRY: "9"}},
        "restartPolicy": "Always",
        "container": {
            "name": "renamed",
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "env": [{"name": "KFL_TRY_NUMBER", "value": "7"}],
        },
    }
    pod = build(Task(name="t", bash="true", pod=overrides), try_number=2)
    main = main_container(pod)
    assert pod["metadata"]["labels"][names.LABEL_RUN] == RUN
    assert pod["metadata"]["labels"][names.LABEL_TRY] == "2"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert main["terminationMessagePath"] == pods.XCOM_FILE
    assert main["terminationMessagePolicy"] == "File"
    assert [e["value"] for e in main["env"] if e["name"] == "KFL_TRY_NUMBER"] == ["2"]


def test_containers_override_merges_main_by_name_and_appends_sidecars() -> None:
    overrides = {
        "containers": [
            {"name": "main", "resources": {"limits": {"cpu": "2"}}},
            {"name": "proxy", "image": "envoy:1"},
        ]
    }
    pod = build(Task(name="t", bash="true", pod=overrides))
    containers = pod["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main", "proxy"]
    assert containers[0]["command"] == taskscript.bash_command("true")
    assert containers[0]["resources"] == {"limits": {"cpu": "2"}}


def test_containers_override_without_names_still_keeps_main() -> None:
    pod = build(Task(name="t", bash="true", pod={"containers": [{"image": "nameless"}]}))
    assert pod["spec"]["containers"][0]["name"] == "main"
    assert pod["spec"]["containers"][0]["command"] == taskscript.bash_command("true")


def test_explicit_active_deadline_is_kept_without_execution_timeout() -> None:
    pod = build(Task(name="t", bash="true", pod={"activeDeadlineSeconds": 30}))
    assert pod["spec"]["activeDeadlineSeconds"] == 30
    pod = build(Task(name="t", bash="true", execution_timeout="10s", pod={"activeDeadlineSeconds": 30}))
    assert pod["spec"]["activeDeadlineSeconds"] == 10


def test_build_pod_does_not_mutate_the_task() -> None:
    overrides = {"container": {"env": [{"name": "A", "value": "1"}]}, "volumes": [{"name": "v"}]}
    task = Task(name="t", bash="true", pod=overrides)
    before = task.model_dump()
    first = build(task)
    assert task.model_dump() == before
    assert build(task) == first


@pytest.mark.parametrize(
    ("base", "override", "expected"),
    [
        ({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}, {"a": {"b": 1, "c": 3}}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
        (
            {"v": [{"name": "x", "k": 1}, {"name": "y"}]},
            {"v": [{"name": "x", "j": 2}, {"name": "z"}]},
            {"v": [{"name": "x", "k": 1, "j": 2}, {"name": "y"}, {"name": "z"}]},
        ),
        ({"a": {"b": 1}}, {"a": "scalar"}, {"a": "scalar"}),
        ({"a": 1}, {"b": {"c": 2}}, {"a": 1, "b": {"c": 2}}),
    ],
    ids=["maps-merge", "lists-replace", "named-lists-merge-by-name", "scalar-replaces-map", "new-keys"],
)
def test_deep_merge_rules(base: dict[str, Any], override: dict[str, Any], expected: dict[str, Any]) -> None:
    assert pods.deep_merge(base, override) == expected


def test_invalid_duration_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        pods.timeout_seconds("soon")


@pytest.mark.parametrize(
    ("plain", "templated"),
    [
        ({"bash": "echo hi"}, {"bash": "echo {{ 'hi' }}"}),
        (
            {"command": ["run", "x"], "args": ["--a", "b"]},
            {"command": ["run", "{{ 'x' }}"], "args": ["--a", "b"]},
        ),
        (
            {"bash": "true", "env": [{"name": "A", "value": "1"}]},
            {"bash": "true", "env": [{"name": "A", "value": "{{ 1 }}"}]},
        ),
        (
            {"bash": "true", "pod": {"metadata": {"annotations": {"k": "v"}}}},
            {"bash": "true", "pod": {"metadata": {"annotations": {"k": "{{ 'v' }}"}}}},
        ),
    ],
)
def test_a_task_with_nothing_to_render_gets_the_pod_rendering_would_give(
    plain: dict[str, Any], templated: dict[str, Any]
) -> None:
    """launch.pod_for_try skips Airflow's context for such tasks: the Pod must not change for it."""
    day = datetime(2020, 1, 1, tzinfo=UTC)

    def pod_of(task: dict[str, Any]) -> Any:
        spec = DAGSpec.model_validate({"tasks": [{"name": "t", **task}]})
        facts = launch.RunFacts(
            namespace="ns",
            run_name="etl-manual-20200101t000000",
            run_uid="uid-1",
            dag_name="etl",
            spec=spec,
            interval=RunInterval(day, day, day),
            run_type="manual",
        )
        return launch.pod_for_try(facts, "t", 1, xcoms={}, now=day)

    assert not launch._templated(DAGSpec.model_validate({"tasks": [{"name": "t", **plain}]}).tasks[0])
    assert pod_of(plain) == pod_of(templated)


def test_a_skip_exit_code_is_on_the_pod_for_the_operator_to_read() -> None:
    pod = build(Task(name="maybe", bash="exit 99", skip_exit_code=99), rendered_as(bash="exit 99"))
    assert pod["metadata"]["annotations"]["kubeflowlite.io/skip-exit-code"] == "99"
