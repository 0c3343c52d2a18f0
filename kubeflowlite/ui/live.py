"""Live grid updates: one shared watch of DAGRuns, and per-page streams of the cells that changed.

Airflow's grid refetched whole run states and froze large DAGs (#23772, #51805);
here the page gets its structure once and then only the cells that changed, as
server-sent events (`cells`: {"cells": {run: {task: state}}, "runs": {run: state}}).
However many pages follow, the server keeps one watch of DAGRuns for its scope
(`RunHub`), reduces each event once to the run's task states (`models.RunStates`,
never the whole object), and each page's stream keeps the states it last sent
for the runs it shows and sends the difference. A run that belongs on the page but
is not on it (created since), or one that vanished, asks the page to fetch its
grid again (`structure`): the only time structure is sent twice.

On connect a stream checks, with a metadata-only list, which of its runs changed
between the page's render and its subscription, and sends those columns whole.
A run page's graph follows its run the same way (`run_events`: task -> state), and
a running try's log panel gets its tail and then what the container writes (`log_events`).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from kubeflowlite.k8s import kube
from kubeflowlite.ui import models
from kubeflowlite.ui.source import PodGone, Scope, Source

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class RunEvent:
    kind: str
    """ADDED, MODIFIED, DELETED, or OVERFLOW (the subscriber was too slow: it starts over)."""
    run: models.RunStates | None


OVERFLOW = RunEvent("OVERFLOW", None)


class RunHub:
    """One watch of DAGRun objects in the scope, fanned out to every subscriber's queue.

    The watch runs only while someone is subscribed; each event is reduced once and shared.
    """

    def __init__(self, client: kube.Kube, scope: Scope) -> None:
        self.client = client
        self.scope = scope
        self._queues: set[asyncio.Queue[RunEvent]] = set()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[RunEvent]:
        queue: asyncio.Queue[RunEvent] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[RunEvent]) -> None:
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

    def _publish(self, event: RunEvent) -> None:
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
            try:
                async for event in self.client.watch(
                    kube.DAGRUNS, self.scope.namespace, resource_version=version
                ):
                    obj = event.get("object") or {}
                    kind = str(event.get("type") or "")
                    if kind == "ERROR":
                        version = None  # 410 Gone (or worse): watch from scratch, every run ADDED again
                        break
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind != "BOOKMARK":
                        self._publish(RunEvent(kind, models.run_states(obj)))
            except asyncio.CancelledError:
                raise
            except (TimeoutError, kube.ApiError, aiohttp.ClientError, ValueError) as error:
                log.warning("DAGRun watch ended: %s; watching again", error)
                await asyncio.sleep(RETRY_SECONDS)


def sse(event: str, data: Any) -> dict[str, str]:
    return {"event": event, "data": json.dumps(data, separators=(",", ":"))}


def cells(run: models.RunStates, columns: dict[str, str]) -> dict[str, str]:
    return sse("cells", {"cells": {run.name: columns}, "runs": {run.name: run.state}})


async def grid_events(
    source: Source, hub: RunHub, *, namespace: str, dag: str, watch_key: str, offset: int, floor: str
) -> AsyncIterator[dict[str, str]]:
    """The events of one open grid page (see the module docstring)."""
    shown = models.parse_watch_key(watch_key)
    queue = hub.subscribe()
    try:
        dag_obj = await source.dag(namespace, dag)
        dag_tasks = models.task_ids(dag_obj, [])
        sent: dict[str, dict[str, str]] = {}

        def column(run: models.RunStates) -> dict[str, str]:
            return run.column(list(dict.fromkeys([*dag_tasks, *run.tasks])))

        versions = await source.run_versions(namespace)
        for name, version in shown.items():
            if name not in versions:
                yield sse("structure", {})
            elif versions[name] != version:  # changed between the page's render and this stream
                found = await source.run(namespace, name)
                if found is not None:
                    now = models.run_states(found)
                    sent[name] = column(now)
                    yield cells(now, sent[name])
        while True:
            event = await queue.get()
            if event.run is None:
                yield sse("structure", {})
                continue
            run = event.run
            if run.namespace != namespace or run.dag != dag:
                continue
            if run.name in shown:
                if event.kind == "DELETED":
                    yield sse("structure", {})
                    continue
                states = column(run)
                if run.name not in sent and run.resource_version == shown[run.name]:
                    sent[run.name] = states  # what the page rendered: the baseline, nothing to send
                    continue
                delta = models.changed(sent[run.name], states) if run.name in sent else states
                sent[run.name] = states
                if delta:
                    yield cells(run, delta)
            elif event.kind != "DELETED" and offset == 0 and models.belongs_on_first_page(run, floor):
                yield sse("structure", {})
    finally:
        hub.unsubscribe(queue)


async def run_events(
    source: Source, hub: RunHub, *, namespace: str, run_name: str, version: str
) -> AsyncIterator[dict[str, str]]:
    """The events of one open run page (its graph): `tasks` ({"tasks": {task: state}, "state": run state})."""
    queue = hub.subscribe()
    try:
        sent: dict[str, str] = {}
        versions = await source.run_versions(namespace)
        if versions.get(run_name, version) != version:  # changed between the page's render and this stream
            found = await source.run(namespace, run_name)
            if found is not None:
                now = models.run_states(found)
                sent = dict(now.tasks)
                yield sse("tasks", {"tasks": sent, "state": now.state})
        while True:
            event = await queue.get()
            run = event.run
            if run is None or run.namespace != namespace or run.name != run_name or event.kind == "DELETED":
                continue
            delta = models.changed(sent, run.tasks)
            sent = dict(run.tasks)
            yield sse("tasks", {"tasks": delta, "state": run.state})
    finally:
        hub.unsubscribe(queue)


async def log_events(
    source: Source, *, namespace: str, pod: str, tail: int | None
) -> AsyncIterator[dict[str, str]]:
    """A running try's log as events: `log` (text to append), then `end` or `failed` (a message); never twice."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    try:
        async for chunk in source.follow_log(namespace, pod, tail=tail):
            text = decoder.decode(chunk)
            if text:
                yield sse("log", text)
        yield sse("end", "the container ended")
    except PodGone:
        yield sse("end", f"the Pod {pod} is gone")
    except kube.ApiError as error:
        yield sse(
            "failed", f"the API server did not return the log: {error.status} {error.reason}: {error.message}"
        )
    except (TimeoutError, aiohttp.ClientError) as error:
        yield sse("end", f"the log stream stopped ({type(error).__name__}): refresh to follow again")
