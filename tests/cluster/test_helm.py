"""The Helm chart lints, renders, and every object it renders is accepted by a real apiserver.

`helm` comes from the hermetic tools cache (`hack/build-tools`, via the `cluster` fixture);
the rendered objects go through `kubectl apply --dry-run=server`, so the apiserver
itself (RBAC, Deployment and Service validation) judges them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import wait_healthy

from controlplane.ports import free_ports

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
            "Role",
            "RoleBinding",
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


def test_reading_connection_secrets_is_opt_in_and_read_only(helm: str, kube_version: str) -> None:
    rendered = template(helm, kube_version, "kfl-system", "rbac.readConnectionSecrets=true")
    [role] = by_kind(rendered)["ClusterRole"]
    secrets = [rule for rule in role["rules"] if "secrets" in rule["resources"]]
    assert [(rule["apiGroups"], rule["resources"], sorted(rule["verbs"])) for rule in secrets] == [
        ([""], ["secrets"], ["get", "list", "watch"])
    ]
    [deployment] = by_kind(rendered)["Deployment"]
    assert "--no-connection-secrets" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_deployment_runs_the_operator_with_liveness(helm: str, kube_version: str) -> None:
    [deployment] = by_kind(template(helm, kube_version, "kfl-system"))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "kubeflowlite/kubeflowlite:0.1.0"
    assert container["command"] == ["kubeflowlite", "operator"]
    assert "--all-namespaces" in container["args"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert "--pending-timeout=10m" in container["args"]
    assert "--no-connection-secrets" in container["args"]  # rbac.readConnectionSecrets is off by default
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
    [role] = [r for r in kinds["Role"] if not r["metadata"]["name"].endswith("-leader-election")]
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


def test_the_liveness_and_metrics_ports_must_differ(helm: str, kube_version: str) -> None:
    """One port for both: kopf's liveness endpoint could not bind it and the operator would stop."""
    result = run(
        helm, "template", "kfl", str(CHART), "--kube-version", kube_version,
        "--set", "operator.healthPort=9090,metrics.port=9090",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "operator.healthPort and metrics.port must differ" in result.stderr


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
        "KubeflowliteDAGRunFailed",
        "KubeflowliteTaskFailed",
        "KubeflowliteOperatorDown",
    } <= alerts.keys()  # the rules themselves are tested with promtool: test_alert_rules.py


def test_operator_runs_with_the_charts_args_and_rbac(
    cluster: Any, namespace: str, helm: str, kube_version: str, tmp_path: Path
) -> None:
    """The chart's ServiceAccount, Role and ClusterRole are enough, and its args are the CLI's.

    Everything but the Deployment is installed for real (there is no image here);
    the operator then runs as a process with exactly the Deployment's command and
    args, authenticated as the chart's ServiceAccount, and must run a DAG to success
    and serve its liveness and metrics endpoints.
    """
    health, metrics = free_ports(2)
    release = f"r{namespace[-5:]}"
    rendered = run(
        helm, "template", release, str(CHART), "--namespace", namespace, "--kube-version", kube_version,
        "--set", f"watch.allNamespaces=false,watch.namespaces={{{namespace}}}",
        "--set", f"operator.healthPort={health},metrics.port={metrics}",
    ).stdout  # fmt: skip
    kinds = by_kind(rendered)
    [deployment] = kinds.pop("Deployment")
    installed = [obj for objs in kinds.values() for obj in objs]
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/dags.kubeflowlite.io", "crd/dagruns.kubeflowlite.io"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(installed))
    process: subprocess.Popen[bytes] | None = None
    log_path = tmp_path / "operator.log"
    try:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
        kubeconfig = service_account_kubeconfig(Path(cluster.kubeconfig), token, namespace, tmp_path)
        assert container["command"][0] == "kubeflowlite"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "kubeflowlite", *container["command"][1:], *container["args"]],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ | {"KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"},
            )
        wait_healthy(
            process,
            f"http://127.0.0.1:{health}/healthz",
            what="the chart's operator",
            log=lambda: log_path.read_text(errors="replace")[-4000:],
        )

        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(SMALL_DAG))
        cluster.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(SMALL_RUN))

        def run_state() -> str:
            result = cluster.kubectl(
                "get",
                "dagrun",
                SMALL_RUN["metadata"]["name"],
                "-n",
                namespace,
                "-o",
                "jsonpath={.status.state}",
            )
            return str(result.stdout)

        wait_for(lambda: run_state() in ("success", "failed"), process, log_path, "finished", timeout=120)
        assert run_state() == "success", log_path.read_text(errors="replace")[-4000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as response:
            assert b"kubeflowlite_dagruns_finished_total" in response.read()
        log_text = log_path.read_text(errors="replace")
        assert "forbidden" not in log_text.lower(), log_text[-4000:]
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        cluster.kubectl(
            "delete",
            "clusterrole,clusterrolebinding",
            f"{release}-kubeflowlite",
            "--ignore-not-found",
            check=False,
        )


SMALL_DAG: dict[str, Any] = {
    "apiVersion": "kubeflowlite.io/v1alpha1",
    "kind": "DAG",
    "metadata": {"name": "rbac-check"},
    "spec": {
        "tasks": [
            {"name": "first", "bash": "echo 1"},
            {"name": "second", "bash": "echo 2", "dependsOn": ["first"]},
        ]
    },
}
SMALL_RUN: dict[str, Any] = {
    "apiVersion": "kubeflowlite.io/v1alpha1",
    "kind": "DAGRun",
    "metadata": {"name": "rbac-check-manual-20240101t000000"},
    "spec": {"dagName": "rbac-check", "logicalDate": "2024-01-01T00:00:00Z"},
}


def wait_for(
    condition: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log_path: Path,
    what: str,
    timeout: float = 60,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
        assert process.poll() is None, f"the operator exited with {process.returncode}:\n{tail}"
        assert time.monotonic() < deadline, f"the operator never became {what}:\n{tail}"
        time.sleep(0.2)


def service_account_kubeconfig(admin: Path, token: str, namespace: str, directory: Path) -> Path:
    """A kubeconfig for the same apiserver that authenticates with a ServiceAccount token."""
    config = yaml.safe_load(admin.read_text())
    server = config["clusters"][0]["cluster"]
    path = directory / "service-account.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": server}],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [
                    {"name": "c", "context": {"cluster": "c", "user": "operator", "namespace": namespace}}
                ],
                "current-context": "c",
            }
        )
    )
    return path
