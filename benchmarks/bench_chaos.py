"""Chaos on the real node: the operator SIGKILLed at random while runs of mixed DAGs are in flight.

    .venv/bin/python -m benchmarks.bench_chaos [--runs 20] [--kills 100] [--seed N]

Starts a hermetic plane with its real node (or uses --kubeconfig), applies every DAG
of examples/ and tests/e2e/dags/ (retries, timeouts, branches, short-circuits, every
trigger rule, XCom at and over its limit, triggerDag and an external-task sensor),
creates runs of them one after another
and, until every run has ended and at least --kills kills were made, SIGKILLs the
operator at a random moment (0.2 to 2.5 s apart) and starts it again. Then each
run is compared with the local runner's run of the same DAG and logical date:
run state, every task's state, try number and XCom value must be equal, every try
must have exactly one Pod, and every XCom value the local run has must be stored.

The figures it prints (kills, runs, duplicate Pods, lost XCom values, mismatches)
are the result; tests/e2e/test_random_kills.py runs a short form of it in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from benchmarks.bench_operator import Cluster, Operator, install_crds
from kubeflowlite import dagfiles

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))
DAG_FILES = sorted((REPO / "examples").glob("*.yaml")) + sorted(
    (REPO / "tests" / "e2e" / "dags").glob("*.yaml")
)
DATE_LINE = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d [A-Z]+ \d{4}$")


@dataclass
class Result:
    kills: int = 0
    runs: int = 0
    duplicate_pods: int = 0
    duplicate_runs: int = 0
    lost_xcoms: int = 0
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self) -> bool:
        return not (self.duplicate_pods or self.duplicate_runs or self.lost_xcoms or self.mismatches)

    def summary(self) -> str:
        return (
            f"{self.kills} operator SIGKILLs over {self.runs} runs in {self.seconds:.0f} s: "
            f"{self.duplicate_pods} duplicate Pods, {self.duplicate_runs} duplicate DAGRuns, "
            f"{self.lost_xcoms} lost XCom values, "
            f"{len(self.mismatches)} runs unlike the local runner's"
        )


def local_run(path: Path, date: str, runs_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The DAG run locally (`kubeflowlite run`): the DAGRun object and its XCom values."""
    dag = dagfiles.load_dag_file(path)[0].dag_id  # a file may hold a triggerDag target after its DAG
    completed = subprocess.run(
        [sys.executable, "-m", "kubeflowlite", "run", str(path), "--dag", dag, "--date", date, "-o", "json",
         "--runs-dir", str(runs_dir)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if completed.returncode not in (0, 1):
        raise RuntimeError(f"local run of {path.name} failed: {completed.stderr[-2000:]}")
    run = json.loads(completed.stdout)
    found = list(runs_dir.glob(f"{run['spec']['dagName']}/*{date}*/xcom.json"))
    return run, (json.loads(found[0].read_text()) if found else {})


def outcome(run: dict[str, Any]) -> dict[str, Any]:
    tasks = run["status"]["tasks"]
    return {
        "run": run["status"]["state"],
        "tasks": {name: (t["state"], t.get("tryNumber", 0)) for name, t in sorted(tasks.items())},
    }


def same_value(local: Any, node: Any) -> bool:
    """Equal, but for two `date` lines (their time differs by nature), which must be close."""
    if isinstance(local, str) and isinstance(node, str) and DATE_LINE.match(local) and DATE_LINE.match(node):
        fmt = "%a %b %d %H:%M:%S %Z %Y"
        a, b = (datetime.strptime(v.replace("  ", " "), fmt) for v in (local, node))
        return abs(a - b) < timedelta(minutes=30)
    return bool(local == node)


class Killer:
    """The operator under test: started, SIGKILLed and started again."""

    def __init__(self, cluster: Cluster, namespace: str, log_dir: Path) -> None:
        self.cluster, self.namespace, self.log_dir = cluster, namespace, log_dir
        self.kills = 0
        self.operator = self._start()

    def _start(self) -> Operator:
        return Operator(self.cluster.kubeconfig, self.namespace, self.log_dir / f"operator-{self.kills}.log")

    def kill_and_restart(self) -> None:
        self.operator.process.kill()
        self.operator.process.wait(timeout=10)
        self.kills += 1
        self.operator = self._start()

    def stop(self) -> None:
        self.operator.stop()


def chaos(cluster: Cluster, *, runs: int, kills: int, seed: int, log_dir: Path) -> Result:
    rng = random.Random(seed)
    namespace = f"chaos-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError):
            cluster.kubectl("get", "serviceaccount", "default", "-n", namespace)
            break
        time.sleep(0.2)
    documents = {p: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in DAG_FILES}
    dags = {p: docs[0] for p, docs in documents.items()}  # the first DAG of a file is the one run
    for docs in documents.values():
        for manifest in docs:
            cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    plan = [(DAG_FILES[i % len(DAG_FILES)], f"2021-01-{1 + i // len(DAG_FILES):02d}") for i in range(runs)]
    names: list[tuple[Path, str, str]] = []
    result = Result(runs=runs)
    started = time.monotonic()
    killer = Killer(cluster, namespace, log_dir)
    try:
        pending = list(plan)
        while True:
            if pending and rng.random() < 0.6:
                path, date = pending.pop(0)
                dag = dags[path]["metadata"]["name"]
                name = f"{dag}-chaos-{date}"
                manifest = {
                    "apiVersion": "kubeflowlite.io/v1alpha1",
                    "kind": "DAGRun",
                    "metadata": {"name": name},
                    "spec": {"dagName": dag, "logicalDate": f"{date}T00:00:00Z"},
                }
                cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
                names.append((path, date, name))
            time.sleep(rng.uniform(0.2, 2.5))
            done = not pending and all(
                _state(cluster, namespace, n) in ("success", "failed") for _, _, n in names
            )
            if done and killer.kills >= kills:
                break
            if time.monotonic() - started > 1800:
                result.mismatches.append("timed out after 30 minutes")
                break
            killer.kill_and_restart()
    finally:
        killer.stop()
    result.kills = killer.kills
    result.seconds = time.monotonic() - started

    with tempfile.TemporaryDirectory() as tmp:
        for path, date, name in names:
            run = json.loads(cluster.kubectl("get", "dagrun", name, "-n", namespace, "-o", "json"))
            local, local_xcoms = local_run(path, date, Path(tmp))
            if outcome(run) != outcome(local):
                result.mismatches.append(f"{name}: node {outcome(run)} != local {outcome(local)}")
            pods = json.loads(
                cluster.kubectl(
                    "get", "pods", "-n", namespace, "-l", f"kubeflowlite.io/run={name}", "-o", "json"
                )
            )["items"]
            tries: dict[str, list[str]] = {}
            for pod in pods:
                labels = pod["metadata"]["labels"]
                tries.setdefault(labels["kubeflowlite.io/task"], []).append(labels["kubeflowlite.io/try"])
            for task, numbers in tries.items():
                result.duplicate_pods += len(numbers) - len(set(numbers))
                expected = run["status"]["tasks"].get(task, {}).get("tryNumber", 0)
                if sorted(int(n) for n in set(numbers)) != list(range(1, expected + 1)):
                    result.mismatches.append(
                        f"{name}: {task} has Pods for tries {sorted(numbers)}, {expected} tries"
                    )
            try:
                stored = (
                    json.loads(
                        cluster.kubectl("get", "configmap", f"{name}-xcom", "-n", namespace, "-o", "json")
                    ).get("data")
                    or {}
                )
            except RuntimeError:
                stored = {}
            for task, value in local_xcoms.items():
                if task not in stored:
                    result.lost_xcoms += 1
                elif not same_value(value, json.loads(stored[task])):
                    result.mismatches.append(f"{name}: XCom of {task} {stored[task]!r} != local {value!r}")
    # Runs the operator made itself (triggerDag) must not be doubled by a kill either.
    every_run = json.loads(cluster.kubectl("get", "dagruns", "-n", namespace, "-o", "json"))["items"]
    per_date = Counter((r["spec"]["dagName"], r["spec"]["logicalDate"]) for r in every_run)
    result.duplicate_runs = sum(count - 1 for count in per_date.values())
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    return result


def _state(cluster: Cluster, namespace: str, name: str) -> str:
    try:
        run = json.loads(cluster.kubectl("get", "dagrun", name, "-n", namespace, "-o", "json"))
    except RuntimeError:
        return ""
    return str((run.get("status") or {}).get("state") or "")


@contextlib.contextmanager
def real_plane(kubeconfig: str | None) -> Iterator[Cluster]:
    if kubeconfig:
        yield Cluster(Path(kubeconfig))
        return
    from controlplane.cluster import ControlPlane, build_tools

    bin_dir = build_tools()
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    plane = ControlPlane.start(bin_dir, nodes="real", node_images=("pause", "busybox"))
    try:
        yield Cluster(plane.kubeconfig, dict(plane.pids))
    finally:
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", help="a cluster with a real node and the CRDs (default: start one)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="kfl-bench-chaos-"))
    with real_plane(args.kubeconfig) as cluster:
        install_crds(cluster)
        result = chaos(cluster, runs=args.runs, kills=args.kills, seed=args.seed, log_dir=log_dir)
    print(f"seed {args.seed}: {result.summary()}")
    for line in result.mismatches:
        print(f"  {line}")
    print(f"operator logs: {log_dir}")
    return 0 if result.ok() else 1


if __name__ == "__main__":
    raise SystemExit(main())
