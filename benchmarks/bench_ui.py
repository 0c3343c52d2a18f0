"""The web UI on a big DAG: grid and graph render times, and memory while browsers follow.

Run by hand (it starts its own control plane unless given --kubeconfig); prints
figures, it is not a timed test:

    .venv/bin/python -m benchmarks.bench_ui [--tasks 1000] [--runs 25] [--clients 10] [--follow 60]

Setup, in a fresh namespace: a DAG of N tasks (layers of 50, each task depending on
two of the layer before), and R DAGRuns of it whose status (every task instance, and
the dagSpec snapshot) is written directly through the status subresource, so no
operator and no Pods are needed; one more run is kept "running" and its task states
are changed by this benchmark twice a second while clients follow it.

Figures (`kubeflowlite ui` processes on loopback, timed with a plain HTTP client):

- grid: in a warm process (up, its DAGRun cache filled: the DAG list was shown once),
  the first render of the DAG page (R runs x N tasks), then the median of 5; and the
  very first request of a new process, which waits for the cache's first list of every
  run in full (once per process; a user who opens the page a few seconds after
  `kubeflowlite ui` starts finds the cache filled);
- graph: a run's page with its Graphviz layout: requested at once after the grid (the
  grid page starts the layout in the background when it is sent, so this waits for what
  is left of it), after a user's pause of 2 s, cached (median of 5), and opened directly
  in a new process (dot runs in the request);
- in chromium (if --browser): the load event of the grid and graph pages by the browser's
  Navigation Timing, with when the response ended and the DOM was parsed (the first
  navigation includes the browser's own start-up work);
- memory: the UI process's RSS while C event-stream clients (what an open grid page
  holds) follow the running run for F seconds, sampled every 2 s, and the cell updates
  each client received; "flat" compares the end with the sample 10 s in.
  Goals: grid and graph < 1 s; RSS flat (end - 10 s sample < 20 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.bench_operator import cluster, free_port, rss_mib
from kubeflowlite.k8s import kube, names

GOAL_SECONDS = 1.0
RSS_GOAL_MIB = 20.0
LAYER = 50
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def big_dag(count: int) -> dict[str, Any]:
    tasks = []
    for i in range(count):
        upstream = [f"t{i - LAYER:04d}", f"t{i - LAYER + 1:04d}"] if i >= LAYER else []
        if i >= LAYER and (i + 1) % LAYER == 0:
            upstream = [f"t{i - LAYER:04d}"]
        tasks.append({"name": f"t{i:04d}", "bash": "true", "dependsOn": upstream})
    return {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": "big"},
        "spec": {"description": f"{count} tasks", "tasks": tasks, "maxActiveTasks": count},
    }


def run_manifest(index: int) -> dict[str, Any]:
    logical = T0 + timedelta(days=index)
    return {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": names.dagrun_name("big", logical, "backfill")},
        "spec": {
            "dagName": "big",
            "logicalDate": logical.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "runType": "backfill",
        },
    }


def run_status(dag: dict[str, Any], index: int, *, state_of: Any) -> dict[str, Any]:
    start = T0 + timedelta(days=index, hours=1)
    tasks = {}
    for i, task in enumerate(dag["spec"]["tasks"]):
        state = state_of(i)
        begin = start + timedelta(seconds=i % LAYER + (i // LAYER) * 60)
        tasks[task["name"]] = {
            "state": state,
            "tryNumber": 0 if state == "none" else 1,
            **({"startTime": _t(begin)} if state != "none" else {}),
            **({"endTime": _t(begin + timedelta(seconds=30))} if state in ("success", "failed") else {}),
        }
    return {
        "status": {
            "state": "success" if all(t["state"] == "success" for t in tasks.values()) else "running",
            "startTime": _t(start),
            "dagSpec": dag["spec"],
            "tasks": tasks,
        }
    }


def _t(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def populate(config: kube.ClusterConfig, namespace: str, dag: dict[str, Any], runs: int) -> str:
    """The DAG, `runs` finished runs and one running run (its name is returned)."""
    async with kube.Kube(config) as client:
        await client.create(kube.DAGS, namespace, dag)
        for index in range(runs + 1):
            manifest = run_manifest(index)
            await client.create(kube.DAGRUNS, namespace, manifest)
            last = index == runs
            status = run_status(
                dag,
                index,
                state_of=(lambda i: "none") if last else (lambda i: "failed" if i % 97 == 0 else "success"),
            )
            await client.patch(
                kube.DAGRUNS, namespace, manifest["metadata"]["name"], status, subresource="status"
            )
        return str(run_manifest(runs)["metadata"]["name"])


def get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
    return time.perf_counter() - started, len(body)


class Follower(threading.Thread):
    """One open grid page's event stream: counts the cell updates received."""

    def __init__(self, port: int, path: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.stop_event = port, path, stop
        self.events = 0
        self.cells = 0
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port)

    def run(self) -> None:
        self.connection.request("GET", self.path, headers={"Accept": "text/event-stream"})
        response = self.connection.getresponse()
        try:
            while not self.stop_event.is_set():
                line = response.fp.readline()
                if not line:
                    break
                if line.startswith(b"data:") and line.strip() != b"data:":
                    self.events += 1
                    self.cells += sum(
                        len(states) for states in json.loads(line[5:]).get("cells", {}).values()
                    )
        except (OSError, ValueError):
            pass  # closed by close()

    def close(self) -> None:
        if self.connection.sock is not None:
            self.connection.sock.shutdown(socket.SHUT_RDWR)
        self.connection.close()


