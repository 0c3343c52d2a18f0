"""Fixtures for tests that need Kubernetes: a real control plane, no mocks.

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
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack"))

sys.path.insert(0, str(REPO / "tests"))

# The namespace and client fixtures are shared with tests/e2e; the operator tests'
# fixtures (crds, start_operator, operator, api) live with their harness.
from kube_fixtures import Cluster, core_v1, namespace  # noqa: E402, F401
from operator_harness import api, crds, operator, start_operator  # noqa: E402, F401

from controlplane.cluster import ControlPlane, build_tools, reap_orphans  # noqa: E402


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
