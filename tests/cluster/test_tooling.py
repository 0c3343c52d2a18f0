"""The two ways to bring your own cluster parts: KUBEBUILDER_ASSETS and KFL_TEST_KUBECONFIG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def test_build_tools_links_kubebuilder_assets_instead_of_building(cluster: Any, tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    # An envtest-style layout holds etcd, kube-apiserver and kubectl; give it every tool
    # so that nothing needs building and the test stays fast.
    for tool in (
        "etcd",
        "kube-apiserver",
        "kubectl",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kwok",
        "helm",
    ):
        (assets / tool).symlink_to((cluster.bin_dir / tool).resolve())
    env = {**os.environ, "KUBEBUILDER_ASSETS": str(assets), "KFL_TOOLS_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [str(REPO / "hack" / "build-tools")], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    bin_dir = Path(result.stdout.strip().splitlines()[-1])
    assert bin_dir.is_relative_to(tmp_path / "cache")
    assert (bin_dir / "kube-apiserver").resolve() == (assets / "kube-apiserver").resolve()
    assert "building" not in result.stderr
    assert "using KUBEBUILDER_ASSETS" in result.stderr
    version = subprocess.run([str(bin_dir / "kube-apiserver"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == "Kubernetes v1.33.13"


def test_kfl_test_kubeconfig_runs_the_cluster_tests_against_an_existing_cluster(cluster: Any) -> None:
    env = {**os.environ, "KFL_TEST_KUBECONFIG": str(cluster.kubeconfig)}
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
            str(REPO / "tests" / "cluster" / "test_smoke.py::test_pod_fails_with_the_annotated_exit_code"),
        ],
        env=env, capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    # With -s the session fixture's "control plane ready in ..." line would show had it started one.
    assert "control plane ready" not in result.stdout + result.stderr, "no plane may be started"
