"""On the KWOK plane only Pods meant to end do: a Deployment's Pod keeps running (no restart storm).

Task Pods (label kubeflowlite.io/task) and Pods a test steers (kwok.kubeflowlite.io/*
annotations) run and end as hack/kwok/stages.yaml says; any other Pod, such as the
operator's own Deployment installed by `helm install`, stays Running like a server does.
"""

from __future__ import annotations

import time

from kubernetes import client
from operator_harness import wait_for


def test_a_deployment_pod_keeps_running_while_a_task_pod_completes(
    core_v1: client.CoreV1Api, namespace: str
) -> None:
    apps = client.AppsV1Api(core_v1.api_client)
    labels = {"app": "server"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="server"),
            spec=client.V1DeploymentSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="server:1")]),
                ),
            ),
        ),
    )
    core_v1.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="task", labels={"kubeflowlite.io/task": "extract"}),
            spec=client.V1PodSpec(
                restart_policy="Never", containers=[client.V1Container(name="main", image="busybox:1.36")]
            ),
        ),
    )

    def server_pods() -> list[client.V1Pod]:
        return list(core_v1.list_namespaced_pod(namespace, label_selector="app=server").items)

    wait_for(lambda: [p for p in server_pods() if p.status.phase == "Running"], what="the server Pod to run")
    task = wait_for(
        lambda: (p := core_v1.read_namespaced_pod("task", namespace)).status.phase == "Succeeded" and p,
        what="the task Pod to succeed",
    )
    assert task.status.container_statuses[0].state.terminated.exit_code == 0
    first = server_pods()
    time.sleep(3)  # 30 times the default simulated run time of a Pod
    later = server_pods()
    assert [p.metadata.uid for p in later] == [p.metadata.uid for p in first]  # never replaced
    assert [p.status.phase for p in later] == ["Running"]
    assert later[0].status.container_statuses[0].restart_count == 0
