"""Loopback ports for the processes tests and benchmarks start, and who is serving one.

A port picked by binding port 0 is free when it is picked, not when its user binds
it a second later: in between, another pick can return it too. Two picks in a row
could return the same port when each socket was closed before the next bind (an
operator whose liveness port was its own metrics port: kopf's liveness endpoint
could not bind, the operator stopped, and the metrics server answered /healthz while
it did). `free_ports` holds every socket until all are picked, so the ports of one
call are distinct; `serves` tells whether the process that should answer on a port
is the one listening on it, so a health check never takes another process's answer
for its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

LISTEN = "0A"
"""The LISTEN state in /proc/net/tcp."""


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` now (another process may still take one before it is bound)."""
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)
        ]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def _listening_sockets(port: int) -> set[str]:
    """The /proc link targets (`socket:[inode]`) of the sockets listening on `port`, any address."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found.add(f"socket:[{fields[9]}]")
    return found


def serves(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on `port` (Linux /proc; root reads any process's)."""
    wanted = _listening_sockets(port)
    if not wanted:
        return False
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for descriptor in descriptors:
        with contextlib.suppress(OSError):
            if os.readlink(descriptor) in wanted:
                return True
    return False


def wait_serving(process: subprocess.Popen[Any], url: str, *, timeout: float = 60) -> str | None:
    """Poll `url` until `process` itself answers it: None then, else why not (it exited, or time ran out).

    An answer counts only while `process` is the one listening on the URL's port (`serves`).
    """
    port = urllib.parse.urlsplit(url).port
    if port is None:
        raise ValueError(f"{url}: no port")
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            return f"exited with {process.returncode}"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            if serves(process.pid, port):
                return None
        if time.monotonic() > deadline:
            return f"did not answer {url} within {timeout:g} s"
        time.sleep(0.1)
