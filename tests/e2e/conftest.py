"""Fixtures for the end-to-end tests: task Pods run for real on the hermetic plane's real node.

Boundary: a session-scoped control plane with one real node (containerd, runc,
CNI bridge, a kubelet built from the same Kubernetes module as the apiserver;
hack/controlplane/node.py) and no KWOK nodes, so a task's command, its log, its
exit code and its termination message are a container's, not annotations. The
operator runs outside the cluster, as in tests/cluster (operator_harness). The
node changes the host (sysctls, iptables, mounts, cgroups, a bridge); stopping
the plane undoes that, and so does the next start after a crash.

`make test` installs what the node needs (hack/system-packages) and builds the
kubelet (hack/build-tools); nothing here is skipped when something is missing.
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
sys.path.insert(0, str(REPO / "tests" / "cluster"))
sys.path.insert(0, str(REPO / "tests" / "cluster" / "browser"))

from kube_fixtures import Cluster, core_v1, namespace  # noqa: E402, F401
from operator_harness import api, crds, operator, start_operator  # noqa: E402, F401
from ui_harness import browser_type_launch_args  # noqa: E402, F401

from controlplane.cluster import ControlPlane, build_tools, reap_orphans  # noqa: E402


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The plane with its real node, started once for the e2e tests of the session."""
    bin_dir = build_tools()
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    reap_orphans()
    # One real node per machine: wait (a while) for one a parallel session may be using.
    plane = ControlPlane.start(bin_dir, nodes="real", wait_for_node=1200)
    print(f"\nreal-node plane ready in {plane.started_seconds:.1f}s ({plane.state_dir})", file=sys.stderr)
    # The project's image: the operator's (helm tests) and Python tasks' default image.
    plane.load_image("kubeflowlite")
    try:
        yield Cluster(kubeconfig=plane.kubeconfig, bin_dir=bin_dir, plane=plane)
    finally:
        plane.stop()
