"""The web UI shows a task's real log, from a container on the real node, in a real browser.

The KWOK browser tests (tests/cluster/browser) can only show that a log is
missing; here the kubelet serves it: the finished log of every try (an earlier try
too), and a running try's log followed as the container writes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import Api, OperatorProcess, dag_manifest, task_states, wait_for
from playwright.sync_api import Page, expect
from ui_harness import UIServer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture
def ui(cluster: Any, namespace: str, crds: None, tmp_path: Path) -> Iterator[UIServer]:
    server = UIServer(cluster.kubeconfig, namespace, tmp_path)
    yield server
    server.stop()


def test_the_log_view_shows_real_logs(ui: UIServer, operator: OperatorProcess, api: Api, page: Page) -> None:
    flaky = (
        'echo "try $KFL_TRY_NUMBER on $(hostname)"; [ "$KFL_TRY_NUMBER" -ge 2 ] || { echo boom >&2; exit 1; }'
    )
    slow = 'for i in 1 2 3 4 5 6 7 8; do echo "tick $i"; sleep 1; done'
    api.apply(
        dag_manifest(
            "shown",
            [
                {"name": "flaky", "bash": flaky, "retries": 1, "retryDelay": "1s"},
                {"name": "slow", "dependsOn": ["flaky"], "bash": slow},
            ],
        )
    )
    run = api.create_run("shown", "2020-02-09T00:00:00Z")
    wait_for(lambda: task_states(api.run(run)).get("slow") == "running", timeout=120, what="slow to run")

    # A running try: the panel follows the container's output as it comes.
    page.goto(f"{ui.url}/runs/{api.namespace}/{run}/tasks/slow")
    log = page.locator("#log pre.logtext")
    expect(log).to_contain_text("tick 1", timeout=20_000)
    expect(log).to_contain_text("tick 8", timeout=30_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "task-log-real-node.png"), full_page=True)

    assert api.wait_run(run, timeout=120)["status"]["state"] == "success"
    page.goto(f"{ui.url}/runs/{api.namespace}/{run}/tasks/flaky")
    expect(page.locator("#log pre.logtext")).to_contain_text(re.compile(r"try 2 on \S+"))
    page.goto(f"{ui.url}/runs/{api.namespace}/{run}/tasks/flaky/log?try=1&tail=all")
    first = page.locator("pre.logtext")
    expect(first).to_contain_text("try 1 on")
    expect(first).to_contain_text("boom")
