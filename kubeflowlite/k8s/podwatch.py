"""The operator's copy of its task Pods: a list and a watch per namespace, slim copies, runs seeded on demand.

DAGs and DAGRuns are few and come from kopf's indices (operator.py); task Pods are
many, so they have this cache of their own. With a kopf index, kopf watched every
Pod of the namespace (its label filters are applied client-side), ran its whole
per-object machinery on every event (a worker per Pod, a deep copy of each body for
a diff base we never read, cause detection) and, before any handler ran, listed
every Pod ever kept in the namespace. At a thousand Pods in flight that was most of
the operator's CPU, and start-up grew with the namespace's finished history. Here:

- the list and the watch carry the label selector `kubeflowlite.io/run`: the server
  sends our Pods only;
- each Pod is kept as `view.slim_pod` (the few fields observation reads), by
  (namespace, run label) and Pod name;
- at start only the Pods that have not finished are listed (a field selector on
  `status.phase`), so finished runs cost nothing however many Pods they kept. A
  finished Pod of a run still in flight does matter (its outcome may not be recorded
  yet), so the first time a run's Pods are needed the run is *seeded*: its Pods are
  listed once by label (`seed`). The watch keeps every seeded run complete after that.

The contract the run controller relies on, as with an informer: once `seed(ns, run)`
has returned, `pods_of_run(ns, run)` holds every Pod of that run that exists, each
as of some moment at or after the cache started, and every event since; a Pod
missing from it is gone. A watch the server ends is resumed from its last
resourceVersion; one whose version expired (410 Gone) lists again, and every run is
seeded again before it is next reconciled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kubeflowlite.k8s import kube, names, view

logger = logging.getLogger(__name__)

SELECTOR = names.LABEL_RUN
"""Our Pods: every task Pod carries the run label (k8s.names.task_labels)."""
NOT_FINISHED = "status.phase!=Succeeded,status.phase!=Failed"
WATCH_SECONDS = 300
RETRY_MAX = 10.0

RunKey = tuple[str, str]
"""(namespace, run label value)."""


class PodCache:
    """Slim copies of the task Pods in `namespaces` (None: every namespace), kept by one watch each."""

    def __init__(
        self,
        client: kube.Kube,
        *,
        namespaces: tuple[str, ...] | None,
        on_change: Callable[[str, str], None],
    ) -> None:
        self.client = client
        self.scopes: tuple[str | None, ...] = namespaces if namespaces else (None,)
        self.on_change = on_change
        """Called with (namespace, run name) after a Pod of that run changed."""
        self._pods: dict[RunKey, dict[str, dict[str, Any]]] = {}
        self._seeded: set[RunKey] = set()
        self._names: dict[RunKey, str] = {}
        """Run label -> run name, of seeded runs (a label may be a hash of a long name)."""
        self._generation = 0
        """Bumped by every relist: a seed begun before it does not count."""
        self._seeding = 0
        self._deleted: set[tuple[str, str, str]] = set()
        """(namespace, name, uid) of Pods deleted while a seed's list was in flight."""
        self._tasks: list[asyncio.Task[None]] = []

    # -- reading --------------------------------------------------------------------------------

    def pods_of_run(self, namespace: str, run_name: str) -> list[dict[str, Any]]:
        return list(self._pods.get((namespace, names.label_value(run_name)), {}).values())

    def seeded(self, namespace: str, run_name: str) -> bool:
        return (namespace, names.label_value(run_name)) in self._seeded

    async def seed(self, namespace: str, run_name: str) -> None:
        """Make sure every Pod of the run is in the cache (one list by label the first time)."""
        key = (namespace, names.label_value(run_name))
        if key in self._seeded:
            return
        generation = self._generation
        self._seeding += 1
        try:
            items = await self.client.list_objects(
                kube.PODS, namespace, label_selector=f"{names.LABEL_RUN}={key[1]}"
            )
            if generation != self._generation:
                return  # relisted meanwhile: the next reconcile seeds again
            pods = self._pods.setdefault(key, {})
            for item in items:
                metadata = item.get("metadata") or {}
                name = str(metadata.get("name"))
                # Present: the watch (or the start-up list) already has it, as new or newer.
                if name in pods or (namespace, name, str(metadata.get("uid"))) in self._deleted:
                    continue
                pods[name] = view.slim_pod(item)
            if not pods:
                del self._pods[key]
            self._seeded.add(key)
            self._names[key] = run_name
        finally:
            self._seeding -= 1
            if not self._seeding:
                self._deleted.clear()

    def release(self, namespace: str, run_name: str) -> None:
        """Forget a finished (or deleted) run's Pods; it is seeded again if it is ever needed again."""
        key = (namespace, names.label_value(run_name))
        self._pods.pop(key, None)
        self._seeded.discard(key)
        self._names.pop(key, None)

    def __len__(self) -> int:
        return sum(len(pods) for pods in self._pods.values())

    # -- running --------------------------------------------------------------------------------

    async def start(self) -> None:
        """List the unfinished Pods of every scope (retrying until the server answers), then watch."""
        versions = []
        for scope in self.scopes:
            delay = 0.5
            while True:
                try:
                    versions.append(await self._relist(scope))
                    break
                except Exception as error:  # the apiserver not answering yet: keep trying
                    logger.warning("listing task pods failed, retrying: %s", error or type(error).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
        self._tasks = [
            asyncio.create_task(self._watch(scope, version), name=f"pod-watch-{scope or 'all'}")
            for scope, version in zip(self.scopes, versions, strict=True)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _relist(self, scope: str | None) -> str:
        """The scope's unfinished Pods replace what was kept of it; returns the list's resourceVersion."""
        items, version = await self.client.list_with_version(
            kube.PODS, scope, label_selector=SELECTOR, field_selector=NOT_FINISHED
        )
        self._generation += 1
        complete = {key for key in self._seeded if scope is None or key[0] == scope}
        for key in [key for key in self._pods if scope is None or key[0] == scope]:
            del self._pods[key]
        self._seeded -= complete
        for item in items:
            self._apply("ADDED", item, notify=False)
        # Runs that were complete are not any more: reconcile them, which seeds them again.
        for key in complete:
            self.on_change(key[0], self._names.get(key, key[1]))
        return version

    async def _watch(self, scope: str | None, version: str | None) -> None:
        delay = 0.5
        while True:
            try:
                if version is None:
                    version = await self._relist(scope)
                async for event in self.client.watch(
                    kube.PODS,
                    scope,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                    label_selector=SELECTOR,
                ):
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            version = None
                            break
                        raise kube.ApiError(
                            int(obj.get("code") or 500), str(obj.get("reason") or ""), str(obj.get("message"))
                        )
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if kind != "BOOKMARK":
                        self._apply(str(kind), obj)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a dropped connection, a restarted apiserver: resume
                if isinstance(error, kube.ApiError) and error.status == 410:
                    version = None
                logger.warning(
                    "pod watch of %s interrupted, resuming: %s",
                    scope or "all namespaces",
                    error or type(error).__name__,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    def _apply(self, kind: str, obj: dict[str, Any], *, notify: bool = True) -> None:
        metadata = obj.get("metadata") or {}
        run = (metadata.get("labels") or {}).get(names.LABEL_RUN)
        if not run:
            return
        namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name"))
        key = (namespace, run)
        if kind == "DELETED":
            pods = self._pods.get(key)
            if pods is not None:
                pods.pop(name, None)
                if not pods and key not in self._seeded:
                    del self._pods[key]
            if self._seeding:
                self._deleted.add((namespace, name, str(metadata.get("uid"))))
        else:
            pods = self._pods.setdefault(key, {})
            current = pods.get(name)
            if current is not None and not _newer(metadata, current["metadata"]):
                return  # an older version than the one a seed already put here
            slim = pods[name] = view.slim_pod(obj)
            if kind == "MODIFIED" and current is not None and _same_but_version(slim, current):
                # Nothing observation reads changed (the scheduler bound it, an IP was set):
                # no reconcile. Most of a Pod's updates are of this kind.
                notify = False
        if notify:
            self.on_change(
                namespace, (metadata.get("annotations") or {}).get(names.ANNOTATION_RUN_NAME) or run
            )


def _same_but_version(new: dict[str, Any], old: dict[str, Any]) -> bool:
    if new["status"] != old["status"]:
        return False
    new_meta, old_meta = new["metadata"], old["metadata"]
    return all(
        new_meta.get(key) == old_meta.get(key)
        for key in new_meta.keys() | old_meta.keys()
        if key != "resourceVersion"
    )


def _newer(incoming: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether `incoming` may replace `current` (resourceVersions compared when both are numbers, as etcd's are)."""
    try:
        return int(incoming.get("resourceVersion") or 0) >= int(current.get("resourceVersion") or 0)
    except ValueError:
        return True
