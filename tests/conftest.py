"""Test boundary for the whole suite.

tests/unit/ is pure logic and local subprocesses: no cluster, seconds to run.
tests/cluster/ talks to a real kube-apiserver (the hermetic control plane, started
once per session by tests/cluster/conftest.py, or the cluster named by
KFL_TEST_KUBECONFIG); those tests carry the `cluster` marker.
tests/e2e/ runs task Pods for real on the real node (hack/controlplane/node.py) and
compares them with the local runner; those tests carry the `e2e` marker.
tests/airflow_diff/ runs Airflow's own example DAGs with Apache Airflow itself (the
pinned venv of hack/airflow-venv) and with the local runner; those carry `airflow`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

_MARKERS = {"cluster": "cluster", "e2e": "e2e", "airflow_diff": "airflow"}


FIRST = "test_host_effects.py"
"""Starts and stops real nodes of its own: it must run before the e2e session's node is up."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        parts = Path(str(item.fspath)).relative_to(here).parts
        if parts and parts[0] in _MARKERS:
            item.add_marker(getattr(pytest.mark, _MARKERS[parts[0]]))
    items.sort(key=lambda item: _order(item, here))  # stable: within a group, the collected order


def _order(item: pytest.Item, here: Path) -> int:
    """Host effects first (before the e2e node starts), then unit, cluster, e2e; browser tests last:
    Playwright's sync API leaves an event loop running in the main thread, and any later test
    that calls asyncio.run() in-process would fail."""
    path = Path(str(item.fspath))
    if path.name == FIRST:
        return 0
    if "page" in getattr(item, "fixturenames", ()):
        return 4
    top = path.relative_to(here).parts[0]
    return {"unit": 1, "cluster": 2, "e2e": 3}.get(top, 1)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so fixtures can tell whether their test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
