"""`helm install` for real: the operator runs as a Pod on the real node, from an image made here.

The image is the one hack/controlplane/images.py makes as the Dockerfile would
(`hack/cluster load-image`), loaded into the node's containerd. The hermetic plane
has no kube-proxy and its apiserver listens on loopback, so the test installs with
`hostNetwork=true` and `apiServer.host/port` (chart values meant for such
clusters only, documented in values.yaml and the README), from the values file the
plane writes for its users ($KFL_HELM_VALUES of `hack/cluster env`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from operator_harness import Api, wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "kubeflowlite"
RELEASE = "kfl"


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


def test_helm_install_upgrade_uninstall(cluster: Any, namespace: str, api: Api) -> None:
    image = cluster.plane.load_image("kubeflowlite")
    assert image.endswith(":" + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])
    # The plane's own values file, as the README has users install on it.
    values = ["watch.allNamespaces=false", f"watch.namespaces={{{namespace}}}"]
    helm(cluster, "install", RELEASE, str(CHART), "-n", namespace, "--wait", "--timeout=180s",
         "-f", str(cluster.plane.helm_values), *[arg for value in values for arg in ("--set", value)])  # fmt: skip

    (pod,) = operator_pods(api)
    assert ready(pod), "helm --wait returned before the operator Pod was Ready"
    assert pod.spec.service_account_name == f"{RELEASE}-kubeflowlite"
    assert pod.spec.containers[0].image.endswith(image.split("/", 1)[1])

    api.apply(yaml.safe_load((REPO / "examples" / "tutorial.yaml").read_text()))
    run = api.create_run("tutorial", "2020-02-09T00:00:00Z")
    finished = api.wait_run(run, timeout=240)
    assert finished["status"]["state"] == "success", api.dump(run)
    log = api.core.read_namespaced_pod_log(pod.metadata.name, namespace)
    assert "403" not in log and "Forbidden" not in log, log[-3000:]

    # A changed value rolls the Deployment: a new Pod, with the new argument, Ready.
    helm(cluster, "upgrade", RELEASE, str(CHART), "-n", namespace, "--reuse-values", "--wait", "--timeout=180s",
         "--set", "operator.logLevel=debug")  # fmt: skip
    rolled = wait_for(
        lambda: [p for p in operator_pods(api) if p.metadata.uid != pod.metadata.uid and ready(p)] or None,
        timeout=120,
        what="the upgraded operator Pod",
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
