"""Fixtures for tests that need Kubernetes: a real control plane, no mocks.

Shared by tests/cluster and tests/browser through tests/conftest.py, so one
session starts one control plane whichever of them run.

Boundary: every test here talks to a real kube-apiserver. By default the session
starts the hermetic control plane (hack/controlplane: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, KWOK with 3 simulated nodes) from the
cached binaries that `hack/build-tools` builds; set KFL_TEST_KUBECONFIG to run
against an existing cluster instead. Each test gets its own namespace. When a test
fails, the component logs and the namespace's objects are kept under
test-artifacts/<test>/ and the path is printed in the report.

Pod lifecycles are simulated by KWOK and steered by Pod annotations (see
hack/kwok/stages.yaml): kwok.kubeflowlite.io/outcome, /delay, /pending-delay,
/exit-code, /message, /stuck, /waiting-reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "hack") not in sys.path:
    sys.path.insert(0, str(REPO / "hack"))

from controlplane.cluster import ControlPlane, build_tools, kubectl, reap_orphans  # noqa: E402

ARTIFACTS = REPO / "test-artifacts"


@dataclass
class Cluster:
    """What a cluster test needs: the kubeconfig, the tools, and clients."""

    kubeconfig: Path
    bin_dir: Path
    plane: ControlPlane | None

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return kubectl(self.bin_dir, self.kubeconfig, *args, check=check, input=input)

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    bin_dir = build_tools()
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    existing = os.environ.get("KFL_TEST_KUBECONFIG")
    if existing:
        yield Cluster(kubeconfig=Path(existing), bin_dir=bin_dir, plane=None)
        return
    reap_orphans()
    plane = ControlPlane.start(bin_dir)
    print(f"\ncontrol plane ready in {plane.started_seconds:.1f}s ({plane.state_dir})", file=sys.stderr)
    try:
        yield Cluster(kubeconfig=plane.kubeconfig, bin_dir=bin_dir, plane=plane)
    finally:
        plane.stop()


@pytest.fixture
def core_v1(cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api_client())


@pytest.fixture
def namespace(request: pytest.FixtureRequest, cluster: Cluster, core_v1: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists (Pods can be created at once)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:5]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deadline = time.monotonic() + 30
    while True:
        try:
            core_v1.read_namespaced_service_account("default", name)
            break
        except client.ApiException as err:
            if err.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield name
    failed = any(
        getattr(request.node, f"rep_{when}", None) is not None and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )
    if failed:
        _keep_artifacts(request.node.nodeid, cluster, name)
    core_v1.delete_namespace(name, propagation_policy="Background")


def _keep_artifacts(nodeid: str, cluster: Cluster, namespace: str) -> None:
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)
    folder.mkdir(parents=True, exist_ok=True)
    if cluster.plane is not None:
        cluster.plane.copy_logs(folder / "components")
    for what in ("all", "events", "dags.kubeflowlite.io", "dagruns.kubeflowlite.io", "configmaps"):
        result = cluster.kubectl("get", what, "-n", namespace, "-o", "yaml", check=False)
        (folder / f"{what}.yaml").write_text(result.stdout + result.stderr)
    print(f"\nkept component logs and namespace objects under {folder}", file=sys.stderr)
