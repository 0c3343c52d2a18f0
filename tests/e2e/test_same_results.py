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
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from operator_harness import Api, OperatorProcess

from benchmarks.bench_chaos import local_run as local_run_of
from benchmarks.bench_chaos import outcome, same_value

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = (
    sorted((REPO / "examples").glob("*.yaml"))
    + sorted((REPO / "examples" / "python").glob("*.py"))
    + sorted((REPO / "tests" / "e2e" / "dags").glob("*.yaml"))
)
LOGICAL_DATE = "2020-02-09"


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


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_local_and_real_node_agree(path: Path, api: Api, operator: OperatorProcess, tmp_path: Path) -> None:
    local_run, local_xcoms = local_run_of(path, LOGICAL_DATE, tmp_path / "local-runs")
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
