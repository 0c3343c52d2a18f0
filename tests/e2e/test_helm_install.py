"""`helm install` for real: the operator runs as Pods on the real node, from an image made here.

The image is the one hack/controlplane/images.py makes as the Dockerfile would
(`hack/cluster load-image`), loaded into the node's containerd; the chart is
installed with its defaults but for the watched namespace and two replicas. The
operator Pods reach the apiserver as in any cluster, through the `kubernetes`
Service (kube-proxy runs on the real node).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from operator_harness import Api, dag_manifest, task_states, wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "kubeflowlite"
RELEASE = "kfl"
TAKEOVER_GOAL = 15.0


def helm(cluster: Any, *args: str) -> str:
    result = subprocess.run(
        ["helm", f"--kubeconfig={cluster.kubeconfig}", *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"helm {' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def operator_pods(api: Api) -> list[Any]:
    selector = "app.kubernetes.io/name=kubeflowlite,app.kubernetes.io/instance=" + RELEASE
    return [p for p in api.core.list_namespaced_pod(api.namespace, label_selector=selector).items
            if p.metadata.deletion_timestamp is None]  # fmt: skip


def ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def leader(cluster: Any, namespace: str) -> str:
    """The Pod name in the coordination Lease's holder identity ("" when none holds it)."""
    leases = json.loads(cluster.kubectl("get", "leases", "-n", namespace, "-o", "json").stdout)["items"]
    holders = [(lease["spec"].get("holderIdentity") or "") for lease in leases]
    return next((h.split("_", 1)[0] for h in holders if h), "")


def test_helm_install_two_replicas_upgrade_uninstall(cluster: Any, namespace: str, api: Api) -> None:
    image = cluster.plane.load_image("kubeflowlite")
    assert image.endswith(":" + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])
    values = ["watch.allNamespaces=false", f"watch.namespaces={{{namespace}}}", "replicaCount=2"]
    helm(cluster, "install", RELEASE, str(CHART), "-n", namespace, "--wait", "--timeout=180s",
         *[arg for value in values for arg in ("--set", value)])  # fmt: skip

    pods = operator_pods(api)
    assert len(pods) == 2 and all(ready(p) for p in pods), "helm --wait returned before both Pods were Ready"
    assert {p.spec.service_account_name for p in pods} == {f"{RELEASE}-kubeflowlite"}
    first_leader = wait_for(lambda: leader(cluster, namespace), timeout=30, what="a leader")
    assert first_leader in {p.metadata.name for p in pods}

    api.apply(yaml.safe_load((REPO / "examples" / "tutorial.yaml").read_text()))
    run = api.create_run("tutorial", "2020-02-09T00:00:00Z")
    assert api.wait_run(run, timeout=240)["status"]["state"] == "success", api.dump(run)
    for pod in pods:
        log = api.core.read_namespaced_pod_log(pod.metadata.name, namespace)
        assert "403" not in log and "Forbidden" not in log, log[-3000:]

    # The leader's Pod is deleted mid-run: the standby takes over, nothing runs twice.
    steps = [
        {"name": f"s{i}", "bash": "sleep 2", **({"dependsOn": [f"s{i - 1}"]} if i else {})} for i in range(6)
    ]
    api.apply(dag_manifest("relay", steps))
    relay = api.create_run("relay", "2020-02-09T00:00:00Z")
    wait_for(lambda: len(api.pods(relay)) >= 2, timeout=120, what="the relay under way")
    api.core.delete_namespaced_pod(first_leader, namespace)
    deleted_at = time.monotonic()
    standby = next(p.metadata.name for p in pods if p.metadata.name != first_leader)
    wait_for(lambda: leader(cluster, namespace) == standby, timeout=60, what="the standby to lead")
    takeover = time.monotonic() - deleted_at
    print(f"\nleader Pod deleted -> standby holds the Lease: {takeover:.1f} s")
    assert takeover < TAKEOVER_GOAL
    finished = api.wait_run(relay, timeout=240)
    assert set(task_states(finished).values()) == {"success"}, task_states(finished)
    relay_pods = api.pods(relay)
    assert sorted(p.metadata.labels["kubeflowlite.io/task"] for p in relay_pods) == [
        f"s{i}" for i in range(6)
    ]
    assert {p.metadata.labels["kubeflowlite.io/try"] for p in relay_pods} == {"1"}

    # A changed value rolls the Deployment: new Pods, with the new argument, Ready.
    before = {p.metadata.uid for p in operator_pods(api)}
    helm(cluster, "upgrade", RELEASE, str(CHART), "-n", namespace, "--reuse-values", "--wait", "--timeout=180s",
         "--set", "operator.logLevel=debug")  # fmt: skip
    rolled = wait_for(
        lambda: [p for p in operator_pods(api) if p.metadata.uid not in before and ready(p)] or None,
        timeout=120,
        what="the upgraded operator Pods",
    )
    assert "--log-level=debug" in rolled[0].spec.containers[0].args

    # Uninstall: the operator and its RBAC go, the CRDs and the users' DAGs and runs stay.
    helm(cluster, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout=120s")
    left = json.loads(
        cluster.kubectl(
            "get", "deployments,serviceaccounts,roles,rolebindings,services", "-n", namespace, "-o", "json"
        ).stdout
    )["items"]
    assert [o["metadata"]["name"] for o in left if "kubeflowlite" in o["metadata"]["name"]] == []
    assert cluster.kubectl("get", "crd", "dags.kubeflowlite.io", "dagruns.kubeflowlite.io").returncode == 0
    assert api.dag("tutorial")["metadata"]["name"] == "tutorial"
    assert api.run(run)["status"]["state"] == "success"
