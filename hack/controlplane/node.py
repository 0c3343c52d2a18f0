"""A real Kubernetes node beside the hermetic control plane: containerd, runc, CNI, kubelet.

Task Pods run for real here (the KWOK nodes only simulate them). Everything the
node keeps lives in the plane's own dir (containerd's root, state and socket, the
kubelet's root dir, CNI config and IPAM state), and every change it makes to the
host is written to a journal *before* it is made, so `stop()` and, after a crash,
the next `start()` undo exactly that:

- sysctls the kubelet and the CNI bridge set (their old values are kept);
- iptables rules and chains (the tables are saved before and restored after);
- mounts under the node's dirs and the network namespaces the CNI made;
- cgroups under our own cgroup root, and the bridge interface.

Only one real node can run on a machine at a time (kubelet cgroups, iptables,
the bridge): `start()` takes a lock and stops a previous node first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import images, pki
from .ports import free_ports

JOURNAL_DIR = Path("/run/kubeflowlite-node")
LOCK_FILE = JOURNAL_DIR / "lock"
JOURNAL = JOURNAL_DIR / "journal.json"
BRIDGE = "kfl0"
POD_CIDR = "10.88.0.0/16"
CGROUP_ROOT = "kfl-node"
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
"""Every sysctl the kubelet (container manager), kube-proxy or the bridge plugin may write."""

CNI_BIN_DIR = "/usr/lib/cni"
NODE_IMAGES = ("pause", "busybox", "python")
DAEMONS = ("containerd", "kubelet", "kube-proxy")
"""The node's processes, in start order (stopped in reverse)."""


class NodeError(RuntimeError):
    """The node failed to start; the message carries the tail of the failing log."""


def hostname() -> str:
    return socket.gethostname()


def node_ip() -> str:
    """The address of the interface of the default route (what a node would advertise)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.254", 9))  # no packet is sent: connect() on UDP only picks a route
        return str(s.getsockname()[0])


@dataclass
class Journal:
    """What the node changed on the host, so that it can be undone even after a crash."""

    node_dir: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)
    iptables: dict[str, str] = field(default_factory=dict)
    netns_before: list[str] = field(default_factory=list)

    def save(self) -> None:
        JOURNAL_DIR.mkdir(parents=True, exist_ok=True)
        tmp = JOURNAL.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.replace(JOURNAL)

    @classmethod
    def load(cls) -> Journal | None:
        try:
            return cls(**json.loads(JOURNAL.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, input=input)


def _read_sysctl(name: str) -> str | None:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return None


def _write_sysctl(name: str, value: str) -> None:
    with contextlib.suppress(OSError):
        (Path("/proc/sys") / name).write_text(value)


def _netns() -> list[str]:
    try:
        return sorted(os.listdir("/var/run/netns"))
    except OSError:
        return []


def _cgroup_dirs() -> list[Path]:
    base = Path("/sys/fs/cgroup")
    dirs = [base / "unified" / CGROUP_ROOT] if (base / "unified").is_dir() else []
    for controller in sorted(base.iterdir()) if base.is_dir() else []:
        if controller.name != "unified" and (controller / "cgroup.procs").exists():
            dirs.append(controller / CGROUP_ROOT)
    if (base / "cgroup.controllers").exists():  # cgroup v2 unified hierarchy
        dirs = [base / CGROUP_ROOT]
    return dirs


def _kill_cgroup_tree(root: Path) -> None:
    if not root.is_dir():
        return
    for _ in range(50):
        pids = []
        for procs in root.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in procs.read_text().split()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for child in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


def _mounts_under(prefixes: list[str]) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def undo(journal: Journal) -> None:
    """Undo everything `journal` records: processes, mounts, netns, cgroups, bridge, iptables, sysctls."""
    for name in reversed(DAEMONS):
        pid = journal.pids.get(name)
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    # containerd-shim processes outlive containerd (they are their own session leaders).
    node_dir = journal.node_dir
    if node_dir:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if "containerd-shim" in cmdline and node_dir in cmdline:
                    os.kill(int(proc.name), signal.SIGKILL)
    for root in _cgroup_dirs():
        _kill_cgroup_tree(root)
    new_netns = [n for n in _netns() if n not in journal.netns_before and n.startswith("cni-")]
    prefixes = [node_dir] if node_dir else []
    prefixes += [f"/var/run/netns/{n}" for n in new_netns] + [f"/run/netns/{n}" for n in new_netns]
    for _ in range(3):
        points = _mounts_under(prefixes)
        if not points:
            break
        for point in points:
            _run("umount", "-l", point, check=False)
    for n in new_netns:
        with contextlib.suppress(OSError):
            os.unlink(f"/var/run/netns/{n}")
    _run("ip", "link", "delete", BRIDGE, check=False)
    for tool, saved in journal.iptables.items():
        _restore_iptables(tool, saved)
    for name, value in journal.sysctls.items():
        if _read_sysctl(name) != value:
            _write_sysctl(name, value)
    if node_dir:
        shutil.rmtree(node_dir, ignore_errors=True)
    JOURNAL.unlink(missing_ok=True)


def _restore_iptables(tool: str, saved: str) -> None:
    """Put `tool`'s tables back as `saved`: tables that were not there are flushed and emptied."""
    current = _run(f"{tool}-save", check=False).stdout
    saved_tables = set(re.findall(r"^\*(\w+)", saved, re.MULTILINE))
    for table in re.findall(r"^\*(\w+)", current, re.MULTILINE):
        if table not in saved_tables:
            _run(tool, "-t", table, "-F", check=False)
            _run(tool, "-t", table, "-X", check=False)
    if saved_tables:
        _run(f"{tool}-restore", input=saved, check=False)


