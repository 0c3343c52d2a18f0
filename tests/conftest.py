"""Test boundary for the whole suite.

tests/unit/ is pure logic and local subprocesses: no cluster, seconds to run.
tests/cluster/ talks to a real kube-apiserver (the hermetic control plane, started
once per session by tests/cluster/conftest.py, or the cluster named by
KFL_TEST_KUBECONFIG); those tests carry the `cluster` marker.
"""
