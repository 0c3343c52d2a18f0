"""What tests that drive the web UI share: `kubeflowlite ui` as a subprocess and Debian's chromium.

Used by tests/cluster/browser (KWOK plane) and tests/e2e (the real node, for real logs).
Import the `browser_type_launch_args` fixture into a conftest to point
pytest-playwright at Debian's chromium (`playwright install` cannot download here).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from operator_harness import wait_healthy

from controlplane.ports import free_port

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
        wait_healthy(self.process, f"{self.url}/healthz", what="kubeflowlite ui", log=self.log)

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
