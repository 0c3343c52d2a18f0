"""Test boundary for the whole suite.

tests/unit/ is pure logic and local subprocesses: no cluster, seconds to run.
tests/cluster/ talks to a real kube-apiserver (the hermetic control plane, started
once per session by the `cluster` fixture of tests/cluster/cluster_harness.py, or
the cluster named by KFL_TEST_KUBECONFIG); those tests carry the `cluster` marker.
tests/browser/ drives the web UI in a real browser (Debian's chromium) against the
same cluster and operator; those tests carry `cluster` and `browser`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The cluster fixtures live with their harnesses in tests/cluster/ and are registered
# here, once, so every directory that needs a cluster shares one session control plane.
sys.path.insert(0, str(Path(__file__).parent / "cluster"))

from cluster_harness import cluster, core_v1, namespace, pytest_runtest_makereport  # noqa: F401
from operator_harness import api, crds, operator, start_operator  # noqa: F401
