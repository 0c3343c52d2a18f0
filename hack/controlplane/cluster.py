"""Start and stop a hermetic Kubernetes control plane from cached binaries.

etcd, kube-apiserver (RBAC, secure serving, service-account keys),
kube-controller-manager, kube-scheduler and KWOK with three simulated nodes, all on
loopback, each in its own process group, in a fresh temp dir on fresh ports, so a
crashed earlier run can never get in the way of the next. `hack/cluster` (users) and
the pytest fixture (tests) both drive this module. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import node as real_node
from . import pki
from .ports import free_ports

HACK_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = HACK_DIR.parent
STAGES_FILE = HACK_DIR / "kwok" / "stages.yaml"
NODE_COUNT = 3
NODE_KINDS = ("kwok", "real")
"""`kwok`: three simulated nodes (fast, Pods' lives steered by annotations); `real`: one
real node (containerd, runc, kubelet; hack/controlplane/node.py), where task Pods run."""
NODE_ANNOTATION = "kwok.x-k8s.io/node"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
SERVICE_CIDR = "10.0.0.0/24"


class ControlPlaneError(RuntimeError):
    """A component failed to start; the message carries the tail of its log."""


def build_tools() -> Path:
    """Run hack/build-tools (builds only what the cache lacks) and return the bin dir."""
    out = subprocess.run(
        [str(HACK_DIR / "build-tools")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout.strip()
    return Path(out.splitlines()[-1])


@dataclass
class ControlPlane:
    """A running control plane; `state.json` in its dir lets another process stop it."""

    state_dir: Path
    bin_dir: Path
    server: str
    kubeconfig: Path
    pids: dict[str, int] = field(default_factory=dict)
    started_seconds: float = 0.0
    owner_pid: int = field(default_factory=os.getpid)
    """The process that started the plane; a plane whose owner died is an orphan (see reap_orphans)."""
    node_kind: str = "kwok"
    node_name: str = ""
    commands: dict[str, list[str]] = field(default_factory=dict)
    """Each component's arguments, so that a test can restart it as it was."""
    """The real node's name (the machine's hostname) when node_kind is `real`."""

    # -- lifecycle -----------------------------------------------------------------
    @classmethod
    def start(
        cls,
        bin_dir: Path,
        *,
        base_dir: Path | None = None,
        timeout: float = 90.0,
        nodes: str = "kwok",
        node_images: tuple[str, ...] = real_node.NODE_IMAGES,
        wait_for_node: float = 0.0,
    ) -> ControlPlane:
        if nodes not in NODE_KINDS:
            raise ValueError(f"nodes must be one of {', '.join(NODE_KINDS)}, not {nodes!r}")
        real = nodes == "real"
        if real:
            timeout = max(timeout, 180.0) + wait_for_node
        t0 = time.monotonic()
        state_dir = Path(tempfile.mkdtemp(prefix="kfl-cluster-", dir=base_dir))
        (state_dir / "logs").mkdir()
        keys = pki.create(state_dir / "pki")
        names = ("etcd", "etcd-peer", "apiserver", "kcm", "sched", "kwok")
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        server = f"https://127.0.0.1:{ports['apiserver']}"
        kubeconfigs = {
            name: pki.kubeconfig(
                state_dir / f"{name}.kubeconfig", server=server, ca=keys.ca_cert, client=client, user=name
            )
            for name, client in keys.clients.items()
        }
        plane = cls(
            state_dir=state_dir,
            bin_dir=bin_dir,
            server=server,
            kubeconfig=kubeconfigs["admin"],
            node_kind=nodes,
        )
        # A real node's kubelet authenticates as system:node:<host> (Node authorizer) and
        # the apiserver reaches it by hostname for logs, with its own client certificate.
        authorization = "--authorization-mode=Node,RBAC" if real else "--authorization-mode=RBAC"
        # With a real node, Pods reach the apiserver as in any cluster: through the
        # `kubernetes` Service (10.0.0.1:443), which kube-proxy on the node sends to the
        # node's address, where the apiserver also listens. Clients outside use loopback.
        if real:
            address_flags = ["--bind-address=0.0.0.0", f"--advertise-address={real_node.node_ip()}"]
            endpoint_flags = ["--endpoint-reconciler-type=lease"]
        else:
            address_flags = ["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"]
            endpoint_flags = ["--endpoint-reconciler-type=none"]
        kubelet_flags = (
            [
                f"--kubelet-client-certificate={keys.clients['kubelet-client'].cert}",
                f"--kubelet-client-key={keys.clients['kubelet-client'].key}",
                "--kubelet-preferred-address-types=Hostname,InternalIP",
            ]
            if real
            else []
        )
        try:
            plane._launch(
                "etcd",
                [
                    "--name=kfl", f"--data-dir={state_dir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{ports['etcd']}",
                    f"--advertise-client-urls=http://127.0.0.1:{ports['etcd']}",
                    f"--listen-peer-urls=http://127.0.0.1:{ports['etcd-peer']}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{ports['etcd-peer']}",
                    f"--initial-cluster=kfl=http://127.0.0.1:{ports['etcd-peer']}",
                    "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=4294967296",
                ],
            )  # fmt: skip
            plane._launch(
                "kube-apiserver",
                [
                    f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                    *address_flags,
                    f"--secure-port={ports['apiserver']}", f"--cert-dir={state_dir / 'apiserver-certs'}",
                    f"--tls-cert-file={keys.serving_cert}", f"--tls-private-key-file={keys.serving_key}",
                    f"--client-ca-file={keys.ca_cert}",
                    authorization, *kubelet_flags, "--anonymous-auth=false", "--allow-privileged=true",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={keys.sa_pub}",
                    f"--service-account-signing-key-file={keys.sa_key}",
                    *endpoint_flags, "--profiling=false", "--v=1",
                ],
            )  # fmt: skip
            plane._wait_ready(timeout - (time.monotonic() - t0))
            plane._launch(
                "kube-controller-manager",
                [
                    f"--kubeconfig={kubeconfigs['controller-manager']}",
                    f"--authentication-kubeconfig={kubeconfigs['controller-manager']}",
                    f"--authorization-kubeconfig={kubeconfigs['controller-manager']}",
                    "--bind-address=127.0.0.1", f"--secure-port={ports['kcm']}",
                    "--leader-elect=false", "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={keys.sa_key}", f"--root-ca-file={keys.ca_cert}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle-controller,"
                    "-persistentvolume-binder-controller,-persistentvolume-expander-controller,"
                    "-persistentvolume-attach-detach-controller,-certificatesigningrequest-signing-controller",
                    "--concurrent-gc-syncs=5", "--v=1",
                ],
            )  # fmt: skip
            plane._launch(
                "kube-scheduler",
                [
                    f"--kubeconfig={kubeconfigs['scheduler']}",
                    f"--authentication-kubeconfig={kubeconfigs['scheduler']}",
                    f"--authorization-kubeconfig={kubeconfigs['scheduler']}",
                    "--bind-address=127.0.0.1", f"--secure-port={ports['sched']}", "--leader-elect=false", "--v=1",
                ],
            )  # fmt: skip
            if real:
                node = real_node.RealNode.start(
                    plane_dir=state_dir, server=server, bin_dir=bin_dir, keys=keys,
                    cache_root=bin_dir.parent.parent, log_dir=state_dir / "logs", image_names=node_images, wait_for_node=wait_for_node,
                )  # fmt: skip
                plane.node_name = node.name
                plane._save()
                plane._wait_until(
                    f"the real node {node.name} Ready, the default ServiceAccount created",
                    lambda: plane._nodes_and_sa_ready(count=1),
                    timeout - (time.monotonic() - t0),
                )
                plane.started_seconds = time.monotonic() - t0
                plane._save()
                return plane
            plane._launch(
                "kwok",
                [
                    f"--kubeconfig={kubeconfigs['kwok']}", f"--config={STAGES_FILE}",
                    "--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
                    f"--server-address=127.0.0.1:{ports['kwok']}", "--node-lease-duration-seconds=40",
                    "--cidr=10.1.0.0/16", "--node-ip=10.2.0.1",
                ],
            )  # fmt: skip
            plane._create_nodes()
            plane._wait_until(
                "3 nodes Ready, the default ServiceAccount created",
                plane._nodes_and_sa_ready,
                timeout - (time.monotonic() - t0),
            )
        except BaseException:
            plane.stop()
            raise
        plane.started_seconds = time.monotonic() - t0
        plane._save()
        return plane

    def stop(self) -> None:
        """Kill every component's process group (SIGTERM, then SIGKILL) and remove the dir.

        A real node goes first, with everything it changed on the host."""
        if self.node_kind == "real":
            real_node.RealNode(node_dir=self.state_dir / "node", name=self.node_name, socket=Path()).stop()
        for name in reversed(list(self.pids)):
            _kill_group(self.pids[name], signal.SIGTERM)
        deadline = time.monotonic() + 10
        for pid in self.pids.values():
            while real_node.pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            _kill_group(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    @classmethod
    def load(cls, state_dir: Path) -> ControlPlane:
        data = json.loads((state_dir / "state.json").read_text())
        return cls(
            state_dir=Path(data["state_dir"]),
            bin_dir=Path(data["bin_dir"]),
            server=data["server"],
            kubeconfig=Path(data["kubeconfig"]),
            pids={k: int(v) for k, v in data["pids"].items()},
            started_seconds=float(data["started_seconds"]),
            owner_pid=int(data.get("owner_pid", 0)),
            node_kind=str(data.get("node_kind", "kwok")),
            commands={k: list(v) for k, v in data.get("commands", {}).items()},
            node_name=str(data.get("node_name", "")),
        )

    def adopt(self) -> None:
        """Make the current process the owner (`hack/cluster up` hands the plane to the user)."""
        self.owner_pid = 0
        self._save()

    def load_image(self, name: str = "kubeflowlite") -> str:
        """Build image `name` of hack/controlplane/images.py (cached) and import it into the real node."""
        from . import images

        if self.node_kind != "real":
            raise ControlPlaneError(
                "images can only be loaded into a real node (hack/cluster up --node real)"
            )
        archive = images.archive(name, images.CACHE_ROOT)
        node = real_node.RealNode(
            node_dir=self.state_dir / "node",
            name=self.node_name,
            socket=self.state_dir / "node" / "containerd.sock",
        )
        node.import_archive(archive)
        return images.IMAGES[name].name

    def real_node_alive(self) -> bool:
        journal = real_node.Journal.load()
        return bool(
            journal
            and journal.node_dir == str(self.state_dir / "node")
            and all(real_node.pid_alive(journal.pids.get(n, 0)) for n in real_node.DAEMONS)
        )

    def alive(self) -> dict[str, bool]:
        return {name: real_node.pid_alive(pid) for name, pid in self.pids.items()}

    # -- helpers for users of a running plane --------------------------------------------
    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return kubectl(self.bin_dir, self.kubeconfig, *args, check=check, input=input)

    def log_files(self) -> Iterator[Path]:
        yield from sorted((self.state_dir / "logs").glob("*.log"))

    def copy_logs(self, destination: Path) -> None:
        destination.mkdir(parents=True, exist_ok=True)
        for log in self.log_files():
            shutil.copy2(log, destination / log.name)

    # -- internals -------------------------------------------------------------------
    def restart(self, name: str, *, down_for: float = 0.0) -> None:
        """Kill component `name` (SIGKILL, as a crash) and start it again as it was, `down_for` seconds later."""
        _kill_group(self.pids[name], signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pids[name], 0)
        time.sleep(down_for)
        self._launch(name, self.commands[name], append=True)
        if name == "kube-apiserver":
            self._wait_ready(60)

    def _launch(self, name: str, args: list[str], *, append: bool = False) -> None:
        self.commands[name] = list(args)
        log = open(self.state_dir / "logs" / f"{name}.log", "ab" if append else "wb")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.state_dir,
        )
        log.close()
        self.pids[name] = proc.pid
        self._save()

    def _save(self) -> None:
        data = asdict(self)
        data = {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}
        (self.state_dir / "state.json").write_text(json.dumps(data, indent=2))

    def _ssl_context(self) -> ssl.SSLContext:
        keys = self.state_dir / "pki"
        ctx = ssl.create_default_context(cafile=str(keys / "ca.crt"))
        ctx.load_cert_chain(str(keys / "admin.crt"), str(keys / "admin.key"))
        return ctx

    def request(self, method: str, path: str, body: object | None = None) -> object:
        """A tiny admin REST client, so that starting the plane needs no kubectl or Python client."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.server + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, context=self._ssl_context(), timeout=5) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.startswith(b"{") else raw.decode()

    def _check_components(self) -> None:
        for name, pid in self.pids.items():
            if not real_node.pid_alive(pid):
                raise ControlPlaneError(f"{name} exited during start-up:\n{self._tail(name)}")
        if self.node_kind == "real":
            journal = real_node.Journal.load()
            ours = journal is not None and journal.node_dir == str(self.state_dir / "node")
            for name in real_node.DAEMONS:
                pid = journal.pids.get(name, 0) if journal and ours else 0
                if pid and not real_node.pid_alive(pid):
                    raise ControlPlaneError(f"{name} exited during start-up:\n{self._tail(name)}")

    def _tail(self, name: str, lines: int = 30) -> str:
        path = self.state_dir / "logs" / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _wait_until(self, what: str, probe: object, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 1.0)
        last_error = ""
        while time.monotonic() < deadline:
            self._check_components()
            try:
                if probe():  # type: ignore[operator]
                    return
            except (OSError, urllib.error.URLError, ValueError, KeyError) as err:
                last_error = str(err)
            time.sleep(0.1)
        names = [*self.pids, *(real_node.DAEMONS if self.node_kind == "real" else ())]
        logs = "\n".join(f"--- {n} ---\n{self._tail(n, 15)}" for n in names)
        raise ControlPlaneError(f"timed out waiting for {what} ({last_error})\n{logs}")

    def _wait_ready(self, timeout: float) -> None:
        self._wait_until("kube-apiserver /readyz", lambda: self.request("GET", "/readyz") == "ok", timeout)

    def _create_nodes(self) -> None:
        for i in range(NODE_COUNT):
            name = f"kwok-node-{i}"
            self.request(
                "POST",
                "/api/v1/nodes",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                        },
                    },
                },
            )

    def _nodes_and_sa_ready(self, count: int = NODE_COUNT) -> bool:
        nodes = self.request("GET", "/api/v1/nodes")
        assert isinstance(nodes, dict)
        ready = [
            n
            for n in nodes["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        if len(ready) < count:
            return False
        try:
            self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return False
            raise
        return True


def kubectl(
    bin_dir: Path, kubeconfig: Path, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the cached kubectl against a kubeconfig, capturing text output."""
    return subprocess.run(
        [str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        check=check,
        capture_output=True,
        text=True,
        input=input,
    )


def reap_orphans(base_dir: Path | None = None) -> list[Path]:
    """Stop planes left behind by test sessions that crashed (their owner process is gone).

    Planes started by `hack/cluster up` have no owner and are left alone.
    """
    reaped = []
    for state in Path(base_dir or tempfile.gettempdir()).glob("kfl-cluster-*/state.json"):
        try:
            plane = ControlPlane.load(state.parent)
        except (OSError, ValueError, KeyError):
            continue
        if plane.owner_pid and not real_node.pid_alive(plane.owner_pid):
            plane.stop()
            reaped.append(plane.state_dir)
    return reaped


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
