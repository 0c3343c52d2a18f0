"""The operator's wiring: kopf watches and indices in, the reconcile work queue out.

Thin on purpose. kopf does what it is good at (watch streams with reconnects and
resourceVersion bookkeeping, login, liveness, the initial listing before any
handler runs); our handlers only keep indices and add keys to the work queue:

- indices (kopf.index) hold copies of every DAG and DAGRun; task Pods, which are
  many, are kept by a cache of our own (podwatch.PodCache: a label-selected watch,
  slim copies, finished history never listed); the controllers read both through
  `view.IndexedView` instead of the API server;
- `kopf.on.event` on DAGs and DAGRuns, and the Pod cache, queue the owning object.
  A Pod that changes phase queues its run at once (no polling, no status field
  chain), so a downstream Pod is created one watch hop after its upstream succeeded;
- everything else (what to create, delete, write) happens in the controllers.

kopf's diff base (a deep copy of every body on every event, kept for change
handlers) is switched off: we have no change handlers, and for a DAGRun of
thousands of tasks that copy cost more than the reconcile.

No kopf handler patches anything, so kopf writes no annotations or finalizers
and posts no events of its own: every write the operator makes is the
controllers', and counted in metrics.

With leader election (`--leader-elect`, leader.py) every replica watches and keeps
its indices, but only the Lease holder starts the work queue (and publishes the
per-DAG gauges); a replica that loses the Lease exits.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import sys
import threading
import time
from asyncio import sslproto
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from kubeflowlite.core import templating
from kubeflowlite.k8s import (
    kube,
    leader,
    memdebug,
    metrics,
    observe,
    oplog,
    outcomes,
    podwatch,
    resources,
    view,
    xcom_store,
)
from kubeflowlite.k8s.credentials import Token
from kubeflowlite.k8s.dag_controller import DAGController
from kubeflowlite.k8s.run_controller import RunController, RunSettings, dag_key, run_key
from kubeflowlite.k8s.workqueue import WorkQueue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatorOptions:
    """What `kubeflowlite operator` is told on its command line."""

    cluster: kube.ClusterConfig
    namespaces: tuple[str, ...] = ()
    """Watch only these namespaces; empty with `clusterwide` for all."""
    clusterwide: bool = False
    metrics_port: int = 0
    liveness: str | None = None
    """kopf's liveness endpoint, e.g. http://0.0.0.0:8080/healthz."""
    pending_timeout: timedelta = observe.DEFAULT_PENDING_TIMEOUT
    workers: int = 8
    """Reconciles that may run at once (each mostly waits on the API server)."""
    leader_election: leader.Settings | None = None
    """Reconcile only while holding this Lease (several replicas); None: always (one replica)."""
    read_connection_secrets: bool = True
    """List connection Secrets (for {{ conn.x.host }}); off when RBAC does not allow it."""


