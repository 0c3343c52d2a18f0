"""The UI's mirror of DAGRuns: one list, then one watch for its scope, kept as compact `RunStates`.

A grid page of a 1,000-task DAG needed every DAGRun of the namespace in full (each
carries its dagSpec snapshot and every task instance) from the API server on every
render: most of a second before anything was drawn. `RunCache` is an informer in
the client-go sense: it lists the DAGRuns once, then watches from the list's
resourceVersion, and keeps per run only what the grid, the DAG list and the live
cell updates need (`models.RunStates`: name, DAG, logical date, run type, state,
per-task state; task names interned and identical dagSpec task lists shared, so
25 runs of one DAG cost one copy of its task list). Everything else a page needs
(a run's conf, its tries, its Pods) is still read from the API when that page is
opened: the API stays the only source of truth, the cache only mirrors it.

The same watch feeds the live pages (`live`): every change is reduced once and put
on each subscriber's queue. An expired resourceVersion (410 Gone) makes it list
again, and what changed meanwhile is published as ordinary events; a dropped
connection (or the server's watch timeout) resumes from the last version seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from kubeflowlite.k8s import kube
from kubeflowlite.ui import models
from kubeflowlite.ui.source import Scope

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
RETRY_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
WATCH_SECONDS = 300


@dataclass(frozen=True)
class RunEvent:
    kind: str
    """ADDED, MODIFIED, DELETED, or OVERFLOW (the subscriber was too slow: it starts over)."""
    run: models.RunStates | None


OVERFLOW = RunEvent("OVERFLOW", None)
Key = tuple[str, str]
"""(namespace, run name)."""


class Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class RunCache:
    """Every DAGRun of the scope as `RunStates`, kept current by one watch, fanned out to subscribers.

    `start()` (the app's lifespan calls it) begins listing; `warm()` waits for the first
    list; reads (`runs_of`, `all_runs`, `get`) answer from memory.
    """

    def __init__(self, client: kube.Kube, scope: Scope, *, retry_seconds: float = RETRY_SECONDS) -> None:
        self.client = client
        self.scope = scope
        self.retry_seconds = retry_seconds
        self.lists = 0
        """How many times the runs were listed (once, plus once per expired watch)."""
        self.error: Exception | None = None
        """Why the last list or watch failed (until one succeeds): a refused list is shown, not waited on."""
        self._runs: dict[Key, models.RunStates] = {}
        self._snapshots: dict[tuple[str, str], tuple[str, ...]] = {}
        self._version: str | None = None
        self._ready = asyncio.Event()
        self._failed = asyncio.Event()
        self._queues: set[asyncio.Queue[RunEvent]] = set()
        self._task: asyncio.Task[None] | None = None

    # --- life ----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())

    async def close(self) -> None:
        """Stop following (subscribers keep their queues: `start` or `resume_from` follows again)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def warm(self, timeout: float) -> bool:
        """Wait for the first list: True once the cache mirrors the API, False if it failed or is late."""
        self.start()
        if self._ready.is_set():
            return True
        waits = [asyncio.ensure_future(self._ready.wait()), asyncio.ensure_future(self._failed.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return self._ready.is_set()

    async def resume_from(self, version: str) -> None:
        """Test seam: follow again (after `close`) from `version`, as after a lost connection."""
        await self.close()
        self._version = version
        self.start()

    # --- reads -------------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def runs_of(self, namespace: str, dag: str) -> list[models.RunStates]:
        return [run for run in self._runs.values() if run.namespace == namespace and run.dag == dag]

    def all_runs(self) -> list[models.RunStates]:
        return list(self._runs.values())

    def get(self, namespace: str, name: str) -> models.RunStates | None:
        return self._runs.get((namespace, name))

    # --- subscribers -------------------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[RunEvent]:
        queue: asyncio.Queue[RunEvent] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        self.start()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[RunEvent]) -> None:
        self._queues.discard(queue)

    def _publish(self, event: RunEvent) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(OVERFLOW)

    # --- the informer loop --------------------------------------------------------------------------------

    async def _follow(self) -> None:
        pause = self.retry_seconds
        while True:
            try:
                if self._version is None:
                    await self._list()
                await self._watch()
                pause = self.retry_seconds
            except asyncio.CancelledError:
                raise
            except Expired as expired:
                log.info("DAGRun watch expired (%s): listing again", expired)
                self._version = None
            except (TimeoutError, kube.ApiError, aiohttp.ClientError, ValueError) as error:
                log.warning("DAGRun list/watch failed: %s; trying again", error)
                self.error = error
                self._failed.set()
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_SECONDS)  # a refusal (RBAC) is not retried every second

    async def _list(self) -> None:
        items, version = await self.client.list_with_version(kube.DAGRUNS, self.scope.namespace)
        self.lists += 1
        self._replace(self._compact(item) for item in items)
        self._version = version or None
        self.error = None
        self._failed.clear()
        self._ready.set()

    async def _watch(self) -> None:
        try:
            async for event in self.client.watch(
                kube.DAGRUNS,
                self.scope.namespace,
                resource_version=self._version,
                timeout_seconds=WATCH_SECONDS,
            ):
                self._apply(event)
        except kube.ApiError as error:
            if error.status == 410:  # refused at the start rather than as an ERROR event
                raise Expired(error.message) from None
            raise

    def _apply(self, event: dict[str, Any]) -> None:
        """One watch event: into the cache, then to every subscriber."""
        kind = str(event.get("type") or "")
        obj = event.get("object") or {}
        if kind == "ERROR":
            # 410 Gone: the version is older than the server keeps; anything else: start over too.
            raise Expired(str(obj.get("message") or obj))
        self._version = str((obj.get("metadata") or {}).get("resourceVersion") or self._version)
        if kind == "BOOKMARK":
            return
        run = self._compact(obj)
        key = (run.namespace, run.name)
        if kind == "DELETED":
            self._runs.pop(key, None)
        else:
            self._runs[key] = run
        self._publish(RunEvent(kind, run))

    def _replace(self, runs: Iterable[models.RunStates]) -> None:
        """A fresh list: the cache becomes it, and subscribers hear what changed since the last one."""
        fresh = {(run.namespace, run.name): run for run in runs}
        old, self._runs = self._runs, fresh
        for key, run in old.items():
            if key not in fresh:
                self._publish(RunEvent("DELETED", run))
        for key, run in fresh.items():
            before = old.get(key)
            if before is None or before.resource_version != run.resource_version:
                self._publish(RunEvent("ADDED" if before is None else "MODIFIED", run))

    def _compact(self, obj: dict[str, Any]) -> models.RunStates:
        """The run reduced to `RunStates`, its strings interned and its snapshot shared with its DAG's other runs."""
        run = models.run_states(obj)
        tasks = {sys.intern(task): sys.intern(state) for task, state in run.tasks.items()}
        snapshot = run.snapshot
        if snapshot is not None:
            key = (run.namespace, run.dag)
            known = self._snapshots.get(key)
            if known == snapshot:
                snapshot = known
            else:
                snapshot = tuple(sys.intern(task) for task in snapshot)
                self._snapshots[key] = snapshot
        return replace(run, tasks=tasks, snapshot=snapshot)
