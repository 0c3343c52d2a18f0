"""The trust model: a DAG's author runs Pods in the DAG's namespace, and that namespace's policy holds.

Pod Security Admission still applies to task Pods: in a namespace that enforces the
`restricted` level, a task that asks for a privileged container is refused by the
apiserver and fails with that reason, while a task whose Pod meets the policy runs
(for real, as a non-root user) and the run goes on as its trigger rules say.
"""

from __future__ import annotations

from typing import Any

from operator_harness import Api, OperatorProcess, dag_manifest

RESTRICTED_CONTAINER = {
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
}


def test_pod_security_restricted_namespace(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess
) -> None:
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    tasks = [
        {
            "name": "privileged",
            "bash": "echo should never run",
            "retries": 0,
            "pod": {"container": {"securityContext": {"privileged": True}}},
        },
        {
            "name": "compliant",
            "bash": "id -u",
            "pod": {"container": RESTRICTED_CONTAINER},
        },
        {
            "name": "cleanup",
            "dependsOn": ["privileged", "compliant"],
            "triggerRule": "all_done",
            "bash": "echo uid={{ ti.xcom_pull(task_ids='compliant') }}",
            "pod": {"container": RESTRICTED_CONTAINER},
        },
    ]
    api.apply(dag_manifest("policed", tasks))
    run = api.create_run("policed", "2020-02-09T00:00:00Z")
    finished = api.wait_run(run, timeout=180)
    status = finished["status"]["tasks"]

    assert status["privileged"]["state"] == "failed"
    message = status["privileged"]["message"]
    assert 'violates PodSecurity "restricted' in message and "privileged" in message, message
    assert (status["compliant"]["state"], status["cleanup"]["state"]) == ("success", "success")
    assert api.configmap(f"{run}-xcom").data["compliant"] == '"1000"'
    # Nothing else broke: the operator still runs and serves the next run.
    assert operator.process is not None and operator.process.poll() is None
    again = api.create_run("policed", "2020-02-10T00:00:00Z")
    assert api.wait_run(again, timeout=180)["status"]["tasks"]["compliant"]["state"] == "success"
