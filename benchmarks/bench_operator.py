"""The operator on the hermetic cluster: hop latency, fan-out throughput, API writes, memory.

Run by hand (it starts its own control plane unless given --kubeconfig); prints
figures, it is not a timed test:

    .venv/bin/python -m benchmarks.bench_operator [--chain 50] [--fanout 1000] [--inflight 1000,10000]

Scenarios, each in a fresh namespace with a fresh `kubeflowlite operator` process:

- chain: N tasks in a line. Per-hop latency = when this benchmark's own Pod watch
  sees the upstream Pod turn Succeeded -> when it sees the downstream Pod created
  (time.monotonic() at receipt; both events travel the same watch, so the watch's
  own delay cancels out; KWOK's 1 s timestamps are not used). Goal: p50 < 100 ms.
- fanout: one run of N independent tasks (maxActiveTasks N). Pods created per
  second (first to last creation seen), time to run success, and the CPU seconds
  each process spent meanwhile (operator, kube-apiserver, etcd, scheduler, KWOK)
  to show where the time goes.
- API writes per task instance, from the operator's own counter
  kubeflowlite_api_requests_total (verbs create/patch/delete), per scenario.
  Goal: <= 4.
- inflight: runs of 1,000 tasks whose Pods stay Running (KWOK delay 1h); the
  operator's RSS once 1,000 and once 10,000 task instances are in flight.
  Goal: < 150 MiB at 10,000. With `--memory-report FILE` the operator traces its
  allocations (k8s.memdebug) and writes where its memory is to FILE at each point.
- fanout also reports the operator's CPU per task instance (goal < 5 ms) and how
  much faster Pods were created than the scheduler bound them (goal >= 5x); with
  `--fanout 1000,200` it runs both widths (the goals are judged on the 1,000-task
  one, GOAL_WIDTH), each --trials times (default 3, each
  with a fresh operator and namespace on the same plane), and judges the goals on
  the medians: on 2 cores the API server's share of the CPU, which sets how fast
  Pods can be created, varies from run to run. runs: N one-task runs created at once
  (Argo Workflows v3.7.18's controller spent 1.8 CPU-s on 50 on this plane).
- startup: N Pods of finished runs kept in the namespace (created directly with a
  finished phase, as `podCleanup: keep` leaves them), then the operator starts with
  one new run waiting: seconds from its start to that run's first Pod. Goal < 2 s
  at 10,000 kept Pods, and no slower than with none.
- large: one run of N tasks (fan-out) and, while it runs, a chain of 20 tasks in
  another DAG: the small run's hop latency while the large run's status is written,
  the large run's object size against etcd's 1.5 MiB request limit, and the
  operator's peak RSS (VmHWM) over the run. Goal at 10,000 tasks: < 150 MiB, as
  for inflight.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubeflowlite.k8s import kube, memdebug, resources

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))
from controlplane.ports import free_port as free_port  # noqa: E402 (needs hack/ on the path; bench_ui's too)
from controlplane.ports import free_ports, wait_serving  # noqa: E402

HOP_GOAL_MS = 100.0
WRITES_GOAL = 4.0
CPU_PER_TASK_GOAL_MS = 5.0
CREATE_OVER_BIND_GOAL = 5.0
GOAL_WIDTH = 1000
"""The fan-out the CPU and creation goals are set for (issue 11: a 1,000-task fan-out). A narrower
one is shown for comparison (200: Argo's figure); its Pods are bound in about 2 s, most of them
inside kube-scheduler's burst of 100 requests, so creating them 5x faster is not asked of it."""
RSS_GOAL_MIB = 150.0
STARTUP_GOAL_S = 2.0
ETCD_LIMIT_BYTES = 1536 * 1024
ARGO_ONE_STEP_CPU_S = 1.8
"""Argo Workflows v3.7.18's workflow-controller on 50 one-step runs, measured earlier on this plane
(issue 11); its 200-task fan-out figure was 16 % below ours at the time (see the report's baseline)."""
WRITE_VERBS = ("create", "patch", "delete", "apply")
DAY = "2024-01-01T00:00:00Z"


# --- the cluster --------------------------------------------------------------------------------


@dataclass
class Cluster:
    kubeconfig: Path
    pids: dict[str, int] = field(default_factory=dict)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result.stdout


@contextlib.contextmanager
def cluster(kubeconfig: str | None) -> Iterator[Cluster]:
    if kubeconfig:
        yield Cluster(Path(kubeconfig))
        return
    from controlplane.cluster import ControlPlane, build_tools

    bin_dir = build_tools()
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    plane = ControlPlane.start(bin_dir)
    print(f"control plane ready in {plane.started_seconds:.1f}s", flush=True)
    try:
        yield Cluster(plane.kubeconfig, dict(plane.pids))
    finally:
        plane.stop()


def install_crds(cl: Cluster) -> None:
    """The committed crds/, applied and Established."""
    for path in sorted((REPO / "crds").glob("*.yaml")):
        cl.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    cl.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/dags.kubeflowlite.io",
        "crd/dagruns.kubeflowlite.io",
    )


