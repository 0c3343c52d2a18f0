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

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import free_port

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("KFL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)  # `cluster` comes from tests/conftest.py


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch options, pointed at Debian's chromium."""
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: hack/system-packages installs chromium"
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "headless": True, "args": CHROMIUM_ARGS}


class UIServer:
    """`kubeflowlite ui` in a subprocess for one namespace, on a free loopback port."""

    def __init__(self, kubeconfig: Path, namespace: str, log_dir: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.namespace = namespace
        self.log_path = log_dir / f"ui-{self.port}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open by the child
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubeflowlite",
                "ui",
                f"--kubeconfig={kubeconfig}",
                *([] if "-A" in extra else [f"--namespace={namespace}"]),
                f"--port={self.port}",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"kubeflowlite ui exited with {self.process.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"kubeflowlite ui did not start: {self.log()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


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
