"""Live grid updates: per-page streams of the cells that changed, fed by the UI's one DAGRun watch.

Airflow's grid refetched whole run states and froze large DAGs (#23772, #51805);
here the page gets its structure once and then only the cells that changed, as
server-sent events (`cells`: {"cells": {run: {task: state}}, "runs": {run: state}}).
However many pages follow, the server keeps one watch of DAGRuns for its scope
(`informer.RunCache`, which also answers the grid's renders), reduces each event
once to the run's task states (`models.RunStates`, never the whole object), and
each page's stream keeps the states it last sent for the runs it shows and sends
the difference. A run that belongs on the page but is not on it (created since),
or one that vanished, asks the page to fetch its grid again (`structure`): the
only time structure is sent twice.

On connect a stream compares the versions its page rendered with the cache's and
sends the columns that changed in between, whole (the comparison and the
subscription happen without yielding to the event loop, so nothing falls between
them; before the cache's first list, that list's events do the same).
A run page's graph follows its run the same way (`run_events`: task -> state), and
a running try's log panel gets its tail and then what the container writes (`log_events`).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from kubeflowlite.k8s import kube
from kubeflowlite.ui import models
from kubeflowlite.ui.informer import RunCache
from kubeflowlite.ui.source import PodGone, Source


def sse(event: str, data: Any) -> dict[str, str]:
    return {"event": event, "data": json.dumps(data, separators=(",", ":"))}


def cells(run: models.RunStates, columns: dict[str, str]) -> dict[str, str]:
    return sse("cells", {"cells": {run.name: columns}, "runs": {run.name: run.state}})


async def grid_events(
    source: Source, cache: RunCache, *, namespace: str, dag: str, watch_key: str, offset: int, floor: str
) -> AsyncIterator[dict[str, str]]:
    """The events of one open grid page (see the module docstring)."""
    shown = models.parse_watch_key(watch_key)
    queue = cache.subscribe()
    try:
        dag_obj = await source.dag(namespace, dag)
        dag_tasks = models.task_ids(dag_obj, [])
        sent: dict[str, dict[str, str]] = {}

        def column(run: models.RunStates) -> dict[str, str]:
            return run.column(list(dict.fromkeys([*dag_tasks, *run.tasks])))

        if cache.ready:
            for name, version in shown.items():
                now = cache.get(namespace, name)
                if now is None:
                    yield sse("structure", {})
                elif now.resource_version != version:  # changed between the page's render and this stream
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
        cache.unsubscribe(queue)


async def run_events(
    cache: RunCache, *, namespace: str, run_name: str, version: str
) -> AsyncIterator[dict[str, str]]:
    """The events of one open run page (its graph): `tasks` ({"tasks": {task: state}, "state": run state})."""
    queue = cache.subscribe()
    try:
        sent: dict[str, str] = {}
        now = cache.get(namespace, run_name) if cache.ready else None
        if now is not None and now.resource_version != version:  # changed since the page's render
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
        cache.unsubscribe(queue)


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
