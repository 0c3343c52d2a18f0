"""Browser tests: the web UI in a real browser, against the hermetic cluster and a real operator.

Boundary: the UI under test is the real `kubeflowlite ui` command, started as a
subprocess with the cluster's kubeconfig and scoped to the test's namespace; the
browser is Debian's `chromium` (hack/system-packages.txt) driven by Playwright
(pytest-playwright's `page` fixture), launched with `executable_path` since
`playwright install` cannot download here. The cluster, namespace, operator and
api fixtures are tests/cluster's (this directory sits under it to share its one
session control plane); tests here carry the `cluster` and `browser` markers.

Screenshots of the main views go to test-artifacts/screenshots/ (`shot`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_harness import UIServer, browser_type_launch_args  # noqa: F401

REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)  # `cluster` comes from tests/conftest.py


@pytest.fixture
def start_ui(
    request: pytest.FixtureRequest, cluster: Any, namespace: str, crds: None, tmp_path: Path
) -> Iterator[Callable[..., UIServer]]:
    """Start `kubeflowlite ui` for this test's namespace (extra options, another kubeconfig)."""
    started: list[UIServer] = []

    def start(*extra: str, kubeconfig: Path | None = None) -> UIServer:
        server = UIServer(kubeconfig or cluster.kubeconfig, namespace, tmp_path, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for server in started:
            print(f"\n--- kubeflowlite ui log ---\n{server.log()}", file=sys.stderr)


@pytest.fixture
def ui(start_ui: Callable[..., UIServer]) -> UIServer:
    """The UI for this test's namespace, with the cluster admin's kubeconfig."""
    return start_ui()


@pytest.fixture
def shot(page: Any) -> Callable[[str], Path]:
    """Save a full-page screenshot of the current page as test-artifacts/screenshots/<name>.png."""

    def save(name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
