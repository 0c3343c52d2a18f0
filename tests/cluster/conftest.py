"""tests/cluster: everything here talks to a real kube-apiserver (see cluster_harness.py).

The fixtures (cluster, namespace, core_v1, and the operator harness's crds,
start_operator, operator, api) are registered once for the whole suite by
tests/conftest.py, so tests/cluster and tests/browser share one control plane.
This file only marks its tests `cluster`.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)