class Operator:
    """`kubeflowlite operator` for one namespace, with its metrics port."""

    def __init__(self, kubeconfig: Path, namespace: str, log: Path) -> None:
        self.spawned = time.monotonic()
        self.metrics_port, health = free_ports(2)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubeflowlite",
                "operator",
                f"--kubeconfig={kubeconfig}",
                f"--namespace={namespace}",
                f"--metrics-port={self.metrics_port}",
                f"--liveness=http://127.0.0.1:{health}/healthz",
                "--log-level=warning",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        problem = wait_serving(self.process, f"http://127.0.0.1:{health}/healthz")
        if problem is not None:
            raise RuntimeError(f"operator {problem}; see {log}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=60) as response:
            return str(response.read().decode())

    def reconciles(self) -> str:
        """How many run reconciles ran and their mean duration."""
        text = self.metrics()
        count = re.search(r'^kubeflowlite_reconcile_duration_seconds_count\{kind="run"\} (\S+)$', text, re.M)
        total = re.search(r'^kubeflowlite_reconcile_duration_seconds_sum\{kind="run"\} (\S+)$', text, re.M)
        if not count or not total or not float(count.group(1)):
            return "no run reconciles"
        n, seconds = float(count.group(1)), float(total.group(1))
        return f"{n:.0f} run reconciles, mean {seconds / n * 1000:.1f} ms, total {seconds:.1f} s"

    def writes(self) -> dict[tuple[str, str], float]:
        text = self.metrics()
        counts: dict[tuple[str, str], float] = {}
        pattern = re.compile(
            r'^kubeflowlite_api_requests_total\{code="(\d+)",resource="([^"]+)",verb="([^"]+)"\} (\S+)$'
        )
        for line in text.splitlines():
            match = pattern.match(line)
            if match and match.group(3) in WRITE_VERBS:
                key = (match.group(3), match.group(2))
                counts[key] = counts.get(key, 0.0) + float(match.group(4))
        return counts

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory now (VmRSS) or at its peak so far (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its children that were waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def processes(cluster: Cluster, operator: Operator) -> dict[str, int]:
    """The pids to account CPU to: the operator and the control plane's components."""
    found = {"operator": operator.pid}
    for name, pid in cluster.pids.items():
        # Components are started through a process group; find the binary itself.
        found[name] = _leaf(pid)
    return found


def _leaf(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        kids = children.read_text().split()
    except OSError:
        return pid
    return _leaf(int(kids[0])) if kids else pid


# --- watching Pods from the benchmark ---------------------------------------------------------------


def watch_events(
    config: kube.ClusterConfig, path: str, connected: Callable[[], None] = lambda: None
) -> Iterator[tuple[dict[str, Any], float]]:
    """The events of one watch request and when each arrived (monotonic), until the server ends it."""
    url = urlparse(config.server)
    context = kube.ssl_context(config)
    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
    connection = http.client.HTTPSConnection(url.hostname or "", url.port, context=context or None)  # type: ignore[arg-type]
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        connected()
        buffer = b""
        while chunk := response.read1(1 << 16):
            now = time.monotonic()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line), now
    finally:
        connection.close()


class PodWatch(threading.Thread):
    """Records, by Pod name, when it was first seen and when it was first seen Succeeded (monotonic)."""

    def __init__(self, config: kube.ClusterConfig, namespace: str) -> None:
        super().__init__(daemon=True)
        self.config = config
        self.namespace = namespace
        self.created: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self.bound: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.running: set[str] = set()
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            self._watch()
        except (http.client.HTTPException, OSError, ValueError):
            return  # the control plane stopped under it at the end of the scenario

    def _watch(self) -> None:
        version = ""
        while True:  # a watch the server ends is resumed from the last version seen
            path = (
                f"/api/v1/namespaces/{self.namespace}/pods?watch=1&labelSelector=kubeflowlite.io%2Frun"
                f"&allowWatchBookmarks=true&timeoutSeconds=3600&resourceVersion={version}"
            )
            for event, now in watch_events(self.config, path, connected=self.ready.set):
                if event.get("type") == "ERROR":
                    print(
                        f"  (pod watch: {event.get('object', {}).get('message')}; restarting)",
                        file=sys.stderr,
                    )
                    version = ""
                    continue
                version = (event.get("object") or {}).get("metadata", {}).get("resourceVersion", version)
                self._record(event, now)

    def _record(self, event: dict[str, Any], now: float) -> None:
        pod = event.get("object") or {}
        name = (pod.get("metadata") or {}).get("name")
        if not name:
            return
        if event.get("type") == "BOOKMARK":
            return
        self.created.setdefault(name, now)
        if (pod.get("spec") or {}).get("nodeName"):
            self.bound.setdefault(name, now)
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Running", "Succeeded", "Failed"):
            self.started.setdefault(name, now)
        if phase == "Succeeded":
            self.succeeded.setdefault(name, now)
        if phase == "Running":
            self.running.add(name)
        else:
            self.running.discard(name)


# --- scenarios ------------------------------------------------------------------------------------


def dag(name: str, tasks: list[dict[str, Any]], **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "kubeflowlite.io/v1alpha1",
            "kind": "DAG",
            "metadata": {"name": name},
            "spec": {"tasks": tasks, "maxActiveTasks": 100000, **spec},
        }
    )


def dagrun(name: str, dag_name: str, logical_date: str = DAY) -> str:
    return json.dumps(
        {
            "apiVersion": "kubeflowlite.io/v1alpha1",
            "kind": "DAGRun",
            "metadata": {"name": name},
            "spec": {"dagName": dag_name, "logicalDate": logical_date},
        }
    )


@contextlib.contextmanager
def scenario(cl: Cluster, name: str, tmp: Path) -> Iterator[tuple[str, Operator, PodWatch]]:
    namespace = f"bench-{name}-{int(time.time())}"
    cl.kubectl("create", "namespace", namespace)
    operator = Operator(cl.kubeconfig, namespace, tmp / f"operator-{name}.log")
    config = kube.load_cluster_config(str(cl.kubeconfig))
    watch = PodWatch(config, namespace)
    watch.start()
    watch.ready.wait(10)
    try:
        yield namespace, operator, watch
    finally:
        operator.stop()
        cl.kubectl("delete", "namespace", namespace, "--wait=false")


def wait_run(cl: Cluster, namespace: str, run: str, timeout: float) -> dict[str, Any]:
    """The run once it has finished, seen through a watch on it.

    (Polling with `kubectl get` four times a second cost the machine about a quarter of a
    core: CPU taken from the API server whose creates the fan-out scenario measures.)
    """
    config = kube.load_cluster_config(str(cl.kubeconfig))
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        path = (
            f"/apis/{resources.GROUP}/{resources.VERSION}/namespaces/{namespace}/dagruns"
            f"?watch=1&fieldSelector=metadata.name%3D{run}&timeoutSeconds={max(1, int(left))}"
        )  # no resourceVersion: the watch begins with the run as it is now
        for event, _ in watch_events(config, path):
            found = event.get("object") or {}
            if (found.get("status") or {}).get("state") in ("success", "failed"):
                return dict(found)
    raise RuntimeError(f"run {run} did not finish in {timeout:g}s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def report_writes(operator: Operator, instances: int) -> float:
    writes = operator.writes()
    total = sum(writes.values())
    detail = ", ".join(
        f"{verb} {resource}: {int(count)}" for (verb, resource), count in sorted(writes.items())
    )
    per = total / instances
    print(f"  API writes: {int(total)} for {instances} task instances = {per:.2f} per instance ({detail})")
    return per


def chain(cl: Cluster, length: int, tmp: Path) -> tuple[float, float]:
    print(f"chain of {length} tasks")
    with scenario(cl, "chain", tmp) as (namespace, operator, watch):
        tasks = [{"name": "t000", "bash": "true"}]
        tasks += [
            {"name": f"t{i:03d}", "bash": "true", "dependsOn": [f"t{i - 1:03d}"]} for i in range(1, length)
        ]
        cl.kubectl("apply", "-n", namespace, "-f", "-", stdin=dag("chain", tasks))
        started = time.monotonic()
        cl.kubectl("create", "-n", namespace, "-f", "-", stdin=dagrun("chain-run", "chain"))
        result = wait_run(cl, namespace, "chain-run", timeout=600)
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        by_task = {name.rsplit("-", 2)[-2]: name for name in watch.created}
        hops = []
        for i in range(1, length):
            upstream, downstream = by_task.get(f"t{i - 1:03d}"), by_task.get(f"t{i:03d}")
            if upstream in watch.succeeded and downstream in watch.created:
                hops.append((watch.created[downstream] - watch.succeeded[upstream]) * 1000)
        p50, p99 = statistics.median(hops), percentile(hops, 0.99)
        print(
            f"  run {result['status']['state']} in {elapsed:.1f}s ({elapsed / length:.2f}s per task incl. Pod start)"
        )
        print(f"  hop latency (upstream Succeeded seen -> downstream created seen), {len(hops)} hops:")
        print(
            f"    p50 {p50:.1f} ms   p99 {p99:.1f} ms   max {max(hops):.1f} ms   (goal p50 < {HOP_GOAL_MS:g} ms)"
        )
        print(f"  operator: {operator.reconciles()}")
        writes = report_writes(operator, length)
        return p50, writes


def fanout(cl: Cluster, width: int, tmp: Path, trials: int) -> bool:
    """`trials` runs of the fan-out, each with a fresh operator; goals judged on the medians."""
    ratios, per_task, missed = [], [], False
    for trial in range(1, trials + 1):
        print(f"fan-out of {width} tasks" + (f", trial {trial} of {trials}" if trials > 1 else ""))
        ratio, cpu_ms, writes_missed = fanout_once(cl, width, tmp, trial)
        ratios.append(ratio)
        per_task.append(cpu_ms)
        missed |= writes_missed
    ratio, cpu_ms = statistics.median(ratios), statistics.median(per_task)
    judged = width >= GOAL_WIDTH
    if trials > 1:
        goals = (
            f" (goals: < {CPU_PER_TASK_GOAL_MS:g} ms, >= {CREATE_OVER_BIND_GOAL:g}x)"
            if judged
            else f" (the goals are set for {GOAL_WIDTH} tasks)"
        )
        print(
            f"fan-out of {width}, median of {trials}: operator CPU {cpu_ms:.1f} ms per task instance, "
            f"Pods created {ratio:.1f}x faster than bound (trials {', '.join(f'{r:.1f}x' for r in ratios)})"
            + goals
        )
    return missed or (judged and (cpu_ms >= CPU_PER_TASK_GOAL_MS or ratio < CREATE_OVER_BIND_GOAL))


def fanout_once(cl: Cluster, width: int, tmp: Path, trial: int) -> tuple[float, float, bool]:
    """One fan-out run: (created vs bound, operator CPU ms per task, API writes goal missed)."""
    with scenario(cl, f"fanout{width}-{trial}", tmp) as (namespace, operator, watch):
        tasks = [{"name": f"t{i:04d}", "bash": "true"} for i in range(width)]
        cl.kubectl("apply", "-n", namespace, "-f", "-", stdin=dag("fanout", tasks))
        pids = processes(cl, operator)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        cl.kubectl("create", "-n", namespace, "-f", "-", stdin=dagrun("fanout-run", "fanout"))
        result = wait_run(cl, namespace, "fanout-run", timeout=1800)
        elapsed = time.monotonic() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        created = sorted(watch.created.values())
        spread = created[-1] - created[0] if len(created) > 1 else 0.0
        print(f"  run {result['status']['state']} in {elapsed:.1f}s")
        print(f"  Pod creation rate: {len(created) / spread if spread else float('inf'):.0f} Pods/s")
        print(
            "  CPU seconds during the run: "
            + ", ".join(f"{n} {s:.1f}" for n, s in sorted(cpu.items(), key=lambda x: -x[1]))
        )
        for stage, times in (
            ("created (operator)", watch.created),
            ("bound (scheduler)", watch.bound),
            ("running (KWOK)", watch.started),
            ("succeeded (KWOK)", watch.succeeded),
        ):
            moments = sorted(times.values())
            if moments:
                print(
                    f"  Pods {stage}: {len(moments)}, first after {moments[0] - started:.2f}s, "
                    f"last after {moments[-1] - started:.2f}s"
                )
        bound = sorted(watch.bound.values())
        bind_spread = bound[-1] - bound[0] if len(bound) > 1 else 0.0
        ratio = bind_spread / spread if spread else float("inf")
        per_task = cpu["operator"] / width * 1000
        goals = width >= GOAL_WIDTH
        print(
            f"  operator CPU: {cpu['operator']:.2f} s = {per_task:.1f} ms per task instance"
            + (f" (goal < {CPU_PER_TASK_GOAL_MS:g})" if goals else "")
            + f"; Pods created {ratio:.1f}x faster than bound"
            + (f" (goal >= {CREATE_OVER_BIND_GOAL:g}x)" if goals else "")
        )
        print(f"  operator: {operator.reconciles()}; RSS after the run {rss_mib(operator.pid):.0f} MiB")
        return ratio, per_task, report_writes(operator, width) > WRITES_GOAL


def inflight(cl: Cluster, counts: list[int], tmp: Path) -> bool:
    per_run = 1000
    missed = False
    print(f"in flight: {', '.join(map(str, counts))} task instances (runs of {per_run} Running Pods)")
    with scenario(cl, "inflight", tmp) as (namespace, operator, watch):
        tasks = [
            {
                "name": f"t{i:04d}",
                "bash": "sleep 3600",
                "pod": {"metadata": {"annotations": {"kwok.kubeflowlite.io/delay": "1h"}}},
            }
            for i in range(per_run)
        ]
        cl.kubectl("apply", "-n", namespace, "-f", "-", stdin=dag("inflight", tasks))
        print(f"  operator RSS idle: {rss_mib(operator.pid):.0f} MiB")
        runs = 0
        started = time.monotonic()
        for target in sorted(counts):
            while runs * per_run < target:
                runs += 1
                cl.kubectl(
                    "create",
                    "-n",
                    namespace,
                    "-f",
                    "-",
                    stdin=dagrun(f"inflight-{runs}", "inflight", f"2024-01-{runs:02d}T00:00:00Z"),
                )
            deadline = time.monotonic() + 3600
            while len(watch.running) < target and time.monotonic() < deadline:
                time.sleep(1)
            time.sleep(5)  # let the reconciles that follow the last Pod events settle
            rss = rss_mib(operator.pid)
            print(
                f"  {len(watch.running)} task Pods Running after {time.monotonic() - started:.0f}s: "
                f"operator RSS {rss:.0f} MiB; load average {os.getloadavg()[0]:.1f}"
            )
            if os.environ.get(memdebug.ENV):
                os.kill(operator.pid, signal.SIGUSR2)
                time.sleep(60)  # the report walks every traced allocation
            missed |= target >= 10000 and rss >= RSS_GOAL_MIB
    return missed


def one_step_runs(cl: Cluster, count: int, tmp: Path) -> bool:
    print(f"{count} one-step runs created at once")
    with scenario(cl, "runs", tmp) as (namespace, operator, _):
        cl.kubectl(
            "apply", "-n", namespace, "-f", "-", stdin=dag("onestep", [{"name": "only", "bash": "true"}])
        )
        pids = processes(cl, operator)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        manifests = [
            json.loads(
                dagrun(f"onestep-{i}", "onestep", f"2024-{1 + i // 28:02d}-{1 + i % 28:02d}T00:00:00Z")
            )
            for i in range(count)
        ]
        cl.kubectl(
            "create",
            "-n",
            namespace,
            "-f",
            "-",
            stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": manifests}),
        )
        for manifest in manifests:
            wait_run(cl, namespace, manifest["metadata"]["name"], timeout=600)
        elapsed = time.monotonic() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        print(f"  all {count} runs finished in {elapsed:.1f}s")
        print(
            "  CPU seconds during the runs: "
            + ", ".join(f"{n} {s:.2f}" for n, s in sorted(cpu.items(), key=lambda x: -x[1]))
        )
        print(
            f"  operator CPU {cpu['operator']:.2f} s = {cpu['operator'] / count * 1000:.1f} ms per run "
            f"(Argo v3.7.18's controller: {ARGO_ONE_STEP_CPU_S:g} s for 50)"
        )
        print(f"  operator: {operator.reconciles()}")
        report_writes(operator, count)
        return count == 50 and cpu["operator"] >= ARGO_ONE_STEP_CPU_S


def kept_pods(cl: Cluster, namespace: str, count: int, per_run: int = 100) -> None:
    """`count` Pods of finished runs (`per_run` each), created directly with phase Succeeded."""
    import asyncio

    runs = max(1, count // per_run)
    finished = {"phase": "Succeeded", "startTime": "2024-01-01T00:00:00Z", "containerStatuses": [
        {"name": "main", "image": "busybox:1.36", "imageID": "", "ready": False, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                  "startedAt": "2024-01-01T00:00:00Z", "finishedAt": "2024-01-01T00:00:01Z"}}}
    ]}  # fmt: skip
    config = kube.load_cluster_config(str(cl.kubeconfig))

    async def make() -> None:
        async with kube.Kube(config, max_connections=32) as client:
            gate = asyncio.Semaphore(32)

            async def one(run: str, task: str) -> None:
                name = f"{run}-{task}-1"
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": name,
                        "labels": {"kubeflowlite.io/run": run, "kubeflowlite.io/task": task,
                                   "kubeflowlite.io/try": "1", "kubeflowlite.io/dag": "history"},
                        "annotations": {"kubeflowlite.io/task-id": task, "kubeflowlite.io/run-name": run},
                    },
                    # No scheduler answers to this name, so no node (and no KWOK) ever touches the Pod.
                    "spec": {"schedulerName": "kfl-bench-none", "restartPolicy": "Never",
                             "containers": [{"name": "main", "image": "busybox:1.36"}]},
                }  # fmt: skip
                async with gate:
                    await client.create(kube.PODS, namespace, pod)
                    await client.patch(kube.PODS, namespace, name, {"status": finished}, subresource="status")

            for r in range(runs):
                run = f"history-{r:04d}"
                status = {
                    "state": "success",
                    "startTime": "2024-01-01T00:00:00Z",
                    "endTime": "2024-01-01T00:01:00Z",
                    "tasksSummary": f"{per_run}/{per_run}",
                    "tasks": {
                        f"t{i:03d}": {"state": "success", "tryNumber": 1, "exitCode": 0}
                        for i in range(per_run)
                    },
                }
                body = json.loads(
                    dagrun(
                        run, "history", f"2020-{1 + r // 28 % 12:02d}-{1 + r % 28:02d}T{r // 336:02d}:00:00Z"
                    )
                )
                await client.create(kube.DAGRUNS, namespace, body)
                await client.patch(kube.DAGRUNS, namespace, run, {"status": status}, subresource="status")
                await asyncio.gather(*(one(run, f"t{i:03d}") for i in range(per_run)))

    asyncio.run(make())


