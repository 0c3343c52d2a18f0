"""The operator harness against a taken port: another process answering the operator's liveness
URL is not taken for the operator, and the operator is started again on other ports.

This is how the last red CI looked from the inside: the operator could not bind its port and
stopped, something else answered /healthz, and the test then waited 240 s on a dead operator.
"""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Callable, Iterator

import operator_harness
import pytest
from operator_harness import OperatorProcess

from controlplane.ports import free_ports

pytestmark = pytest.mark.cluster


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[int]:
    """A port on which this process answers every GET with 200, as a stranger's /healthz would."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_an_operator_whose_liveness_port_is_taken_starts_again_on_other_ports(
    start_operator: Callable[..., OperatorProcess], impostor: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks: list[list[int]] = []

    def first_one_taken(count: int, host: str = "127.0.0.1") -> list[int]:
        ports = free_ports(count, host)
        if not picks:
            ports[0] = impostor  # the liveness port
        picks.append(ports)
        return ports

    with urllib.request.urlopen(f"http://127.0.0.1:{impostor}/healthz", timeout=5) as response:
        assert response.status == 200  # what the harness once took for a healthy operator
    monkeypatch.setattr(operator_harness, "free_ports", first_one_taken)
    operator = start_operator()

    assert (operator.starts, operator.ports_taken, len(picks)) == (1, 1, 2)
    assert "address already in use" in (operator.log_dir / "operator-1.port-taken-1.log").read_text().lower()
    assert operator.process is not None and operator.process.poll() is None
    assert "kubeflowlite_" in operator.metrics()