@dataclass
class Operator:
    """The running operator's parts, built inside kopf's event loop at startup."""

    options: OperatorOptions
    client: kube.Kube | None = None
    queue: WorkQueue | None = None
    runs: RunController | None = None
    dags: DAGController | None = None
    elector: leader.LeaderElector | None = None
    pods: podwatch.PodCache | None = None
    _view: view.IndexedView | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _snapshots: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    _specs: view.Shared = field(default_factory=view.Shared)

    async def start(self, indices: dict[str, Any]) -> None:
        client = kube.Kube(
            self.options.cluster,
            user_agent=kube.OPERATOR_USER_AGENT,
            on_request=metrics.record_request,
            max_connections=CONNECTIONS,
        )
        pods = podwatch.PodCache(
            client,
            namespaces=None if self.options.clusterwide else self.options.namespaces,
            on_change=lambda namespace, run: self.add(run_key(namespace, run)),
        )
        await pods.start()  # before any reconcile: a Pod missing from the cache must really be gone
        self.pods = pods
        cluster_view = view.IndexedView(
            dags=indices["kfl_dags"],
            runs=indices["kfl_runs"],
            runs_by_dag=indices["kfl_runs_by_dag"],
            pods=pods,
        )
        queue = WorkQueue(self._reconcile, workers=self.options.workers, on_error=self._failed)
        settings = RunSettings(
            pending_timeout=self.options.pending_timeout,
            variables=templating.variables_from_env(os.environ),
            read_connection_secrets=self.options.read_connection_secrets,
        )
        self.runs = RunController(
            client=client,
            view=cluster_view,
            xcoms=xcom_store.RunStore(client),
            enqueue=queue.add,
            settings=settings,
            pods=pods,
        )
        self.dags = DAGController(client=client, view=cluster_view, runs=self.runs, enqueue=queue.add)
        self.client, self.queue, self._view = client, queue, cluster_view
        election = self.options.leader_election
        if election is None:
            self._lead()
            return
        self.elector = leader.LeaderElector(client, election, on_started=self._lead, on_lost=_exit_lost)
        self._tasks.append(asyncio.create_task(self.elector.run()))

    def _lead(self) -> None:
        """Start reconciling: every known object gets a look (level-triggered), gauges are published."""
        assert self.queue is not None and self._view is not None
        metrics.LEADER.set(1)
        self.queue.start()
        for dag in self._view.dags():
            metadata = dag.get("metadata") or {}
            namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
            self.add(dag_key(namespace, name))
            for run in self._view.runs_of_dag(namespace, name):
                self.add(run_key(namespace, str((run.get("metadata") or {}).get("name") or "")))
        self._tasks.append(asyncio.create_task(self._publish_levels()))

    async def _publish_levels(self) -> None:
        publisher = metrics.LevelPublisher()
        while True:
            try:
                publisher.publish(self.levels())
            except Exception:  # a gauge refresh must never take the operator down
                logger.exception("could not compute the DAG gauges")
            await asyncio.sleep(LEVELS_EVERY)

    def levels(self) -> list[outcomes.DAGLevels]:
        """The gauges of every watched DAG, from the view and the run controller's fresher statuses."""
        assert self.runs is not None and self._view is not None
        now = datetime.now(UTC)
        found = []
        for dag in self._view.dags():
            metadata = dag.get("metadata") or {}
            namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
            spec, _ = self.runs.dag_spec(dag)
            statuses = [run.get("status") or {} for run in self.runs.runs_of_dag(namespace, name)]
            found.append(
                outcomes.dag_levels(
                    namespace=namespace,
                    name=name,
                    paused=bool((dag.get("spec") or {}).get("paused")),
                    spec=spec,
                    runs=statuses,
                    now=now,
                )
            )
        return found

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.queue is not None:
            await self.queue.stop()
        if self.pods is not None:
            await self.pods.stop()
        if self.elector is not None:
            await self.elector.release()
        if self.client is not None:
            await self.client.close()

    def add(self, key: Hashable) -> None:
        if self.queue is not None:
            self.queue.add(key)
            metrics.QUEUE_DEPTH.set(len(self.queue))

    async def _reconcile(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        kind, namespace, name = key
        assert self.runs is not None and self.dags is not None
        if self.elector is not None and not self.elector.still_leading():
            _exit_lost()  # the Lease may be someone else's by now: act on nothing
        started = time.perf_counter()
        try:
            if kind == "run":
                return await self.runs.reconcile(namespace, name)
            return await self.dags.reconcile(namespace, name)
        finally:
            metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)

    def _failed(self, key: Hashable, error: BaseException) -> None:
        kind = key[0] if isinstance(key, tuple) else "?"
        metrics.RECONCILE_ERRORS.labels(kind).inc()
        if oplog.is_retryable(error):
            logger.warning("reconcile of %s failed, will retry: %s", key, error or type(error).__name__)
        else:
            logger.error("reconcile of %s failed, will retry", key, exc_info=error)

    def snapshot(self, body: Any) -> dict[str, Any]:
        """One plain copy per object version, shared by the two DAGRun indices.

        What it holds equal to what the operator holds anyway is shared with that: the DAG's spec
        snapshot (every run of the DAG carries it), and each task's status as the run controller
        last wrote it (the watch echoes the controller's own writes). Once the run controller holds
        the run's spec parsed (it wrote the snapshot from it, or read it back), `status.dagSpec` is that
        DAGSpec, not a second copy of the snapshot as JSON (a snapshot never changes once written;
        the controller is what reads it, and a DAGSpec is what it reads it into). The watch may bring
        the first write back before the write's own answer: the controller's spec is what it wrote.
        """
        metadata = body.get("metadata") or {}
        uid, version = str(metadata.get("uid")), str(metadata.get("resourceVersion"))
        cached = self._snapshots.get(uid)
        if cached is not None and cached[0] == version:
            return cached[1]
        copy = view.snapshot(body)
        status = copy["status"]
        namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
        parsed = self.runs.run_spec(namespace, name) if self.runs is not None else None
        if parsed is not None and "dagSpec" in status:
            status["dagSpec"] = parsed
        elif isinstance(status.get("dagSpec"), dict):
            status["dagSpec"] = self._specs.one(status["dagSpec"])
        tasks = status.get("tasks")
        if isinstance(tasks, dict) and self.runs is not None:
            written = self.runs.written(namespace, name)
            status["tasks"] = view.share_equal(tasks, written.get("tasks") or {})
        self._snapshots[uid] = (version, copy)
        return copy

    def drop_snapshot(self, body: Any) -> None:
        self._snapshots.pop(str((body.get("metadata") or {}).get("uid")), None)


