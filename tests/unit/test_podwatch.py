"""The operator's Pod cache: what is listed at start, seeding a run, watch events, relists.

Boundary: the real PodCache over a fake client that answers the three calls it makes
(list with version, list, watch) from an in-memory set of Pods with label and field
selectors applied as the apiserver applies them; the watch replays the events a test
puts in its queue. The same cache runs against a real apiserver in tests/cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from kubeflowlite.k8s import kube, names, podwatch

NS = "ns"


def pod(run: str, task: str, phase: str, version: int, *, uid: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": names.pod_name(run, task, 1),
            "namespace": NS,
            "uid": uid or f"uid-{run}-{task}",
            "resourceVersion": str(version),
            "labels": {names.LABEL_RUN: run, names.LABEL_TASK: task, names.LABEL_TRY: "1"},
            "annotations": {names.ANNOTATION_RUN_NAME: run, names.ANNOTATION_TASK_ID: task},
        },
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": phase},
    }


@dataclass
class FakeClient:
    pods: list[dict[str, Any]] = field(default_factory=list)
    version: int = 100
    lists: list[tuple[str | None, str | None]] = field(default_factory=list)
    events: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    before_list_returns: list[dict[str, Any]] = field(default_factory=list)
    """Watch events that happen while a list request is in flight (applied just before it returns)."""
    cache: podwatch.PodCache | None = None

    def _select(self, label_selector: str | None, field_selector: str | None) -> list[dict[str, Any]]:
        found = []
        for item in self.pods:
            labels = item["metadata"]["labels"]
            if label_selector and "=" in label_selector:
                key, value = label_selector.split("=", 1)
                if labels.get(key) != value:
                    continue
            elif label_selector and label_selector not in labels:
                continue
            if field_selector == podwatch.NOT_FINISHED and item["status"]["phase"] in ("Succeeded", "Failed"):
                continue
            found.append(item)
        return found

    async def list_with_version(
        self, resource: kube.Resource, namespace: str | None, *, label_selector: str, field_selector: str
    ) -> tuple[list[dict[str, Any]], str]:
        self.lists.append((label_selector, field_selector))
        return self._select(label_selector, field_selector), str(self.version)

    async def list_objects(
        self, resource: kube.Resource, namespace: str | None, *, label_selector: str
    ) -> list[dict[str, Any]]:
        self.lists.append((label_selector, None))
        found = self._select(label_selector, None)
        assert self.cache is not None
        for event in self.before_list_returns:
            self.cache._apply(event["type"], event["object"])
        return found

    async def watch(
        self, resource: kube.Resource, namespace: str | None, **_: Any
    ) -> AsyncIterator[dict[str, Any]]:
        while (event := await self.events.get()) is not None:
            yield event


def cache_over(client: FakeClient) -> tuple[podwatch.PodCache, list[tuple[str, str]]]:
    changed: list[tuple[str, str]] = []
    cache = podwatch.PodCache(
        client,  # type: ignore[arg-type]
        namespaces=(NS,),
        on_change=lambda namespace, run: changed.append((namespace, run)),
    )
    client.cache = cache
    return cache, changed


def names_of(cache: podwatch.PodCache, run: str) -> set[str]:
    return {p["metadata"]["name"] for p in cache.pods_of_run(NS, run)}


def test_start_lists_only_unfinished_pods_and_seeding_adds_a_runs_finished_ones() -> None:
    async def scenario() -> None:
        client = FakeClient(
            pods=[
                pod("old", "a", "Succeeded", 1),
                pod("old", "b", "Failed", 2),
                pod("live", "a", "Succeeded", 3),
                pod("live", "b", "Running", 4),
            ]
        )
        cache, changed = cache_over(client)
        await cache.start()
        assert client.lists == [(names.LABEL_RUN, podwatch.NOT_FINISHED)]
        assert names_of(cache, "live") == {names.pod_name("live", "b", 1)}
        assert names_of(cache, "old") == set() and len(cache) == 1

        await cache.seed(NS, "live")
        assert names_of(cache, "live") == {names.pod_name("live", "a", 1), names.pod_name("live", "b", 1)}
        await cache.seed(NS, "live")  # once only
        assert client.lists[1:] == [(f"{names.LABEL_RUN}=live", None)]
        assert names_of(cache, "old") == set(), "a finished run is never listed unless asked for"
        assert changed == []
        await cache.stop()

    asyncio.run(scenario())


def test_watch_events_update_the_cache_and_queue_the_run() -> None:
    async def scenario() -> None:
        client = FakeClient()
        cache, changed = cache_over(client)
        await cache.start()
        client.events.put_nowait({"type": "ADDED", "object": pod("r", "a", "Pending", 101)})
        client.events.put_nowait({"type": "MODIFIED", "object": pod("r", "a", "Succeeded", 102)})
        client.events.put_nowait({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "103"}}})
        client.events.put_nowait({"type": "ADDED", "object": pod("r", "b", "Running", 104)})
        client.events.put_nowait({"type": "DELETED", "object": pod("r", "b", "Running", 105)})
        while not client.events.empty():
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        [only] = cache.pods_of_run(NS, "r")
        assert only["status"]["phase"] == "Succeeded" and "spec" not in only
        assert changed == [(NS, "r")] * 4
        await cache.stop()

    asyncio.run(scenario())


def test_a_pod_deleted_while_a_seed_is_listing_is_not_brought_back() -> None:
    async def scenario() -> None:
        gone = pod("r", "a", "Succeeded", 5)
        client = FakeClient(pods=[gone, pod("r", "b", "Succeeded", 6)])
        cache, _ = cache_over(client)
        await cache.start()
        client.before_list_returns = [{"type": "DELETED", "object": gone}]
        await cache.seed(NS, "r")
        assert names_of(cache, "r") == {names.pod_name("r", "b", 1)}
        await cache.stop()

    asyncio.run(scenario())


def test_an_older_version_never_replaces_a_newer_one() -> None:
    async def scenario() -> None:
        client = FakeClient(pods=[pod("r", "a", "Succeeded", 9)])
        cache, _ = cache_over(client)
        await cache.start()
        await cache.seed(NS, "r")
        cache._apply("MODIFIED", pod("r", "a", "Running", 7))  # the watch catching up behind the seed
        [only] = cache.pods_of_run(NS, "r")
        assert only["status"]["phase"] == "Succeeded"
        await cache.stop()

    asyncio.run(scenario())


def test_a_relist_after_an_expired_watch_makes_every_run_seed_again() -> None:
    async def scenario() -> None:
        client = FakeClient(pods=[pod("r", "a", "Succeeded", 1), pod("r", "b", "Running", 2)])
        cache, changed = cache_over(client)
        await cache.start()
        await cache.seed(NS, "r")
        assert cache.seeded(NS, "r")
        client.events.put_nowait({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
        for _ in range(20):
            await asyncio.sleep(0)
        assert not cache.seeded(NS, "r")
        assert names_of(cache, "r") == {names.pod_name("r", "b", 1)}
        assert (NS, "r") in changed, "the run is queued, and its reconcile seeds it again"
        await cache.seed(NS, "r")
        assert len(names_of(cache, "r")) == 2
        await cache.stop()

    asyncio.run(scenario())


def test_release_forgets_a_run_until_it_is_seeded_again() -> None:
    async def scenario() -> None:
        client = FakeClient(pods=[pod("r", "a", "Succeeded", 1)])
        cache, _ = cache_over(client)
        await cache.start()
        await cache.seed(NS, "r")
        cache.release(NS, "r")
        assert cache.pods_of_run(NS, "r") == [] and not cache.seeded(NS, "r")
        await cache.seed(NS, "r")
        assert len(cache.pods_of_run(NS, "r")) == 1
        await cache.stop()

    asyncio.run(scenario())


def test_an_update_that_observation_does_not_read_queues_nothing() -> None:
    async def scenario() -> None:
        client = FakeClient(pods=[pod("r", "a", "Pending", 1)])
        cache, changed = cache_over(client)
        await cache.start()
        bound = pod("r", "a", "Pending", 2)
        bound["spec"]["nodeName"] = "node-1"
        bound["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
        cache._apply("MODIFIED", bound)
        assert changed == [], "bound by the scheduler: nothing observation reads changed"
        [kept] = cache.pods_of_run(NS, "r")
        assert kept["metadata"]["resourceVersion"] == "2"
        unschedulable = pod("r", "a", "Pending", 3)
        unschedulable["status"]["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no node"}
        ]
        cache._apply("MODIFIED", unschedulable)
        cache._apply("MODIFIED", pod("r", "a", "Running", 4))
        assert changed == [(NS, "r"), (NS, "r")]
        await cache.stop()

    asyncio.run(scenario())
