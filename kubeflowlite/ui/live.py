"""Live grid updates: one shared watch of DAGRuns, and per-page streams of the cells that changed.

Airflow's grid refetched whole run states and froze large DAGs (#23772, #51805);
here the page gets its structure once and then only (cell id -> state) pairs that
changed, as server-sent events. However many pages follow, the server keeps one
watch of DAGRuns for its scope (`RunHub`); each page's stream keeps the states it
last sent for the runs it shows and sends the difference. A run that appears on
(or disappears from) the page's range asks the page to fetch its grid again
(`structure`), which is the only time structure is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from kubeflowlite.k8s import kube
from kubeflowlite.ui import models
from kubeflowlite.ui.source import Scope, Source

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
RETRY_SECONDS = 1.0
OVERFLOW = {"type": "OVERFLOW", "object": {}}
"""Put on a subscriber's queue in place of events it was too slow to take: it starts over."""


class RunHub:
    """One watch of DAGRun objects in the scope, fanned out to every subscriber's queue.

    The watch runs only while someone is subscribed. Events are shared objects, never copied.
    """

    def __init__(self, client: kube.Kube, scope: Scope) -> None:
        self.client = client
        self.scope = scope
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self._task: asyncio.Task[None] | None = None
        self.watches_started = 0

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queues.discard(queue)
        if not self._queues and self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        self._queues.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(OVERFLOW)

    async def _follow(self) -> None:
        version: str | None = None
        while True:
            self.watches_started += 1
            try:
                async for event in self.client.watch(
                    kube.DAGRUNS, self.scope.namespace, resource_version=version
                ):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        version = None  # 410 Gone (or worse): list again by watching from scratch
                        break
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event.get("type") != "BOOKMARK":
                        self._publish(event)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, kube.ApiError, aiohttp.ClientError, ValueError) as error:
                log.warning("DAGRun watch ended: %s; watching again", error)
                await asyncio.sleep(RETRY_SECONDS)


def sse(event: str, data: Any) -> dict[str, str]:
    return {"event": event, "data": json.dumps(data, separators=(",", ":"))}


async def grid_events(
    source: Source, hub: RunHub, *, namespace: str, dag: str, watch_key: str, offset: int
) -> AsyncIterator[dict[str, str]]:
    """The events of one open grid page: `cells` ({id: state}) and `structure` (fetch the grid again)."""
    shown = models.parse_watch_key(watch_key)
    queue = hub.subscribe()
    try:
        dag_obj = await source.dag(namespace, dag)
        runs = await source.runs_of(namespace, dag)
        tasks = models.task_ids(dag_obj, [r for r in runs if models.name_of(r) in shown])
        sent: dict[str, dict[str, str]] = {}
        for run in runs:
            name = models.name_of(run)
            if name not in shown:
                continue
            states = models.cell_states(run, tasks) | {models.run_head_id(name): models.run_state(run)}
            sent[name] = states
            if (run.get("metadata") or {}).get("resourceVersion") != shown[name]:
                yield sse("cells", states)  # it changed between the page's render and this stream
        if _page_moved(runs, shown, offset):
            yield sse("structure", {})
        while True:
            event = await queue.get()
            if event is OVERFLOW:
                yield sse("structure", {})
                continue
            run = event.get("object") or {}
            if models.namespace_of(run) != namespace or (run.get("spec") or {}).get("dagName") != dag:
                continue
            name = models.name_of(run)
            if name in shown:
                if event.get("type") == "DELETED":
                    yield sse("structure", {})
                    continue
                states = models.cell_states(run, tasks) | {models.run_head_id(name): models.run_state(run)}
                delta = models.changed(sent.get(name, {}), states)
                sent[name] = states
                if delta:
                    yield sse("cells", delta)
            elif event.get("type") == "ADDED" and offset == 0:
                yield sse("structure", {})
    finally:
        hub.unsubscribe(queue)


def _page_moved(runs: list[dict[str, Any]], shown: dict[str, str], offset: int) -> bool:
    """A run the page does not show belongs on its first page (it was created since the render)."""
    if offset != 0:
        return False
    newest = models.newest_first(runs)[: models.RUNS_PER_PAGE]
    return {models.name_of(run) for run in newest} != set(shown)
