"""What the UI reads from and writes to the Kubernetes API: its only source of truth.

Reads are plain list/get calls with the user's (or the chart's ServiceAccount's)
credentials over the shared `k8s.kube` client, so RBAC decides what the UI may
see and do: a refused request raises `kube.ApiError` (403), which the app shows
as the server's message. Writes are exactly the CLI's: the DAGRun of `trigger`,
the `spec.clear` patch of `clear`, the `spec.paused` patch of `pause` (all built
by `cli.cluster_plans`).

`Scope` is the namespaces the UI shows: one, or all (`-A`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubeflowlite.api.dagrun import RunType
from kubeflowlite.cli import cluster_plans
from kubeflowlite.k8s import kube, names, pods, run_manifest

Obj = dict[str, Any]


@dataclass(frozen=True)
class Scope:
    """The namespace the UI shows, or None for every namespace."""

    namespace: str | None

    def allows(self, namespace: str) -> bool:
        return self.namespace is None or self.namespace == namespace


class PodGone(LookupError):
    """The Pod of a try does not exist (deleted, or never created)."""


@dataclass
class Source:
    client: kube.Kube
    scope: Scope

    # --- reads ------------------------------------------------------------------------------------

    async def dags(self) -> list[Obj]:
        return await self.client.list_objects(kube.DAGS, self.scope.namespace)

    async def all_runs(self) -> list[Obj]:
        return await self.client.list_objects(kube.DAGRUNS, self.scope.namespace)

    async def dag(self, namespace: str, name: str) -> Obj | None:
        return await self.client.get_or_none(kube.DAGS, namespace, name)

    async def runs_of(self, namespace: str, dag: str) -> list[Obj]:
        """The DAG's runs (by spec.dagName: runs made with kubectl carry no label)."""
        runs = await self.client.list_objects(kube.DAGRUNS, namespace)
        return [run for run in runs if (run.get("spec") or {}).get("dagName") == dag]

    async def run(self, namespace: str, name: str) -> Obj | None:
        return await self.client.get_or_none(kube.DAGRUNS, namespace, name)

    async def pods_of(self, namespace: str, run: str) -> list[Obj]:
        return await self.client.list_objects(kube.PODS, namespace, label_selector=names.run_selector(run))

    async def pod(self, namespace: str, name: str) -> Obj | None:
        return await self.client.get_or_none(kube.PODS, namespace, name)

    async def xcom(self, namespace: str, run: str) -> Obj | None:
        return await self.client.get_or_none(kube.CONFIGMAPS, namespace, names.xcom_configmap_name(run))

    async def pod_events(self, namespace: str, pod: str) -> list[Obj]:
        selector = f"involvedObject.kind=Pod,involvedObject.name={pod}"
        return await self.client.list_objects(kube.EVENTS, namespace, field_selector=selector)

    async def log(self, namespace: str, pod: str, *, tail: int | None, max_bytes: int) -> bytes:
        """The tail of a try's log (main container); PodGone when its Pod does not exist."""
        chunks: list[bytes] = []
        try:
            async for chunk in self.client.pod_logs(
                namespace, pod, container=pods.MAIN_CONTAINER, tail_lines=tail, limit_bytes=max_bytes
            ):
                chunks.append(chunk)
        except kube.ApiError as error:
            if error.not_found:
                raise PodGone(pod) from None
            raise
        return b"".join(chunks)

    async def follow_log(self, namespace: str, pod: str, *, tail: int | None) -> AsyncIterator[bytes]:
        """A running try's log: its last `tail` lines, then what it writes until its container ends."""
        try:
            async for chunk in self.client.pod_logs(
                namespace, pod, container=pods.MAIN_CONTAINER, follow=True, tail_lines=tail
            ):
                yield chunk
        except kube.ApiError as error:
            if error.not_found:
                raise PodGone(pod) from None
            raise

    # --- writes: exactly the CLI's -----------------------------------------------------------------

    async def trigger(self, namespace: str, dag: str, *, logical_date: datetime, conf: dict[str, Any]) -> str:
        # As `kubeflowlite trigger`: the DAG must exist, and owns its run.
        dag_obj = await self.client.get_or_none(kube.DAGS, namespace, dag)
        if dag_obj is None:
            raise kube.ApiError(404, "NotFound", f"DAG {dag!r} not found in namespace {namespace!r}")
        manifest = run_manifest.dagrun_manifest(
            namespace=namespace, dag=dag_obj, logical_date=logical_date, run_type=RunType.manual, conf=conf
        )
        await self.client.create(kube.DAGRUNS, namespace, manifest)
        return str(manifest["metadata"]["name"])

    async def clear(self, namespace: str, run: str, tasks: Sequence[str]) -> str:
        body, request_id = cluster_plans.clear_patch(tasks)
        await self.client.patch(kube.DAGRUNS, namespace, run, body)
        return request_id

    async def set_paused(self, namespace: str, dag: str, paused: bool) -> None:
        await self.client.patch(kube.DAGS, namespace, dag, cluster_plans.pause_patch(paused))
