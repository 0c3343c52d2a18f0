"""Ports for the processes tests start (hack/controlplane/ports.py): distinct picks, and a health
check that takes only the expected process's answer, never another's on the same port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))

from controlplane.ports import free_ports, serves, wait_serving

SERVER = """
import http.server, sys
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A process answering HTTP on a loopback port, once it listens."""
    [port] = free_ports(1)
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not serves(process.pid, port):
        assert process.poll() is None and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    yield process, port
    process.kill()
    process.wait()


def test_the_ports_of_one_pick_are_distinct_and_bindable() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_serves_names_the_process_that_listens(server: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = server
    assert serves(process.pid, port)
    assert not serves(os.getpid(), port)
    [unused] = free_ports(1)
    assert not serves(process.pid, unused)


def test_an_answer_from_another_process_on_the_port_does_not_count(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    """The failure this guards against: the process under test could not bind its port (another
    one had it), yet a health check polling that port got an answer and called it healthy."""
    other, port = server
    url = f"http://127.0.0.1:{port}/"
    waiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        problem = wait_serving(waiting, url, timeout=1)
    finally:
        waiting.kill()
        waiting.wait()
    assert problem is not None and "did not answer" in problem
    assert wait_serving(other, url, timeout=5) is None


def test_a_process_that_exits_is_reported_at_once() -> None:
    [port] = free_ports(1)
    exiting = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    exiting.wait()
    started = time.monotonic()
    assert wait_serving(exiting, f"http://127.0.0.1:{port}/", timeout=30) == "exited with 3"
    assert time.monotonic() - started < 5