def drive(config: kube.ClusterConfig, namespace: str, dag: dict[str, Any], run: str, seconds: float) -> int:
    """Change the running run's task states twice a second for `seconds`; the number of patches."""

    async def loop() -> int:
        patches = 0
        async with kube.Kube(config) as client:
            deadline = time.monotonic() + seconds
            step = 0
            while time.monotonic() < deadline:
                step += 1
                done = step * 10  # ten more tasks finish, the next ten run, at every step
                status = run_status(
                    dag,
                    100,
                    state_of=lambda i, d=done: "success" if i < d else ("running" if i < d + 10 else "none"),
                )
                await client.patch(kube.DAGRUNS, namespace, run, status, subresource="status")
                patches += 1
                await asyncio.sleep(0.5)
        return patches

    return asyncio.run(loop())


NAVIGATION = """() => { const n = performance.getEntriesByType('navigation')[0];
  return [n.responseEnd, n.domContentLoadedEventEnd, n.loadEventEnd]; }"""


def browser_times(base: str, grid_path: str, graph_path: str) -> dict[str, str]:
    """Per page and round: the load event as the browser's Navigation Timing has it, and where it went
    (response received, DOM parsed, loaded); the first round includes the browser's own start-up work."""
    from playwright.sync_api import sync_playwright

    times = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page()
        for round_ in ("first", "again"):
            for label, path in (("grid", grid_path), ("graph", graph_path)):
                page.goto(base + path, wait_until="load")
                response, parsed, loaded = page.evaluate(NAVIGATION)
                times[f"{label} ({round_})"] = f"{loaded:.0f} ms (response {response:.0f}, DOM {parsed:.0f})"
        browser.close()
    return times


