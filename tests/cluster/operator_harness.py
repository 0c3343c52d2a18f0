"""What the operator tests share: the CRDs, a real operator process, and ways to wait.

Boundary: the operator under test is the real `kubeflowlite operator` command,
started as a subprocess against the hermetic cluster's kubeconfig and scoped to
the test's namespace (so tests never see each other's objects). Tests talk to
the cluster with kubectl and the generated client, exactly as a user would; Pod
lifecycles are KWOK's, steered by the kwok.kubeflowlite.io/* annotations that a
task's `pod.metadata.annotations` override puts on its Pods (values are
Jinja-templated per try, e.g. `{{ 'failure' if ti.try_number < 3 else 'success' }}`).

Import the fixtures into a test module with
`from operator_harness import api, crds, operator, start_operator` (with `# ruff: noqa: F811`,
since the fixtures are then parameters of the tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client

from controlplane.ports import free_ports, wait_serving

REPO = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((REPO / "crds").glob("*.yaml"))
GROUP, VERSION = "kubeflowlite.io", "v1alpha1"

T = TypeVar("T")


@pytest.fixture(scope="session")
def crds(cluster: Any) -> None:
    """Exactly the committed crds/ files, applied once per session and Established."""
    for path in CRD_FILES:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    names = [f"crd/{yaml.safe_load(p.read_text())['metadata']['name']}" for p in CRD_FILES]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)


class PortTaken(AssertionError):
    """The process exited because another one had taken a port picked for it (see controlplane.ports)."""


def wait_healthy(
    process: subprocess.Popen[bytes], url: str, *, what: str, log: Callable[[], str], timeout: float = 60
) -> None:
    """Wait until `process` itself answers `url` (controlplane.ports.wait_serving); AssertionError with
    the log if it exits or time runs out, PortTaken if it exited because a port picked for it was taken."""
    problem = wait_serving(process, url, timeout=timeout)
    if problem is None:
        return
    text = log()
    taken = process.poll() is not None and "address already in use" in text.lower()
    raise (PortTaken if taken else AssertionError)(f"{what} {problem}: {text}")


_WITH_CONSTANTS = """
import json, sys
from kubeflowlite.k8s import run_controller
for name, value in json.loads(sys.argv.pop(1)).items():
    assert hasattr(run_controller, name), name
    setattr(run_controller, name, value)
