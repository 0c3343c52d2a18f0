"""The operator driving real Pods on the real node, beside the same node driven with no operator.

Run by hand (it starts a hermetic plane with its real node unless given --kubeconfig);
prints figures, it is not a timed test:

    .venv/bin/python -m benchmarks.bench_real_node [--chain 20] [--fanout 50]

All times are when this benchmark's own Pod watch sees a change (time.monotonic()
at receipt), so the watch's delay cancels out of every difference.

- chain, operator: a DAG of N bash tasks in a line (`true`). Per hop: the upstream's
  main container seen terminated -> the downstream Pod seen created (the operator's
  part) -> the downstream container seen started (the node's part).
- chain, raw: the same N Pods, each created by this benchmark the moment it sees the
  previous one's container terminated: what the node costs with no operator at all.
- fan-out: one task then N in parallel, and N Pods created at once with no operator:
  time from the first creation to the last container ended.

The operator's share of a hop is (terminated -> created) over (terminated -> started).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.bench_chaos import real_plane
from benchmarks.bench_operator import Cluster, Operator, PodWatch, dag, dagrun, install_crds
from kubeflowlite.k8s import kube

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))


class ContainerWatch(PodWatch):
    """PodWatch that also records when the main container was first seen started and ended."""

    def __init__(self, config: kube.ClusterConfig, namespace: str) -> None:
        super().__init__(config, namespace)
        self.container_started: dict[str, float] = {}
        self.container_ended: dict[str, float] = {}

    def run(self) -> None:
        # The watch ends with the plane when the benchmark is done: nothing to report then.
        with contextlib.suppress(OSError, http.client.HTTPException):
            super().run()

    def _record(self, event: dict[str, Any], now: float) -> None:
        super()._record(event, now)
        pod = event.get("object") or {}
        name = (pod.get("metadata") or {}).get("name")
        if not name or event.get("type") == "BOOKMARK":
            return
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            state = status.get("state") or {}
            if state.get("running") or state.get("terminated"):
                self.container_started.setdefault(name, now)
            if state.get("terminated"):
                self.container_ended.setdefault(name, now)


def _namespace(cluster: Cluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            cluster.kubectl("get", "serviceaccount", "default", "-n", name)
            return name
        except RuntimeError:
            time.sleep(0.2)
    raise RuntimeError(f"namespace {name} has no default ServiceAccount")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {statistics.median(values) * 1000:.0f} ms, p95 {_pct(values, 0.95) * 1000:.0f} ms"


def _raw_pod(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"kubeflowlite.io/run": "raw"}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}],
            },
        }
    )


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def chain_with_operator(cluster: Cluster, n: int, log_dir: Path) -> dict[str, list[float]]:
    namespace = _namespace(cluster, "bench-chain")
    config = kube.load_cluster_config(str(cluster.kubeconfig))
    watch = ContainerWatch(config, namespace)
    watch.start()
    watch.ready.wait(10)
    operator = Operator(cluster.kubeconfig, namespace, log_dir / "operator-chain.log")
    try:
        tasks = [{"name": "t0", "bash": "true"}] + [
            {"name": f"t{i}", "bash": "true", "dependsOn": [f"t{i - 1}"]} for i in range(1, n)
        ]
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=dag("chain", tasks))
        cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=dagrun("chain-run", "chain"))
        _wait(lambda: len(watch.container_ended) >= n, 60 + 5 * n, "the chain to finish")
    finally:
        operator.stop()
    order = sorted(watch.created, key=lambda pod: watch.created[pod])
    hops: dict[str, list[float]] = {"operator": [], "node": [], "total": []}
    for upstream, downstream in itertools.pairwise(order):
        ended = watch.container_ended[upstream]
        hops["operator"].append(watch.created[downstream] - ended)
        hops["node"].append(watch.container_started[downstream] - watch.created[downstream])
        hops["total"].append(watch.container_started[downstream] - ended)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    return hops


def chain_raw(cluster: Cluster, n: int) -> dict[str, list[float]]:
    namespace = _namespace(cluster, "bench-raw")
    config = kube.load_cluster_config(str(cluster.kubeconfig))
    watch = ContainerWatch(config, namespace)
    watch.start()
    watch.ready.wait(10)
    names = [f"raw-{i}" for i in range(n)]
    cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=_raw_pod(names[0]))
    for i in range(1, n):
        _wait(lambda: names[i - 1] in watch.container_ended, 120, f"{names[i - 1]} to end")  # noqa: B023
        cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=_raw_pod(names[i]))
    _wait(lambda: names[-1] in watch.container_ended, 120, "the last raw Pod to end")
    hops: dict[str, list[float]] = {"create": [], "node": [], "total": []}
    for upstream, downstream in itertools.pairwise(names):
        ended = watch.container_ended[upstream]
        hops["create"].append(watch.created[downstream] - ended)
        hops["node"].append(watch.container_started[downstream] - watch.created[downstream])
        hops["total"].append(watch.container_started[downstream] - ended)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    return hops


def fanout(cluster: Cluster, n: int, log_dir: Path, *, operator: bool) -> float:
    namespace = _namespace(cluster, "bench-fan" if operator else "bench-fanraw")
    config = kube.load_cluster_config(str(cluster.kubeconfig))
    watch = ContainerWatch(config, namespace)
    watch.start()
    watch.ready.wait(10)
    process = Operator(cluster.kubeconfig, namespace, log_dir / "operator-fan.log") if operator else None
    try:
        if process is not None:
            tasks = [{"name": "start", "bash": "true"}] + [
                {"name": f"w{i}", "bash": "true", "dependsOn": ["start"]} for i in range(n)
            ]
            cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=dag("fan", tasks))
            cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=dagrun("fan-run", "fan"))
            _wait(lambda: len(watch.container_ended) >= n + 1, 600, "the fan-out to finish")
            first = min(t for pod, t in watch.created.items() if not pod.endswith("-start-1"))
        else:
            pods = "\n---\n".join(_raw_pod(f"fan-{i}") for i in range(n))
            cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=pods)
            _wait(lambda: len(watch.container_ended) >= n, 600, "the raw fan-out to finish")
            first = min(watch.created.values())
    finally:
        if process is not None:
            process.stop()
    last = max(t for pod, t in watch.container_ended.items() if not pod.endswith("-start-1"))
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    return last - first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--kubeconfig", help="use this cluster (it must have a real node) instead of starting one"
    )
    parser.add_argument("--chain", type=int, default=20)
    parser.add_argument("--fanout", type=int, default=50)
    args = parser.parse_args(argv)
    log_dir = Path("/tmp") / f"kfl-bench-real-{uuid.uuid4().hex[:6]}"
    log_dir.mkdir()
    with real_plane(args.kubeconfig) as cluster:
        install_crds(cluster)
        operator_hops = chain_with_operator(cluster, args.chain, log_dir)
        raw_hops = chain_raw(cluster, args.chain)
        fan = fanout(cluster, args.fanout, log_dir, operator=True)
        fan_raw = fanout(cluster, args.fanout, log_dir, operator=False)
    share = statistics.median(operator_hops["operator"]) / statistics.median(operator_hops["total"])
    print(
        f"chain of {args.chain}, operator: container ended -> next Pod created  {_ms(operator_hops['operator'])}"
    )
    print(
        f"                                next Pod created -> container started {_ms(operator_hops['node'])}"
    )
    print(
        f"                                hop in all                            {_ms(operator_hops['total'])}"
    )
    print(f"chain of {args.chain}, raw:      container ended -> next Pod created  {_ms(raw_hops['create'])}")
    print(f"                                next Pod created -> container started {_ms(raw_hops['node'])}")
    print(f"                                hop in all                            {_ms(raw_hops['total'])}")
    print(f"operator's share of a hop (medians): {share * 100:.0f} %")
    print(
        f"fan-out of {args.fanout}: operator {fan:.1f} s, raw Pods {fan_raw:.1f} s (first created -> last ended)"
    )
    print(f"operator logs: {log_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