def pid_alive(pid: int) -> bool:
    """Is `pid` a live process (a zombie counts as dead)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def _locked() -> Any:
    JOURNAL_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@dataclass
class RealNode:
    """A running real node of a plane; `stop()` undoes it."""

    node_dir: Path
    name: str
    socket: Path

    @classmethod
    def start(
        cls,
        *,
        plane_dir: Path,
        server: str,
        bin_dir: Path,
        keys: pki.Pki,
        cache_root: Path,
        log_dir: Path,
        image_names: tuple[str, ...] = NODE_IMAGES,
        wait_for_node: float = 0.0,
    ) -> RealNode:
        """Start the node; if another runs on this machine, wait up to `wait_for_node` s for it to stop."""
        # Debian's containerd, runc, CNI plugins, busybox and mmdebstrap: installed if missing.
        subprocess.run([str(images.HACK_DIR / "system-packages")], check=True)
        deadline = time.monotonic() + wait_for_node
        while True:
            journal_now = Journal.load()
            busy = journal_now is not None and any(pid_alive(pid) for pid in journal_now.pids.values())
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(2)
        with _locked():
            previous = Journal.load()
            if previous is not None:
                if any(pid_alive(pid) for pid in previous.pids.values()):
                    raise NodeError(
                        f"a real node is already running on this machine ({previous.node_dir}); "
                        "there can be one at a time: stop its plane first (hack/cluster down)"
                    )
                undo(previous)  # left behind by a crash
            node_dir = plane_dir / "node"
            node_dir.mkdir(parents=True, exist_ok=True)
            journal = Journal(
                node_dir=str(node_dir),
                sysctls={n: v for n in SYSCTLS if (v := _read_sysctl(n)) is not None},
                iptables={
                    tool: _run(f"{tool}-save").stdout
                    for tool in ("iptables", "ip6tables")
                    if shutil.which(f"{tool}-save")
                },
                netns_before=_netns(),
            )
            journal.save()
            node = cls(node_dir=node_dir, name=hostname(), socket=node_dir / "containerd.sock")
            try:
                node._start_containerd(journal, log_dir)
                node._import_images(cache_root, image_names)
                node._start_kubelet(journal, server=server, bin_dir=bin_dir, keys=keys, log_dir=log_dir)
                node._start_kube_proxy(journal, server=server, bin_dir=bin_dir, keys=keys, log_dir=log_dir)
            except BaseException:
                undo(journal)
                raise
            return node

    def stop(self) -> None:
        with _locked():
            journal = Journal.load()
            if journal is not None and journal.node_dir == str(self.node_dir):
                undo(journal)

    # -- containerd -----------------------------------------------------------------
    def _start_containerd(self, journal: Journal, log_dir: Path) -> None:
        d = self.node_dir
        (d / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
        (d / "cni" / "net.d" / "10-kfl.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "kfl",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "ipMasq": True,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(d / "cni" / "ipam"),
                            },
                        },
                        {"type": "loopback"},
                    ],
                },
                indent=2,
            )
        )
        config = f"""version = 2
