"""The Helm chart lints, renders, and every object it renders is accepted by a real apiserver.

`helm` comes from the hermetic tools cache (`hack/build-tools`, via the `cluster` fixture);
the rendered objects go through `kubectl apply --dry-run=server`, so the apiserver
itself (RBAC, Deployment and Service validation) judges them.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubeflowlite"


@pytest.fixture(scope="module")
def helm(cluster: Any) -> str:
    """The helm binary that `hack/build-tools` put into the tools cache."""
    path = Path(cluster.bin_dir) / "helm"
    assert path.is_file(), f"hack/build-tools did not provide {path}"
    return str(path)


@pytest.fixture(scope="module")
def kube_version(cluster: Any) -> str:
    """The apiserver's version: helm checks `kubeVersion` and deprecations against it.

    Passed explicitly because a helm built from source defaults to an old version.
    """
    result = subprocess.run(
        [
            str(Path(cluster.bin_dir) / "kubectl"),
            f"--kubeconfig={cluster.kubeconfig}",
            "version",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    version: str = json.loads(result.stdout)["serverVersion"]["gitVersion"]
    return version


def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"HELM_CACHE_HOME": "/tmp/kfl-helm/cache", "HELM_CONFIG_HOME": "/tmp/kfl-helm/config"}
    result = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=300, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def template(helm: str, kube_version: str, namespace: str, *sets: str, crds: bool = False) -> str:
    args = [helm, "template", "kfl", str(CHART), "--namespace", namespace, "--kube-version", kube_version]
    if crds:
        args.append("--include-crds")
    for value in sets:
        args += ["--set", value]
    return run(*args).stdout


def objects(rendered: str) -> Iterator[dict[str, Any]]:
    for document in yaml.safe_load_all(rendered):
        if document:
            yield document


def by_kind(rendered: str) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for obj in objects(rendered):
        kinds.setdefault(obj["kind"], []).append(obj)
    return kinds


def test_chart_lints(helm: str, kube_version: str) -> None:
    run(helm, "lint", "--strict", "--kube-version", kube_version, str(CHART))
    run(
        helm,
        "lint",
        "--strict",
        "--kube-version",
        kube_version,
        str(CHART),
        "--set",
        "serviceMonitor.enabled=true,prometheusRule.enabled=true",
        "--set",
        "watch.allNamespaces=false,watch.namespaces={team-a,team-b}",
    )


def test_default_install_is_accepted_by_the_apiserver(
    cluster: Any, namespace: str, helm: str, kube_version: str
) -> None:
    rendered = template(helm, kube_version, namespace, crds=True)
    kinds = by_kind(rendered)
    assert sorted(kinds) == sorted(
        [
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
        ]
    )
    [crd_runs, crd_dags] = sorted(kinds["CustomResourceDefinition"], key=lambda c: c["metadata"]["name"])
    assert crd_runs["metadata"]["name"] == "dagruns.kubeflowlite.io"
    assert crd_dags["metadata"]["name"] == "dags.kubeflowlite.io"
    result = run(
        "kubectl",
        f"--kubeconfig={cluster.kubeconfig}",
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=rendered,
    )
    assert "deployment.apps/kfl-kubeflowlite serverside-applied (server dry run)" in result.stdout


def test_deployment_runs_the_operator_with_liveness(helm: str, kube_version: str) -> None:
    [deployment] = by_kind(template(helm, kube_version, "kfl-system"))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "kubeflowlite/kubeflowlite:0.1.0"
    assert container["command"] == ["kubeflowlite", "operator"]
    assert "--all-namespaces" in container["args"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert "--pending-timeout=10m" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == "kfl-kubeflowlite"


def test_rbac_is_least_privilege(helm: str, kube_version: str) -> None:
    [role] = by_kind(template(helm, kube_version, "kfl-system"))["ClusterRole"]
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for (group, resource), verbs in granted.items():
        assert "*" not in verbs and resource != "*" and group != "*", (group, resource)
    assert not any(resource == "secrets" for _, resource in granted)
    assert {"create", "delete", "watch"} <= granted[("", "pods")]
    assert granted[("", "pods/log")] == {"get"}
    assert {"create", "patch"} <= granted[("", "configmaps")]
    assert {"patch"} <= granted[("kubeflowlite.io", "dagruns/status")]
    assert {"create", "delete"} <= granted[("kubeflowlite.io", "dagruns")]
    assert "create" in granted[("", "events")]


def test_namespace_scoped_install(cluster: Any, namespace: str, helm: str, kube_version: str) -> None:
    rendered = template(
        helm, kube_version, namespace, "watch.allNamespaces=false", f"watch.namespaces={{{namespace}}}"
    )
    kinds = by_kind(rendered)
    [role] = kinds["Role"]
    assert role["metadata"]["namespace"] == namespace
    [cluster_role] = kinds["ClusterRole"]
    assert not any("pods" in rule["resources"] for rule in cluster_role["rules"])
    [deployment] = kinds["Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--namespace={namespace}" in args and "--all-namespaces" not in args
    run(
        "kubectl",
        f"--kubeconfig={cluster.kubeconfig}",
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=rendered,
    )


def test_namespace_scope_needs_namespaces(helm: str, kube_version: str) -> None:
    result = run(
        helm,
        "template",
        "kfl",
        str(CHART),
        "--kube-version",
        kube_version,
        "--set",
        "watch.allNamespaces=false",
        check=False,
    )
    assert result.returncode != 0
    assert "watch.namespaces must list at least one namespace" in result.stderr


def test_monitoring_objects(helm: str, kube_version: str) -> None:
    kinds = by_kind(
        template(
            helm, kube_version, "kfl-system", "serviceMonitor.enabled=true", "prometheusRule.enabled=true"
        )
    )
    [monitor] = kinds["ServiceMonitor"]
    [service] = kinds["Service"]
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    [rule] = kinds["PrometheusRule"]
    alerts = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert {
        "KubeflowliteTaskFailures",
        "KubeflowliteRunFailures",
        "KubeflowliteOperatorDown",
    } <= alerts.keys()
    assert 'state="failed"' in alerts["KubeflowliteTaskFailures"]["expr"]
    assert alerts["KubeflowliteRunFailures"]["expr"].startswith(
        "sum(increase(kubeflowlite_dagruns_finished_total{"
    )
    assert "{{ $value" in alerts["KubeflowliteTaskFailures"]["annotations"]["description"]
