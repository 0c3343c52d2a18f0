"""What the operations tests share: the chart rendered by helm, a real Prometheus and Alertmanager.

Boundary: Prometheus, promtool and Alertmanager are Debian's binaries (hack/system-packages.txt),
started by the test on loopback ports with configuration files written for the test; the
alerting rules are exactly what `helm template` renders from the chart; the webhook receiver
is a plain HTTP server in the test process. Nothing is faked: a rule that is wrong fails to
fire, a route that is wrong delivers nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import OperatorProcess
from prometheus_client.parser import text_string_to_metric_families

from controlplane.cluster import build_tools
from controlplane.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubeflowlite"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
HELM_ENV = {"HELM_CACHE_HOME": "/tmp/kfl-helm/cache", "HELM_CONFIG_HOME": "/tmp/kfl-helm/config"}


@pytest.fixture(scope="session")
def helm() -> str:
    """The helm binary of the hermetic tools cache (built once by hack/build-tools)."""
    path = build_tools() / "helm"
    assert path.is_file(), f"hack/build-tools did not provide {path}"
    return str(path)


def helm_template(helm: str, *sets: str, show_only: str | None = None, namespace: str = "kfl") -> str:
    args = [helm, "template", "kfl", str(CHART), "--namespace", namespace]
    for value in sets:
        args += ["--set", value]
    if show_only:
        args += ["--show-only", show_only]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=os.environ | HELM_ENV)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return result.stdout


def chart_rules(helm: str, *sets: str) -> dict[str, Any]:
    """The chart's PrometheusRule spec (its `groups`), as a Prometheus rule file's content."""
    rendered = helm_template(
        helm, "prometheusRule.enabled=true", *sets, show_only="templates/prometheusrule.yaml"
    )
    rule = yaml.safe_load(rendered)
    assert rule["kind"] == "PrometheusRule"
    return {"groups": rule["spec"]["groups"]}


def alert_names(rules: dict[str, Any]) -> list[str]:
    return [rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def wait_until(
    check: Callable[[], Any], *, timeout: float, what: str, dump: Callable[[], str] | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"\n{dump()}" if dump is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(0.5)


class Server:
    """A binary serving HTTP on a loopback port, its output in a log file."""

    def __init__(self, args: list[str], port: int, log: Path, ready_path: str) -> None:
        self.port = port
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - kept open by the child
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(lambda: self._ready(ready_path), timeout=60, what=f"{args[0]} to be ready", dump=self.log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self, path: str) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.process.args} exited: {self.log()}")
        with urllib.request.urlopen(self.url + path, timeout=2) as response:
            return bool(response.status == 200)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class Prometheus(Server):
    """Debian's Prometheus: scrapes `targets` every second, evaluates `rules` every second."""

    def __init__(
        self, workdir: Path, *, targets: list[str], rules: dict[str, Any], alertmanager: str | None
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "rules.yaml").write_text(yaml.safe_dump(rules))
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(workdir / "rules.yaml")],
            "scrape_configs": [
                {"job_name": "kubeflowlite", "static_configs": [{"targets": targets}]},
            ],
        }
        if alertmanager is not None:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        super().__init__(
            [
                PROMETHEUS,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            port,
            workdir / "prometheus.log",
            "/-/ready",
        )

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        answer = _get_json(url)
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def value(self, expr: str) -> float | None:
        found = self.query(expr)
        assert len(found) <= 1, f"{expr} returned {len(found)} series: {found}"
        return float(found[0]["value"][1]) if found else None

    def alerts(self) -> list[dict[str, Any]]:
        return list(_get_json(f"{self.url}/api/v1/alerts")["data"]["alerts"])

    def targets_up(self) -> bool:
        active = _get_json(f"{self.url}/api/v1/targets")["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)


SLACK_EXAMPLE = ROOT / "helm" / "examples" / "alertmanager-slack.yaml"


def slack_example_config(*, webhook: Webhook) -> dict[str, Any]:
    """The shipped Slack example, its Slack URL pointed at `webhook`, plus a plain webhook receiver.

    Only what a test must change is changed: where Slack is (our loopback receiver stands in
    for Slack's incoming webhook) and the grouping delays (seconds instead of minutes).
    """
    config: dict[str, Any] = yaml.safe_load(SLACK_EXAMPLE.read_text())
    [slack] = next(r for r in config["receivers"] if r["name"] == "kubeflowlite-slack")["slack_configs"]
    del slack["api_url_file"]
    slack["api_url"] = webhook.url_for("/slack")
    fast = {"group_wait": "1s", "group_interval": "1s"}
    for route in config["route"]["routes"]:
        route.update(fast)
    plain = {"receiver": "webhook", "matchers": ['alertname=~"Kubeflowlite.*"'], "continue": True}
    plain["group_by"] = ["alertname", "namespace", "dag", "task"]
    config["route"]["routes"].insert(0, {**plain, **fast})
    config["receivers"].append(
        {"name": "webhook", "webhook_configs": [{"url": webhook.url, "send_resolved": False}]}
    )
    return config


class Alertmanager(Server):
    """Debian's Alertmanager with the given configuration (see slack_example_config)."""

    def __init__(self, workdir: Path, *, config: dict[str, Any]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        super().__init__(
            [
                ALERTMANAGER,
                f"--config.file={workdir / 'alertmanager.yml'}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            port,
            workdir / "alertmanager.log",
            "/-/ready",
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class Webhook:
    """An HTTP receiver on loopback that keeps every JSON body POSTed to it (by path)."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        by_path: list[tuple[str, dict[str, Any]]] = []
        self.received = received
        self.by_path = by_path

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                by_path.append((self.path, body))
                if self.path == "/alerts":
                    received.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    @property
    def url(self) -> str:
        return self.url_for("/alerts")

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [body for where, body in list(self.by_path) if where == path]

    def alerts(self) -> Iterator[dict[str, Any]]:
        for message in list(self.received):
            yield from message.get("alerts") or []

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def samples(operator: OperatorProcess, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called `name` whose labels include `labels`, keyed by its other labels."""
    found = {}
    for family in text_string_to_metric_families(operator.metrics()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                rest = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in labels))
                found[rest] = sample.value
    return found


def value(operator: OperatorProcess, name: str, **labels: str) -> float | None:
    found = samples(operator, name, **labels)
    assert len(found) <= 1, f"{name}{labels} matches {found}"
    return next(iter(found.values()), None)