CONNECTIONS = 40
"""The operator client's connection pool (32 requests in flight, the rest for watches). Each TLS
connection holds a read buffer (asyncio.sslproto, TLS_READ_BUFFER) for as long as it is open: 64 of
them were 16 MiB at asyncio's 256 KiB. A loaded API server answers a create in 250-350 ms, so fewer than 24 creates in
flight slowed a 1,000-task fan-out's launch (63 Pods/s with 16 against 92 with 32)."""
TLS_READ_BUFFER = 64 * 1024
"""Bytes a TLS connection reads into at once: asyncio's default is 256 KiB, allocated per connection
for as long as it is open (the operator's ~40 held 9.3 MiB, its largest allocation after the DAG
and run bodies during a 10,000-task run). TLS records are at most 16 KiB, so a smaller buffer only
means more reads of the same, cheap, kind for a large response."""
LEVELS_EVERY = 5.0
"""Seconds between refreshes of the per-DAG gauges (a scrape every 15-30 s sees fresh values)."""


def _version() -> str:
    try:
        return importlib.metadata.version("kubeflowlite")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _exit_lost() -> None:
    """Leadership lost: stop acting at once; the Deployment restarts the process as a candidate."""
    logger.critical("lost the leader lease; exiting so that only the new leader acts")
    logging.shutdown()
    sys.stderr.flush()
    os._exit(1)


def connection_info(
    cluster: kube.ClusterConfig, *, refused: Token | None = None
) -> tuple[kopf.ConnectionInfo, Token | None]:
    """kopf's credentials from the same ClusterConfig (and TokenSource) our own client uses.

    kopf logs in again at `expiration` (our renewal time) and after a 401; it then
    passes the token it had as `refused`, and gets a new one.
    """
    tokens = cluster.tokens
    current = tokens.renew(refused) if refused is not None else tokens.token()
    token = current.value if current else None
    info = kopf.ConnectionInfo(
        server=cluster.server,
        ca_path=cluster.ca_file,
        insecure=cluster.insecure,
        certificate_path=cluster.cert_file,
        private_key_path=cluster.key_file,
        scheme="Bearer" if token else None,
        token=token,
        default_namespace=cluster.namespace,
        expiration=current.renew_at if current else None,
    )
    return info, current


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base, switched off: only change handlers read it, and we register none.

    kopf builds it on every event by deep-copying the whole body (status included),
    which for a DAGRun of 10,000 tasks is megabytes copied per watch event.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def build_registry(operator: Operator) -> kopf.OperatorRegistry:
    """Every kopf handler of the operator, on a registry of its own (no module-level state)."""
    registry = kopf.OperatorRegistry()
    dags = (resources.GROUP, resources.VERSION, resources.DAG_PLURAL)
    runs = (resources.GROUP, resources.VERSION, resources.DAGRUN_PLURAL)
    given: list[Token | None] = []

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # The first login takes the current token; any later one means kopf's expired or was refused.
        info, token = connection_info(operator.options.cluster, refused=given[-1] if given else None)
        given[:] = [token]
        return info

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        settings.posting.enabled = False  # our controllers post the events users need
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        settings.persistence.diffbase_storage = NoDiffBase()
        await operator.start(kwargs)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await operator.stop()

    @kopf.index(*dags, id="kfl_dags", registry=registry)
    async def index_dag(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> object:
        return {(namespace, name): view.snapshot(body)}

    @kopf.index(*runs, id="kfl_runs", registry=registry)
    async def index_run(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> object:
        return {(namespace, name): operator.snapshot(body)}

    @kopf.index(*runs, id="kfl_runs_by_dag", registry=registry)
    async def index_run_by_dag(
        *, namespace: str | None, spec: kopf.Spec, body: kopf.Body, **_: Any
    ) -> object:
        return {(namespace, spec.get("dagName", "")): operator.snapshot(body)}

    @kopf.on.event(*dags, id="kfl_dag_events", registry=registry)
    async def dag_event(*, namespace: str | None, name: str, **_: Any) -> None:
        operator.add(dag_key(namespace or "", name))

    @kopf.on.event(*runs, id="kfl_run_events", registry=registry)
    async def run_event(
        *, type: str, namespace: str | None, name: str, spec: kopf.Spec, body: kopf.Body, **_: Any
    ) -> None:
        namespace = namespace or ""
        if type == "DELETED":
            operator.drop_snapshot(body)
            if operator.runs is not None:
                operator.runs.forget(namespace, name)
            operator.add(dag_key(namespace, spec.get("dagName", "")))
            return
        operator.add(run_key(namespace, name))

    return registry


async def run_operator(
    options: OperatorOptions,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run the operator until `stop_flag` is set (or forever): `kubeflowlite operator`, or a test's thread."""
    sslproto.SSLProtocol.max_size = TLS_READ_BUFFER  # for connections opened from now on
    metrics.serve(options.metrics_port, version=_version())
    memdebug.install(asyncio.get_running_loop())
    operator = Operator(options)
    await kopf.operator(
        registry=build_registry(operator),
        standalone=True,
        clusterwide=options.clusterwide,
        namespaces=list(options.namespaces),
        liveness_endpoint=options.liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def namespaces_of(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))
