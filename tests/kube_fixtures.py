"""Fixtures shared by every test that talks to Kubernetes (tests/cluster, tests/e2e).

Each of those directories' conftest decides which control plane its session-scoped
`cluster` fixture starts (KWOK nodes, or the real node); the rest, a fresh namespace
per test and the artifacts kept when a test fails, is the same and lives here.
Import the fixtures into a conftest with `from kube_fixtures import core_v1, namespace`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))

from controlplane.cluster import ControlPlane, kubectl  # noqa: E402

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