root = "{d / "containerd" / "root"}"
state = "{d / "containerd" / "state"}"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{d / "cni" / "net.d"}"
"""
        (d / "containerd.toml").write_text(config)
        log = open(log_dir / "containerd.log", "wb")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            ["containerd", "--config", str(d / "containerd.toml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        journal.pids["containerd"] = proc.pid
        journal.save()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise NodeError(f"containerd exited:\n{_tail(log_dir / 'containerd.log')}")
            if self.socket.exists() and self._ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise NodeError(f"containerd did not come up:\n{_tail(log_dir / 'containerd.log')}")

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run("ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args, check=check)

    def _import_images(self, cache_root: Path, image_names: tuple[str, ...]) -> None:
        for name in image_names:
            self.import_archive(images.archive(name, cache_root))

    def import_archive(self, archive: Path) -> None:
        """Load an OCI archive into the node's containerd, where the kubelet finds its images."""
        self._ctr("images", "import", "--snapshotter", "overlayfs", str(archive))

    # -- kubelet --------------------------------------------------------------------
    def _start_kubelet(
        self, journal: Journal, *, server: str, bin_dir: Path, keys: pki.Pki, log_dir: Path
    ) -> None:
        d = self.node_dir
        kd = d / "kubelet"
        kd.mkdir(parents=True, exist_ok=True)
        cert = pki.sign_client(keys, d / "pki", "kubelet", f"/CN=system:node:{self.name}/O=system:nodes")
        kubeconfig = pki.kubeconfig(
            d / "kubelet.kubeconfig", server=server, ca=keys.ca_cert, client=cert, user="kubelet"
        )
        for cg in _cgroup_dirs():
            cg.mkdir(exist_ok=True)
        port, healthz = free_ports(2, "0.0.0.0")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "failCgroupV1": False,
            "failSwapOn": False,
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(keys.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "resolvConf": "/etc/resolv.conf",
            "registerNode": True,
            "serializeImagePulls": False,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "nodeStatusUpdateFrequency": "4s",
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "20s",
            "maxPods": 150,
            "containerLogMaxSize": "10Mi",
            "localStorageCapacityIsolation": False,
            "protectKernelDefaults": False,
            "podPidsLimit": -1,
        }
        (d / "kubelet.yaml").write_text(json.dumps(config, indent=2))
        _spawn(
            "kubelet",
            [
                str(bin_dir / "kubelet"),
                f"--config={d / 'kubelet.yaml'}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={kd}",
                f"--cert-dir={d / 'kubelet-certs'}",
                f"--container-runtime-endpoint=unix://{self.socket}",
                f"--hostname-override={self.name}",
                f"--node-ip={node_ip()}",
                "--node-labels=type=real,kubeflowlite.io/node=real",
                "--v=1",
            ],
            journal=journal,
            log_dir=log_dir,
        )

    # -- kube-proxy -----------------------------------------------------------------
    def _start_kube_proxy(
        self, journal: Journal, *, server: str, bin_dir: Path, keys: pki.Pki, log_dir: Path
    ) -> None:
        """Services for Pods (iptables mode), so that they reach the apiserver at 10.0.0.1:443."""
        d = self.node_dir
        cert = pki.sign_client(keys, d / "pki", "kube-proxy", "/CN=system:kube-proxy")
        kubeconfig = pki.kubeconfig(
            d / "kube-proxy.kubeconfig", server=server, ca=keys.ca_cert, client=cert, user="kube-proxy"
        )
        proxy_health, proxy_metrics = free_ports(2)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": self.name,
            "clusterCIDR": POD_CIDR,
            "bindAddress": "0.0.0.0",
            "healthzBindAddress": f"127.0.0.1:{proxy_health}",
            "metricsBindAddress": f"127.0.0.1:{proxy_metrics}",
            # Leave the host's conntrack sysctls and route_localnet alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False},
        }
        (d / "kube-proxy.yaml").write_text(json.dumps(config, indent=2))
        _spawn(
            "kube-proxy",
            [str(bin_dir / "kube-proxy"), f"--config={d / 'kube-proxy.yaml'}", "--v=1"],
            journal=journal,
            log_dir=log_dir,
        )


def _spawn(name: str, argv: list[str], *, journal: Journal, log_dir: Path) -> None:
    """Start a node daemon in its own session, log to log_dir/<name>.log, journal its pid first thing."""
    log = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PATH": f"/usr/sbin:/usr/bin:/sbin:/bin:{os.environ.get('PATH', '')}"},
    )
    log.close()
    journal.pids[name] = proc.pid
    journal.save()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
