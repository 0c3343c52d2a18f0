"""Variables and Connections on a cluster: labelled ConfigMaps and Secrets in the DAG's namespace.

Airflow users change Variables and Connections at run time (Admin -> Variables,
Admin -> Connections). Here they are Kubernetes objects, so `kubectl` or
`kubeflowlite variables|connections` edit them and the next task sees the change:

- Variables: the data of every ConfigMap labelled `kubeflowlite.io/variables`
  (the CLI writes `kfl-variables`); several are merged in name order.
- Connections: one Secret per connection, labelled `kubeflowlite.io/connection`
  with the id in the annotation `kubeflowlite.io/conn-id`, the URI or JSON form
  under the key `connection` (the CLI names it `kfl-conn-<id>`).

The operator reads them once per namespace every few seconds (`NamespaceConfigCache`).
Templates get `var` and `conn` (core.connections hides the password); a task's
`connections` become env entries with `secretKeyRef`, so no secret value is
copied into a Pod spec, a DAGRun status, an Event or a log line.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeflowlite.core import connections
from kubeflowlite.k8s import kube, names

SECRETS = kube.Resource("", "v1", "secrets")
VARIABLES_LABEL = "kubeflowlite.io/variables"
CONNECTION_LABEL = "kubeflowlite.io/connection"
CONN_ID_ANNOTATION = "kubeflowlite.io/conn-id"
CONNECTION_KEY = "connection"
VARIABLES_CONFIGMAP = "kfl-variables"
CACHE_SECONDS = 5.0

_log = logging.getLogger("kubeflowlite.runtime_config")


def connection_secret_name(conn_id: str) -> str:
    """The Secret the CLI writes for a connection: `kfl-conn-<id>` as a DNS name."""
    return names.dns_label(f"kfl-conn-{conn_id}")


def variables_configmap(namespace: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": VARIABLES_CONFIGMAP,
            "namespace": namespace,
            "labels": {VARIABLES_LABEL: "true", **names.standard_labels(component="variables")},
        },
        "data": dict(data),
    }


def connection_secret(namespace: str, conn_id: str, text: str) -> dict[str, Any]:
    """The Secret of one connection (its text checked first: ConnectionFormatError if unusable)."""
    connections.parse_connection(conn_id, text)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": connection_secret_name(conn_id),
            "namespace": namespace,
            "labels": {
                CONNECTION_LABEL: names.label_value(conn_id),
                **names.standard_labels(component="connection"),
            },
            "annotations": {CONN_ID_ANNOTATION: conn_id},
        },
        "stringData": {CONNECTION_KEY: text},
    }


@dataclass(frozen=True)
class NamespaceConfig:
    """The Variables and Connections of one namespace, as read from its objects."""

    variables: dict[str, str] = field(default_factory=dict)
    connections: dict[str, str] = field(default_factory=dict)
    """conn id -> URI or JSON text (kept in the operator's memory only)."""
    secrets: dict[str, str] = field(default_factory=dict)
    """conn id -> the Secret holding it (for secretKeyRef)."""
    secrets_listed: bool = True
    """False when the operator may not list Secrets (the chart's rbac.readConnectionSecrets off)."""


def conn_id_of(secret: Mapping[str, Any]) -> str | None:
    metadata = secret.get("metadata") or {}
    annotated = (metadata.get("annotations") or {}).get(CONN_ID_ANNOTATION)
    return annotated or (metadata.get("labels") or {}).get(CONNECTION_LABEL) or None


def secret_text(secret: Mapping[str, Any]) -> str | None:
    raw = (secret.get("data") or {}).get(CONNECTION_KEY)
    if raw is None:
        return None
    try:
        return base64.b64decode(raw).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def from_objects(
    configmaps: Sequence[Mapping[str, Any]], secrets: Sequence[Mapping[str, Any]]
) -> NamespaceConfig:
    """What labelled ConfigMaps and Secrets say (pure; sorted by name so the result is stable)."""
    variables: dict[str, str] = {}
    for configmap in sorted(configmaps, key=lambda o: str((o.get("metadata") or {}).get("name"))):
        variables.update({str(k): str(v) for k, v in (configmap.get("data") or {}).items()})
    texts: dict[str, str] = {}
    refs: dict[str, str] = {}
    for secret in sorted(secrets, key=lambda o: str((o.get("metadata") or {}).get("name"))):
        conn_id = conn_id_of(secret)
        text = secret_text(secret)
        if conn_id is None or text is None:
            continue
        texts[conn_id] = text
        refs[conn_id] = str((secret.get("metadata") or {}).get("name"))
    return NamespaceConfig(variables=variables, connections=texts, secrets=refs)


async def load(client: kube.Kube, namespace: str, *, read_secrets: bool = True) -> NamespaceConfig:
    """Read the namespace's labelled objects; a kind the operator may not list counts as none (logged)."""
    found: list[list[dict[str, Any]]] = []
    listed = True
    for resource, selector in ((kube.CONFIGMAPS, VARIABLES_LABEL), (SECRETS, CONNECTION_LABEL)):
        if resource is SECRETS and not read_secrets:
            found.append([])
            listed = False
            continue
        try:
            found.append(await client.list_objects(resource, namespace, label_selector=selector))
        except kube.ApiError as error:
            if error.status != 403:
                raise
            _log.info("cannot list %s in %s (RBAC): %s", resource.plural, namespace, error.message)
            found.append([])
            listed = listed and resource is not SECRETS
    config = from_objects(found[0], found[1])
    return dataclasses.replace(config, secrets_listed=listed) if not listed else config


class NamespaceConfigCache:
    """The operator's copy of each namespace's Variables and Connections, re-read after CACHE_SECONDS."""

    def __init__(
        self, client: kube.Kube, *, max_age: float = CACHE_SECONDS, read_secrets: bool = True
    ) -> None:
        self.client = client
        self.max_age = max_age
        self.read_secrets = read_secrets
        self._entries: dict[str, tuple[float, NamespaceConfig]] = {}

    async def get(self, namespace: str) -> NamespaceConfig:
        cached = self._entries.get(namespace)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.max_age:
            return cached[1]
        loaded = await load(self.client, namespace, read_secrets=self.read_secrets)
        self._entries[namespace] = (now, loaded)
        return loaded


def connection_env(
    conn_ids: list[str], secrets: Mapping[str, str], *, secrets_listed: bool = True
) -> list[dict[str, Any]]:
    """Env entries AIRFLOW_CONN_<ID> taken from each connection's Secret by reference.

    When the operator could not list Secrets, each id refers to the Secret the CLI
    names for it (`kfl-conn-<id>`) and the kubelet finds out. Otherwise KeyError
    naming the first unknown id (and the known ones).
    """
    if not secrets_listed:
        secrets = {conn_id: secrets.get(conn_id, connection_secret_name(conn_id)) for conn_id in conn_ids}
    entries: list[dict[str, Any]] = []
    for conn_id in conn_ids:
        if conn_id not in secrets:
            known = ", ".join(sorted(secrets)) or "none"
            raise KeyError(f"connection {conn_id!r} is not defined in this namespace (known: {known})")
        entries.append(
            {
                "name": connections.connection_env_name(conn_id),
                "valueFrom": {"secretKeyRef": {"name": secrets[conn_id], "key": CONNECTION_KEY}},
            }
        )
    return entries