def startup(cl: Cluster, counts: list[int], tmp: Path) -> bool:
    missed = False
    for count in counts:
        print(f"start-up with {count} kept Pods of finished runs in the namespace")
        namespace = f"bench-startup{count}-{int(time.time())}"
        cl.kubectl("create", "namespace", namespace)
        try:
            tasks = [{"name": f"t{i:03d}", "bash": "true"} for i in range(100)]
            cl.kubectl("apply", "-n", namespace, "-f", "-", stdin=dag("history", tasks, podCleanup="keep"))
            made = time.monotonic()
            kept_pods(cl, namespace, count)
            if count:
                print(f"  {count} finished Pods created in {time.monotonic() - made:.0f}s")
            cl.kubectl(
                "apply", "-n", namespace, "-f", "-", stdin=dag("fresh", [{"name": "first", "bash": "true"}])
            )
            cl.kubectl("create", "-n", namespace, "-f", "-", stdin=dagrun("fresh-run", "fresh"))
            config = kube.load_cluster_config(str(cl.kubeconfig))
            watch = PodWatch(config, namespace)
            watch.start()
            watch.ready.wait(10)
            operator = Operator(cl.kubeconfig, namespace, tmp / f"operator-startup{count}.log")
            try:
                deadline = time.monotonic() + 300
                while (
                    not any(n.startswith("fresh-run-") for n in list(watch.created))
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.005)
                cpu = cpu_seconds(operator.pid)
                first = min(
                    (t for n, t in list(watch.created.items()) if n.startswith("fresh-run-")), default=None
                )
                if first is None:
                    print("  the new run's Pod never appeared")
                    missed = True
                    continue
                seconds = first - operator.spawned
                print(
                    f"  operator start -> first Pod of the new run: {seconds:.2f}s "
                    f"(goal < {STARTUP_GOAL_S:g}s), operator CPU by then {cpu:.2f}s; "
                    f"RSS {rss_mib(operator.pid):.0f} MiB; load average {os.getloadavg()[0]:.1f}"
                )
                missed |= count >= 10000 and seconds >= STARTUP_GOAL_S
            finally:
                operator.stop()
        finally:
            cl.kubectl("delete", "namespace", namespace, "--wait=false")
    return missed