@contextlib.contextmanager
def serve(kubeconfig: Path, namespace: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A `kubeflowlite ui` process for `namespace`, once it answers /healthz; stopped on exit."""
    port = free_port()
    log = open(f"/tmp/kfl-bench-ui-{port}.log", "wb")  # noqa: SIM115 - kept open by the child
    ui = subprocess.Popen(
        [sys.executable, "-m", "kubeflowlite", "ui", f"--kubeconfig={kubeconfig}", f"--namespace={namespace}",
         f"--port={port}"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(base + "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or ui.poll() is not None:
                    raise RuntimeError("kubeflowlite ui did not start") from None
                time.sleep(0.1)
        yield ui, base
    finally:
        stop_ui(ui)


def stop_ui(ui: subprocess.Popen[bytes]) -> None:
    if ui.poll() is None:
        ui.terminate()
        ui.wait(timeout=15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", help="Use this cluster instead of starting the hermetic one.")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--follow", type=float, default=60.0, help="Seconds the clients follow (bounded).")
    parser.add_argument("--browser", action="store_true", help="Also time page loads in chromium.")
    args = parser.parse_args(argv)
    follow = min(args.follow, 300.0)
    missed = False
    with cluster(args.kubeconfig) as cl:
        for path in sorted((Path(__file__).resolve().parents[1] / "crds").glob("*.yaml")):
            cl.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        cl.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/dags.kubeflowlite.io",
                   "crd/dagruns.kubeflowlite.io")  # fmt: skip
        namespace = f"bench-ui-{int(time.time())}"
        cl.kubectl("create", "namespace", namespace)
        config = kube.load_cluster_config(str(cl.kubeconfig))
        dag = big_dag(args.tasks)
        started = time.perf_counter()
        running = asyncio.run(populate(config, namespace, dag, args.runs))
        print(
            f"setup: DAG of {args.tasks} tasks and {args.runs + 1} runs in {time.perf_counter() - started:.1f}s"
        )
        grid_path = f"/dags/{namespace}/big/"
        graph_path = f"/runs/{namespace}/{run_manifest(0)['metadata']['name']}/"
        try:
            # A fresh process whose very first request is the grid: it waits for the DAGRun cache's
            # first list (every run in full, once per process), as a user who opens the UI at once would.
            with serve(cl.kubeconfig, namespace) as (_, base):
                cold, _ = get(base + grid_path)
            # A run's graph opened directly (a link from elsewhere): `dot` lays the DAG out first.
            with serve(cl.kubeconfig, namespace) as (_, base):
                get(base + "/")
                direct, _ = get(base + graph_path)
            with serve(cl.kubeconfig, namespace) as (ui, base):
                get(base + "/")  # the DAG list: the cache is warm, this DAG's grid never shown yet
                first, size = get(base + grid_path)
                graph_first, graph_size = get(base + graph_path)  # at once: the grid's layout may still run
                other_run = f"/runs/{namespace}/{run_manifest(1)['metadata']['name']}/"
                with serve(cl.kubeconfig, namespace) as (_, other):
                    get(other + "/")
                    get(other + grid_path)
                    time.sleep(2)  # the user reads the grid, then clicks a run
                    paused, _ = get(other + other_run)
                again = statistics.median(get(base + grid_path)[0] for _ in range(5))
                graph_again = statistics.median(get(base + graph_path)[0] for _ in range(5))
                print(f"grid ({args.runs} runs shown of {args.runs + 1}, {args.tasks} tasks, {size / 1e6:.1f} MB): "
                      f"first {first * 1000:.0f} ms, then median {again * 1000:.0f} ms (goal < {GOAL_SECONDS:g} s); "
                      f"first request of a new process (waits for its initial list) {cold * 1000:.0f} ms")  # fmt: skip
                print(f"graph ({args.tasks} tasks, {graph_size / 1e6:.1f} MB): first, at once after the grid (its "
                      f"layout started when the grid was sent) {graph_first * 1000:.0f} ms, 2 s after the grid "
                      f"{paused * 1000:.0f} ms, cached median {graph_again * 1000:.0f} ms; opened directly in a "
                      f"new process (dot layout) {direct * 1000:.0f} ms")  # fmt: skip
                missed |= max(first, graph_first) >= GOAL_SECONDS
                if args.browser:
                    times = browser_times(base, grid_path, graph_path)
                    print("chromium load event: " + ", ".join(f"{k} {v}" for k, v in times.items()))

                with urllib.request.urlopen(base + grid_path, timeout=60) as response:
                    page = response.read().decode()
                key = page.split("events?runs=", 1)[1].split("&", 1)[0]
                events_path = f"/dags/{namespace}/big/events?runs={key}&offset=0"
                stop = threading.Event()
                followers = [
                    Follower(int(base.rsplit(":", 1)[1]), events_path, stop) for _ in range(args.clients)
                ]
                for follower in followers:
                    follower.start()
                time.sleep(2)
                patched: list[int] = []
                driver = threading.Thread(
                    target=lambda: patched.append(drive(config, namespace, dag, running, follow)), daemon=True
                )
                samples = [rss_mib(ui.pid)]
                driver.start()
                while driver.is_alive():
                    time.sleep(2)
                    samples.append(rss_mib(ui.pid))
                stop.set()
                for follower in followers:
                    follower.close()
                patches = sum(patched)
                cells = [f.cells for f in followers]
                print(f"memory with {args.clients} clients following for {follow:g}s ({patches:g} status patches): "
                      f"RSS start {samples[0]:.1f} MiB, max {max(samples):.1f} MiB, end {samples[-1]:.1f} MiB; "
                      f"cell updates per client {min(cells)}..{max(cells)}")  # fmt: skip
                print("RSS samples (MiB, every 2 s): " + " ".join(f"{v:.0f}" for v in samples))
                warm = samples[min(5, len(samples) - 1)]
                print(f"RSS growth after warm-up: {samples[-1] - warm:+.1f} MiB (goal < {RSS_GOAL_MIB:g})")
                missed |= samples[-1] - warm >= RSS_GOAL_MIB
        finally:
            cl.kubectl("delete", "namespace", namespace, "--wait=false")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
