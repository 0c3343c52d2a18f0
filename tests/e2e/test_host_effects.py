"""The real node leaves the host as it found it: after `stop()`, and after a crash at the next start.

Runs before the other e2e modules (the session's node must not be up yet: one real
node per machine), with planes of its own. What is compared, before and after:
the sysctls the kubelet and the CNI bridge write, every iptables table, the
mounts, network namespaces, network links, our cgroup root, and the node's
processes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from controlplane import node as real_node
from controlplane.cluster import ControlPlane, build_tools, reap_orphans

NODE_PROCESSES = re.compile(r"(^|/)(kubelet|containerd|containerd-shim[\w-]*|pause)$")


def iptables_tables() -> dict[str, list[str]]:
    """Every table's chains and rules, counters and comments left out; an empty table counts as none."""
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    tables: dict[str, list[str]] = {}
    for block in re.findall(r"^\*(\w+)\n(.*?)^COMMIT", saved, re.MULTILINE | re.DOTALL):
        name, body = block
        lines = [re.sub(r" \[\d+:\d+\]$", "", line) for line in body.splitlines() if line and line[0] != "#"]
        only_defaults = all(re.fullmatch(r":[A-Z]+ ACCEPT", line) for line in lines)
        if not only_defaults:
            tables[name] = lines
    return tables


def node_processes() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                exe = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if NODE_PROCESSES.search(exe):
                found.append(f"{proc.name} {exe}")
    return sorted(found)


def host_state() -> dict[str, Any]:
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(line.split()[4] for line in f)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {
        "sysctls": {name: Path("/proc/sys", name).read_text().strip() for name in real_node.SYSCTLS},
        "iptables": iptables_tables(),
        "mounts": mounts,
        "netns": sorted(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else [],
        "links": sorted(re.findall(r"^\d+: ([^:@]+)", links, re.MULTILINE)),
        "cgroups": sorted(str(d) for d in real_node._cgroup_dirs() if d.exists()),
        "processes": node_processes(),
        "journal": real_node.JOURNAL.exists(),
    }


def run_a_pod(plane: ControlPlane) -> None:
    """A Pod that really runs (a netns, a veth, masquerade rules, mounts): the node has done its work."""
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: default}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  containers: [{name: main, image: busybox:1.36, command: [sh, -c, "sleep 2; echo ran"]}]
"""
    plane.kubectl("apply", "-f", "-", input=manifest)
    plane.kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/probe", "--timeout=90s")


def test_stop_and_a_crashed_node_leave_the_host_as_it_was() -> None:
    reap_orphans()
    leftover = real_node.Journal.load()
    if leftover is not None:  # an earlier session crashed: start from a clean host
        assert not any(real_node.pid_alive(p) for p in leftover.pids.values()), (
            "a real node is running: this module must run before the session's node starts"
        )
        real_node.undo(leftover)
    before = host_state()
    assert not before["processes"], before["processes"]
    bin_dir = build_tools()
    light = ("pause", "busybox")

    plane = ControlPlane.start(bin_dir, nodes="real", node_images=light)
    try:
        run_a_pod(plane)
        during = host_state()
    finally:
        plane.stop()
    # The node did change the host, and stop() undid it.
    assert during["sysctls"] != before["sysctls"] or during["iptables"] != before["iptables"]
    assert real_node.BRIDGE in during["links"] and during["processes"]
    assert host_state() == before

    crashed = ControlPlane.start(bin_dir, nodes="real", node_images=light)
    run_a_pod(crashed)
    journal = real_node.Journal.load()
    assert journal is not None
    for pid in [*journal.pids.values(), *crashed.pids.values()]:  # a crash: nobody cleans up
        os.killpg(pid, signal.SIGKILL)
    time.sleep(1)
    assert host_state() != before

    recovered = ControlPlane.start(bin_dir, nodes="real", node_images=light)
    try:
        assert recovered.real_node_alive()
    finally:
        recovered.stop()
        crashed.stop()
    assert host_state() == before