def large(cl: Cluster, width: int, tmp: Path) -> bool:
    print(f"one run of {width} tasks, and a chain of 20 tasks beside it")
    with scenario(cl, "large", tmp) as (namespace, operator, watch):
        tasks = [{"name": f"t{i:05d}", "bash": "true"} for i in range(width)]
        cl.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=dag("large", tasks))
        small = [{"name": "s000", "bash": "true"}]
        small += [{"name": f"s{i:03d}", "bash": "true", "dependsOn": [f"s{i - 1:03d}"]} for i in range(1, 20)]
        cl.kubectl("apply", "-n", namespace, "-f", "-", stdin=dag("small", small))
        pids = processes(cl, operator)
        cpu_before = cpu_seconds(pids["operator"])
        started = time.monotonic()
        cl.kubectl("create", "-n", namespace, "-f", "-", stdin=dagrun("large-run", "large"))
        while len(watch.created) < width // 10 and time.monotonic() - started < 600:
            time.sleep(0.1)
        cl.kubectl("create", "-n", namespace, "-f", "-", stdin=dagrun("small-run", "small"))
        small_result = wait_run(cl, namespace, "small-run", timeout=1200)
        large_done = len([n for n in watch.succeeded if n.startswith("large-run-")])
        hops = []
        for i in range(1, 20):
            upstream = next((n for n in watch.succeeded if n.startswith(f"small-run-s{i - 1:03d}-")), None)
            downstream = next((n for n in watch.created if n.startswith(f"small-run-s{i:03d}-")), None)
            if upstream and downstream:
                hops.append((watch.created[downstream] - watch.succeeded[upstream]) * 1000)
        print(
            f"  small run {small_result['status']['state']} while the large run had {large_done} of {width} "
            f"tasks done; its hops: p50 {statistics.median(hops):.1f} ms, max {max(hops):.1f} ms "
            f"(goal p50 < {HOP_GOAL_MS:g} ms)"
        )
        midway = len(cl.kubectl("get", "dagrun", "large-run", "-n", namespace, "-o", "json").encode())
        print(f"  the large run's object meanwhile: {midway / 1024:.0f} KiB (as kubectl prints it, indented)")
        result = wait_run(cl, namespace, "large-run", timeout=3600)
        elapsed = time.monotonic() - started
        body = cl.kubectl("get", "dagrun", "large-run", "-n", namespace, "-o", "json")
        compact = json.dumps(json.loads(body), separators=(",", ":"))
        size = len(compact.encode())
        print(
            f"  large run {result['status']['state']} in {elapsed:.0f}s; its object is {size / 1024:.0f} KiB "
            f"({size / width:.0f} bytes per task; etcd's limit {ETCD_LIMIT_BYTES // 1024} KiB)"
        )
        cpu = cpu_seconds(pids["operator"]) - cpu_before
        reconciles = operator.reconciles()  # a scrape of /metrics, as Prometheus makes: counted in the peak
        peak = rss_mib(operator.pid, "VmHWM")
        print(
            f"  operator CPU {cpu:.1f} s for {width + 20} task instances; {reconciles}; "
            f"RSS {rss_mib(operator.pid):.0f} MiB, peak {peak:.0f} MiB "
            f"(goal < {RSS_GOAL_MIB:g}: {'met' if peak < RSS_GOAL_MIB else 'missed'})"
        )
        if os.environ.get(memdebug.ENV):
            os.kill(operator.pid, signal.SIGUSR2)
            time.sleep(60)  # the report walks every traced allocation
        return (
            size >= ETCD_LIMIT_BYTES
            or statistics.median(hops) >= HOP_GOAL_MS
            or (width >= 10000 and peak >= RSS_GOAL_MIB)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_operator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", help="Use this cluster instead of starting the hermetic one.")
    parser.add_argument("--chain", type=int, default=50)
    parser.add_argument("--fanout", default="1000,200", help="Comma-separated widths; empty to skip.")
    parser.add_argument(
        "--trials", type=int, default=3, help="Fan-out runs per width; goals judged on the medians."
    )
    parser.add_argument("--runs", type=int, default=50, help="One-step runs created at once; 0 to skip.")
    parser.add_argument("--startup", default="0,10000", help="Kept Pods (comma-separated); empty to skip.")
    parser.add_argument("--large", type=int, default=10000, help="Tasks of the large run; 0 to skip.")
    parser.add_argument("--inflight", default="1000,10000", help="Comma-separated counts; empty to skip.")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/kfl-bench-operator"))
    parser.add_argument(
        "--memory-report",
        type=Path,
        help="The operator traces its memory and reports to this file (inflight, large).",
    )
    args = parser.parse_args(argv)
    if args.memory_report:
        os.environ[memdebug.ENV] = str(args.memory_report.resolve())
    args.logs.mkdir(parents=True, exist_ok=True)
    missed = False
    with cluster(args.kubeconfig) as cl:
        install_crds(cl)
        if args.chain:
            p50, writes = chain(cl, args.chain, args.logs)
            missed |= p50 >= HOP_GOAL_MS or writes > WRITES_GOAL
        for width in [int(w) for w in args.fanout.split(",") if w]:
            missed |= fanout(cl, width, args.logs, args.trials)
        if args.runs:
            missed |= one_step_runs(cl, args.runs, args.logs)
        if args.startup:
            missed |= startup(cl, [int(c) for c in args.startup.split(",") if c], args.logs)
        if args.large:
            missed |= large(cl, args.large, args.logs)
        if args.inflight:
            missed |= inflight(cl, [int(c) for c in args.inflight.split(",") if c], args.logs)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
