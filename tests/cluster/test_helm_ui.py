"""The chart's web UI (ui.enabled): rendered, accepted by the apiserver, and its RBAC is what the UI needs.

As for the operator (test_helm.py), everything but the Deployment is installed for
real; the UI then runs as a process with the Deployment's command and args (on a
free loopback port instead of 0.0.0.0), authenticated as the chart's UI
ServiceAccount: it must read DAGs, and a write must work only with ui.allowWrites
(read-only, the UI refuses it itself; and the Role grants no write either).
"""

# ruff: noqa: F811
from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import wait_healthy
from test_helm import (
    CHART,
    by_kind,
    helm,  # noqa: F401
    kube_version,  # noqa: F401
    run,
    service_account_kubeconfig,
    template,
)

from controlplane.ports import free_port

pytestmark = pytest.mark.cluster

DAG = {
    "apiVersion": "kubeflowlite.io/v1alpha1",
    "kind": "DAG",
    "metadata": {"name": "ui-check"},
    "spec": {"tasks": [{"name": "a", "bash": "true"}]},
}


def test_ui_is_off_by_default_and_lints_on(helm: str, kube_version: str) -> None:
    assert not any(
        o["metadata"]["name"].endswith("-ui")
        for objs in by_kind(template(helm, kube_version, "x")).values()
        for o in objs
    )
    run(helm, "lint", "--strict", "--kube-version", kube_version, str(CHART), "--set", "ui.enabled=true")
    run(
        helm,
        "lint",
        "--strict",
        "--kube-version",
        kube_version,
        str(CHART),
        "--set",
        "ui.enabled=true,ui.allowWrites=true,ui.namespace=team-a",
    )


def test_ui_objects_are_accepted_and_read_only_by_default(
    cluster: Any, namespace: str, helm: str, kube_version: str
) -> None:
    rendered = template(helm, kube_version, namespace, "ui.enabled=true")
    kinds = by_kind(rendered)
    ui_objects = {
        (o["kind"], o["metadata"]["name"])
        for objs in kinds.values()
        for o in objs
        if o["metadata"]["name"].endswith("-ui")
    }
    assert ui_objects == {
        ("ServiceAccount", "kfl-kubeflowlite-ui"),
        ("ClusterRole", "kfl-kubeflowlite-ui"),
        ("ClusterRoleBinding", "kfl-kubeflowlite-ui"),
        ("Deployment", "kfl-kubeflowlite-ui"),
        ("Service", "kfl-kubeflowlite-ui"),
    }
    [role] = [r for r in kinds["ClusterRole"] if r["metadata"]["name"] == "kfl-kubeflowlite-ui"]
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    [service] = [s for s in kinds["Service"] if s["metadata"]["name"] == "kfl-kubeflowlite-ui"]
    assert service["spec"]["type"] == "ClusterIP"
    [deployment] = [d for d in kinds["Deployment"] if d["metadata"]["name"] == "kfl-kubeflowlite-ui"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["kubeflowlite", "ui"]
    assert {"--all-namespaces", "--read-only"} <= set(container["args"])
    assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "ui"
    run(
        "kubectl", f"--kubeconfig={cluster.kubeconfig}", "apply", "--server-side", "--dry-run=server",
        "--force-conflicts", "-n", namespace, "-f", "-", stdin=rendered,
    )  # fmt: skip


@pytest.mark.parametrize("allow_writes", [False, True], ids=["read-only", "allow-writes"])
def test_ui_runs_with_the_charts_args_and_rbac(
    cluster: Any, namespace: str, helm: str, kube_version: str, tmp_path: Path, allow_writes: bool
) -> None:
    release = f"r{namespace[-5:]}"
    rendered = run(
        helm, "template", release, str(CHART), "--namespace", namespace, "--kube-version", kube_version,
        "--set", f"watch.allNamespaces=false,watch.namespaces={{{namespace}}}",
        "--set", f"ui.enabled=true,ui.namespace={namespace},ui.allowWrites={str(allow_writes).lower()}",
    ).stdout  # fmt: skip
    ui_objects = [
        o for o in yaml.safe_load_all(rendered) if o and o["metadata"]["name"] == f"{release}-kubeflowlite-ui"
    ]
    [deployment] = [o for o in ui_objects if o["kind"] == "Deployment"]
    installed = [o for o in ui_objects if o["kind"] != "Deployment"]
    assert {o["kind"] for o in installed} == {"ServiceAccount", "Role", "RoleBinding", "Service"}
    for path in sorted((Path(__file__).resolve().parents[2] / "crds").glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/dags.kubeflowlite.io", "crd/dagruns.kubeflowlite.io"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(installed))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(DAG))

    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    token = cluster.kubectl(
        "create", "token", pod["serviceAccountName"], "-n", namespace, "--duration=1h"
    ).stdout.strip()
    kubeconfig = service_account_kubeconfig(Path(cluster.kubeconfig), token, namespace, tmp_path)
    port = free_port()
    args = [a for a in container["args"] if not a.startswith(("--host=", "--port="))]
    log_path = tmp_path / "ui.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kubeflowlite", *container["command"][1:], *args, f"--port={port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ | {"KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(
            process,
            f"{base}/healthz",
            what="the chart's UI",
            log=lambda: log_path.read_text(errors="replace")[-4000:],
        )
        with urllib.request.urlopen(f"{base}/", timeout=10) as response:
            page = response.read().decode()
        assert 'data-dag="ui-check"' in page, page[-2000:]
        token_match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token_match is not None
        form = urllib.parse.urlencode({"csrf": token_match.group(1), "paused": "true"}).encode()
        request = urllib.request.Request(f"{base}/dags/{namespace}/ui-check/pause", data=form, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        paused = cluster.kubectl(
            "get", "dag", "ui-check", "-n", namespace, "-o", "jsonpath={.spec.paused}"
        ).stdout
        if allow_writes:
            assert status == 200 and paused == "true", log_path.read_text()  # 303 followed to the page
        else:
            assert status == 403 and paused != "true"
        can_patch = cluster.kubectl(
            "auth", "can-i", "patch", "dags.kubeflowlite.io", "-n", namespace,
            f"--as=system:serviceaccount:{namespace}:{pod['serviceAccountName']}", check=False,
        ).stdout.strip()  # fmt: skip
        assert can_patch == ("yes" if allow_writes else "no")
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)
