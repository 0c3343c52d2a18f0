"""The web UI's DAGRun cache against a real kube-apiserver: it mirrors adds, updates and deletes
from its one watch, and lists again when its watch's resourceVersion has expired (410 Gone)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from kubeflowlite.k8s import kube
from kubeflowlite.ui import informer
from kubeflowlite.ui.source import Scope

TASKS = [{"name": "first", "bash": "true"}, {"name": "second", "bash": "true", "dependsOn": ["first"]}]


def dagrun(name: str, day: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": name},
        "spec": {"dagName": "mirrored", "logicalDate": f"2020-01-{day:02d}T00:00:00Z", "runType": "manual"},
    }


def status(**states: str) -> dict[str, Any]:
    return {
        "status": {
            "state": "running",
            "dagSpec": {"tasks": TASKS},
            "tasks": {task: {"state": state, "tryNumber": 1} for task, state in states.items()},
        }
    }


async def until(check: Callable[[], object], what: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def drain(queue: asyncio.Queue[informer.RunEvent]) -> list[tuple[str, str]]:
    events = []
    while not queue.empty():
        event = queue.get_nowait()
        events.append((event.kind, event.run.name if event.run else ""))
    return events


def test_the_cache_mirrors_adds_updates_and_deletes(cluster: Any, crds: None, namespace: str) -> None:
    async def scenario() -> None:
        config = kube.load_cluster_config(str(cluster.kubeconfig))
        async with kube.Kube(config) as client:
            await client.create(kube.DAGRUNS, namespace, dagrun("before", 1))
            await client.patch(
                kube.DAGRUNS, namespace, "before", status(first="success"), subresource="status"
            )
            cache = informer.RunCache(client, Scope(namespace))
            try:
                assert await cache.warm(30), cache.error
                listed = cache.get(namespace, "before")
                assert listed is not None
                assert (listed.dag, listed.logical_date, dict(listed.tasks)) == (
                    "mirrored",
                    "2020-01-01T00:00:00Z",
                    {"first": "success"},
                )
                queue = cache.subscribe()

                await client.create(kube.DAGRUNS, namespace, dagrun("after", 2))
                await until(lambda: cache.get(namespace, "after") is not None, "the new run in the cache")
                await client.patch(
                    kube.DAGRUNS, namespace, "after", status(first="running"), subresource="status"
                )
                await until(
                    lambda: (
                        (r := cache.get(namespace, "after")) is not None and r.tasks.get("first") == "running"
                    ),
                    "the new run's task state",
                )
                after = cache.get(namespace, "after")
                assert after is not None and after.snapshot == ("first", "second")
                assert after.column(["first", "second"]) == {"first": "running", "second": "none"}
                before = cache.get(namespace, "before")
                assert (
                    before is not None and before.snapshot is after.snapshot
                )  # one copy per DAG's task list
                assert sorted(r.name for r in cache.runs_of(namespace, "mirrored")) == ["after", "before"]
                assert cache.runs_of(namespace, "other") == []

                await client.delete(kube.DAGRUNS, namespace, "before")
                await until(
                    lambda: cache.get(namespace, "before") is None, "the deleted run to leave the cache"
                )
                assert drain(queue) == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "before")]
                assert cache.lists == 1  # one list, then only the watch
            finally:
                await cache.close()

    asyncio.run(scenario())


def test_an_expired_watch_lists_again_and_reports_what_it_missed(
    cluster: Any, crds: None, namespace: str
) -> None:
    async def scenario() -> None:
        config = kube.load_cluster_config(str(cluster.kubeconfig))
        async with kube.Kube(config) as client:
            for name, day in (("kept", 1), ("changed", 2), ("removed", 3)):
                await client.create(kube.DAGRUNS, namespace, dagrun(name, day))
            cache = informer.RunCache(client, Scope(namespace))
            try:
                assert await cache.warm(30), cache.error
                queue = cache.subscribe()
                await cache.close()  # the watch is down: these changes are not seen as they happen
                await client.patch(
                    kube.DAGRUNS, namespace, "changed", status(first="failed"), subresource="status"
                )
                await client.delete(kube.DAGRUNS, namespace, "removed")
                await client.create(kube.DAGRUNS, namespace, dagrun("new", 4))

                await cache.resume_from("1")  # long compacted away: the server answers 410 Gone
                await until(lambda: cache.lists == 2, "the cache to list again")
                assert sorted(r.name for r in cache.all_runs()) == ["changed", "kept", "new"]
                changed = cache.get(namespace, "changed")
                assert changed is not None and changed.tasks == {"first": "failed"}
                assert sorted(drain(queue)) == [
                    ("ADDED", "new"),
                    ("DELETED", "removed"),
                    ("MODIFIED", "changed"),
                ]

                await client.create(kube.DAGRUNS, namespace, dagrun("later", 5))  # and it watches again
                await until(lambda: cache.get(namespace, "later") is not None, "a run created after the list")
                assert cache.lists == 2
            finally:
                await cache.close()

    asyncio.run(scenario())


def test_a_refused_list_is_reported_not_waited_on(cluster: Any, crds: None, namespace: str) -> None:
    """Without the right to list DAGRuns the cache says so at once (the page then shows the API's 403)."""
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = cluster.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    base = kube.load_cluster_config(str(cluster.kubeconfig))
    config = dataclasses.replace(base, token=token, cert_file=None, key_file=None, exec_plugin=None)

    async def scenario() -> None:
        async with kube.Kube(config) as client:
            cache = informer.RunCache(client, Scope(namespace), retry_seconds=60)
            try:
                assert not await cache.warm(20)
                assert isinstance(cache.error, kube.ApiError) and cache.error.status == 403
            finally:
                await cache.close()

    asyncio.run(scenario())
