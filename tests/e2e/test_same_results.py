"""The same DAG, both ways: the local runner and the operator on the real node agree.

For every file in examples/ (YAML and Python) and tests/e2e/dags/, the DAG runs once with
`kubeflowlite run` (tasks as subprocesses) and once as a DAGRun that the operator
(outside the cluster) takes to its end with real task Pods, for the same logical
date and conf. Then every task's final state, try number and XCom value must be
equal, and so must the run's state. Nothing is compared with a stored copy: both
sides run each time.

The one allowed difference is the output of `date` (tutorial's print_date): both
sides must return a `date` line, within a few minutes of each other.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from operator_harness import Api, OperatorProcess

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = (
    sorted((REPO / "examples").glob("*.yaml"))
    + sorted((REPO / "examples" / "python").glob("*.py"))
    + sorted((REPO / "tests" / "e2e" / "dags").glob("*.yaml"))
)
LOGICAL_DATE = "2020-02-09"
DATE_LINE = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d [A-Z]+ \d{4}$")


def run_locally(path: Path, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """`kubeflowlite run FILE --date D -o json`: the finished DAGRun and the run's XCom values."""
    runs_dir = tmp_path / "local-runs"
    completed = subprocess.run(
        [sys.executable, "-m", "kubeflowlite", "run", str(path), "--date", LOGICAL_DATE, "-o", "json",
         "--runs-dir", str(runs_dir)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode in (0, 1), completed.stderr
    run = json.loads(completed.stdout)
    xcom_files = list(runs_dir.glob("*/*/xcom.json"))
    xcoms = json.loads(xcom_files[0].read_text()) if xcom_files else {}
    return run, xcoms


def run_on_node(api: Api, path: Path, dag: str, run_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same file applied as a user does (`kubeflowlite apply`, YAML or Python) and run by the
    operator: the DAGRun and its XCom ConfigMap."""
    applied = subprocess.run(
        [sys.executable, "-m", "kubeflowlite", "apply", str(path), "-n", api.namespace,
         f"--kubeconfig={api.cluster.kubeconfig}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    api.create_run(dag, f"{LOGICAL_DATE}T00:00:00Z", name=run_name)
    run = api.wait_run(run_name, timeout=240)
    try:
        data = api.configmap(f"{run_name}-xcom").data or {}
    except Exception:  # no task returned a value: no ConfigMap
        data = {}
    return run, {task: json.loads(text) for task, text in data.items()}


def outcome(run: dict[str, Any]) -> dict[str, Any]:
    tasks = run["status"]["tasks"]
    return {
        "run": run["status"]["state"],
        "tasks": {name: (t["state"], t.get("tryNumber", 0)) for name, t in sorted(tasks.items())},
    }


def same_value(local: Any, node: Any) -> bool:
    if isinstance(local, str) and isinstance(node, str) and DATE_LINE.match(local) and DATE_LINE.match(node):
        parse = lambda text: datetime.strptime(text.replace("  ", " "), "%a %b %d %H:%M:%S %Z %Y")  # noqa: E731
        return abs(parse(local) - parse(node)) < timedelta(minutes=10)
    return bool(local == node)


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_local_and_real_node_agree(path: Path, api: Api, operator: OperatorProcess, tmp_path: Path) -> None:
    local_run, local_xcoms = run_locally(path, tmp_path)
    node_run, node_xcoms = run_on_node(api, path, local_run["spec"]["dagName"], local_run["metadata"]["name"])

    assert outcome(node_run) == outcome(local_run)
    assert sorted(node_xcoms) == sorted(local_xcoms)
    different = {
        t: (local_xcoms[t], node_xcoms[t])
        for t in local_xcoms
        if not same_value(local_xcoms[t], node_xcoms[t])
    }
    assert not different, f"XCom values differ (local, node): {different}"
    # The failures read the same too (exit codes, timeouts, XCom limits).
    for name, local_task in local_run["status"]["tasks"].items():
        node_task = node_run["status"]["tasks"][name]
        if local_task["state"] == "failed":
            assert node_task.get("exitCode") == local_task.get("exitCode"), name