from kubeflowlite.cli.entry import main
sys.exit(main())
"""
"""The operator's command with some of run_controller's constants set (argv[1]: them as JSON)."""


class OperatorProcess:
    """`kubeflowlite operator` in a subprocess, watching one namespace; killable and restartable.

    `constants`: run_controller's limits set otherwise (e.g. MAX_CREATES), so that a test shows
    what happens past them with tens of Pods rather than thousands."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log_dir: Path,
        *extra: str,
        constants: Mapping[str, int] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_dir = log_dir
        self.extra = extra
        self.constants = dict(constants or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        """Times start() was called (a test's restarts); its log is operator-<starts>.log."""
        self.ports_taken = 0
        """Times a start began again on other ports (PortTaken); each such log is kept beside it."""
        self.metrics_port = 0

    def start(self) -> None:
        """Start it and wait until it answers its liveness endpoint (again on other ports if one was taken)."""
        self.starts += 1
        for attempt in range(3):
            try:
                self._start()
                return
            except PortTaken:
                if attempt == 2:
                    raise
                self.ports_taken += 1
                log = self.log_dir / f"operator-{self.starts}.log"
                log.rename(log.with_suffix(f".port-taken-{self.ports_taken}.log"))

    def _start(self) -> None:
        health, self.metrics_port = free_ports(2)
        log = open(self.log_dir / f"operator-{self.starts}.log", "wb")  # noqa: SIM115 - kept open by the child
        command = [sys.executable, "-m", "kubeflowlite"]
        if self.constants:
            command = [sys.executable, "-c", _WITH_CONSTANTS, json.dumps(self.constants)]
        self.process = subprocess.Popen(
            [
                *command,
                "operator",
                f"--kubeconfig={self.kubeconfig}",
                f"--namespace={self.namespace}",
                f"--metrics-port={self.metrics_port}",
                f"--liveness=http://127.0.0.1:{health}/healthz",
                "--log-level=info",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_healthy(self.process, f"http://127.0.0.1:{health}/healthz", what="the operator", log=self.log)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye (what a node failure or an OOM kill does)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def state(self) -> str:
        """Its pid and whether it still runs, for a failure's report."""
        if self.process is None:
            return "not started"
        code = self.process.poll()
        return f"pid {self.process.pid}, " + ("running" if code is None else f"exited with {code}")

    def log(self) -> str:
        path = self.log_dir / f"operator-{self.starts}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return str(response.read().decode())


@pytest.fixture
def start_operator(
    request: pytest.FixtureRequest, cluster: Any, namespace: str, crds: None, tmp_path: Path, api: Api
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start an operator for this test's namespace with extra command-line options; stopped at the end."""
    started = api.operators  # so that a timed-out wait ends with what the operator logged

    def start(*extra: str, constants: Mapping[str, int] | None = None) -> OperatorProcess:
        process = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, *extra, constants=constants)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for process in started:
            print(f"\n--- operator log (last start) ---\n{process.log()}", file=sys.stderr)


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    """A running operator for this test's namespace, with default options."""
    return start_operator()


@pytest.fixture
def api(cluster: Any, namespace: str) -> Api:
    return Api(cluster, namespace)


# --- talking to the cluster ----------------------------------------------------------------------


class Api:
    """Small conveniences over the generated client for our objects and Pods in one namespace."""

    def __init__(self, cluster: Any, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        api_client = cluster.api_client()
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.operators: list[OperatorProcess] = []
        """The operators started for this namespace (start_operator): dump() ends with their logs."""

    def apply(self, manifest: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))

    def create_run(
        self, dag: str, logical_date: str, *, name: str | None = None, conf: dict[str, Any] | None = None
    ) -> str:
        """A plain DAGRun object, as `kubectl create -f dagrun.yaml` would make it."""
        run_name = name or f"{dag}-{logical_date[:10]}"
        manifest = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DAGRun",
            "metadata": {"name": run_name},
            "spec": {"dagName": dag, "logicalDate": logical_date, "conf": conf or {}},
        }
        self.cluster.kubectl("create", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))
        return run_name

    def run(self, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "dagruns", name))

    def runs(self) -> list[dict[str, Any]]:
        listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "dagruns")
        return list(listed["items"])

    def dag(self, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "dags", name))

    def pods(self, run: str | None = None) -> list[Any]:
        selector = f"kubeflowlite.io/run={run}" if run else "kubeflowlite.io/run"
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def configmap(self, name: str) -> Any:
        return self.core.read_namespaced_config_map(name, self.namespace)

    def wait_run(
        self, name: str, *, states: tuple[str, ...] = ("success", "failed"), timeout: float = 60
    ) -> dict[str, Any]:
        """The run once its state is one of `states`."""

        def check() -> dict[str, Any] | None:
            try:
                run = self.run(name)
            except client.ApiException as error:
                if error.status == 404:
                    return None
                raise
            return run if (run.get("status") or {}).get("state") in states else None

        return wait_for(
            check, timeout=timeout, what=f"run {name} to be {'/'.join(states)}", dump=lambda: self.dump(name)
        )

    def dump(self, run: str | None = None) -> str:
        """The namespace's runs and Pods, then the tail of each operator's log: a CI log often shows
        only a failure's last lines, and those say first whether the operator did anything at all."""
        runs = self.cluster.kubectl("get", "dagruns", "-n", self.namespace, "-o", "yaml", check=False).stdout
        pods = self.cluster.kubectl("get", "pods", "-n", self.namespace, "-o", "wide", check=False)
        logs = "".join(
            f"\n--- operator log, start {process.starts} ({process.state()}) ---\n{process.log()[-3000:]}"
            for process in self.operators
        )
        return f"{runs[-5000:]}\n{pods.stdout or pods.stderr}{logs}"


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float = 60,
    what: str = "a condition",
    dump: Callable[[], str] | None = None,
) -> T:
    """Poll `check` until it returns something other than None/False."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"\n{dump()}" if dump is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(0.2)


def task_states(run: dict[str, Any]) -> dict[str, str]:
    return {
        task: instance.get("state") for task, instance in (run.get("status") or {}).get("tasks", {}).items()
    }


def kwok(
    *,
    outcome: str | None = None,
    delay: str | None = None,
    message: str | None = None,
    exit_code: int | None = None,
    stuck: bool = False,
    waiting_reason: str | None = None,
) -> dict[str, Any]:
    """A task `pod` override that steers the simulated Pod lifecycle."""
    annotations: dict[str, str] = {}
    if outcome is not None:
        annotations["kwok.kubeflowlite.io/outcome"] = outcome
    if delay is not None:
        annotations["kwok.kubeflowlite.io/delay"] = delay
    if message is not None:
        annotations["kwok.kubeflowlite.io/message"] = message
    if exit_code is not None:
        annotations["kwok.kubeflowlite.io/exit-code"] = str(exit_code)
    if stuck:
        annotations["kwok.kubeflowlite.io/stuck"] = "pending"
    if waiting_reason is not None:
        annotations["kwok.kubeflowlite.io/waiting-reason"] = waiting_reason
    return {"metadata": {"annotations": annotations}}


def dag_manifest(name: str, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DAG",
        "metadata": {"name": name},
        "spec": {"tasks": tasks, **spec},
    }
