"""Talking to the Kubernetes API: where the cluster is, and a thin async REST client.

The operator and the cluster CLI work on plain dicts (the same camelCase objects
kopf delivers and `kubectl get -o json` prints), so this client is deliberately
small: build a path, send JSON, raise `ApiError` with the server's message, count
the request. It does not use the generated `kubernetes` client for requests: that
one validates every call and builds model objects for every response, which costs
more than a reconcile at thousands of Pods. The `kubernetes` package is used only
for what it does well: reading kubeconfig files (embedded certificates, token
files, exec plugins) and the in-cluster service account.

Every request is reported to an optional `on_request(verb, resource, code)` hook;
the operator wires it to its Prometheus counters, which is how "API writes per task
instance" is measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from kubeflowlite.k8s import resources
from kubeflowlite.k8s.credentials import ExecPlugin, Token, TokenSource, token_source

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_USER_AGENT = "kubeflowlite"
OPERATOR_USER_AGENT = "kubeflowlite-operator"

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
"""Accept header: the server answers with the object's metadata alone (any verb)."""

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "apply"})


# --- where the cluster is ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterConfig:
    """How to reach one cluster: server, credentials, and the namespace commands default to."""

    server: str
    namespace: str = "default"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    exec_plugin: ExecPlugin | None = None
    """A credential plugin (EKS, GKE, OIDC logins): its token is renewed ahead of expiry and on a 401."""
    insecure: bool = False

    @property
    def tokens(self) -> TokenSource:
        """Where the bearer token comes from (shared by every client of this configuration)."""
        return token_source(self.token, self.token_file, self.exec_plugin)


def load_cluster_config(kubeconfig: str | None = None, *, context: str | None = None) -> ClusterConfig:
    """The cluster of `kubeconfig` (else $KUBECONFIG or ~/.kube/config), or the in-cluster service account.

    The namespace is the context's namespace (or the service account's), else `default`.
    """
    from kubernetes import client, config  # imported here: loading it costs ~0.3 s

    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if kubeconfig is None and not os.path.exists(path.split(os.pathsep)[0]) and _in_cluster():
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        namespace = _read(f"{SERVICE_ACCOUNT_DIR}/namespace") or "default"
        return ClusterConfig(
            server=configuration.host,
            namespace=namespace.strip(),
            ca_file=configuration.ssl_ca_cert,
            token_file=f"{SERVICE_ACCOUNT_DIR}/token",
        )
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=path, context=context, client_configuration=configuration, persist_config=False
    )
    contexts, current = config.list_kube_config_contexts(config_file=path)
    chosen = next((c for c in contexts if c.get("name") == context), current) if context else current
    namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    token = header.split(" ", 1)[-1] if header else None
    plugin = _exec_plugin(path, ((chosen or {}).get("context") or {}).get("user"))
    return ClusterConfig(
        server=configuration.host,
        namespace=namespace,
        ca_file=configuration.ssl_ca_cert,
        cert_file=configuration.cert_file,
        key_file=configuration.key_file,
        token=None if plugin is not None else token,
        exec_plugin=plugin,
        insecure=not configuration.verify_ssl,
    )


def _exec_plugin(path: str, user_name: str | None) -> ExecPlugin | None:
    """The `exec` stanza of kubeconfig user `user_name`, if it has one (files merged as kubectl does)."""
    from kubernetes.config.kube_config import KubeConfigMerger

    merged = KubeConfigMerger(path).config
    for entry in merged.value.get("users") or []:
        # The first file's entries are plain dicts, later files' are ConfigNodes knowing their file.
        item = getattr(entry, "value", entry)
        if item.get("name") != user_name:
            continue
        stanza = (item.get("user") or {}).get("exec")
        if not stanza:
            return None
        source = getattr(entry, "path", None) or merged.path
        return ExecPlugin.from_config(stanza, cwd=os.path.dirname(source) if source else None)
    return None


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(f"{SERVICE_ACCOUNT_DIR}/token")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def ssl_context(config: ClusterConfig) -> ssl.SSLContext | bool:
    """The TLS settings of `config` for aiohttp (False: do not verify, as insecure-skip-tls-verify)."""
    if not config.server.startswith("https"):
        return False
    context = ssl.create_default_context(cafile=config.ca_file)
    if config.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert_file and config.key_file:
        context.load_cert_chain(config.cert_file, config.key_file)
    return context


# --- what to address ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """A namespaced API resource: where its REST paths live."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        parts = [base]
        if namespace is not None:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)


PODS = Resource("", "v1", "pods")
CONFIGMAPS = Resource("", "v1", "configmaps")
EVENTS = Resource("", "v1", "events")
DAGS = Resource(resources.GROUP, resources.VERSION, resources.DAG_PLURAL)
DAGRUNS = Resource(resources.GROUP, resources.VERSION, resources.DAGRUN_PLURAL)


class ApiError(Exception):
    """A request the API server refused, with its status code and message."""

    def __init__(self, status: int, reason: str, message: str, *, verb: str = "", path: str = "") -> None:
        super().__init__(f"{verb} {path}: {status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """AlreadyExists on create, or a failed resourceVersion/uid precondition."""
        return self.status == 409


RequestHook = Callable[[str, str, int], None]


# --- the client ------------------------------------------------------------------------------------


@dataclass
class Kube:
    """A small async Kubernetes REST client over aiohttp; dicts in, dicts out.

    Open it with `async with Kube(config) as kube:` (or call `close()`); one
    session is shared by all requests, so it must be used from one event loop.
    """

    config: ClusterConfig
    user_agent: str = DEFAULT_USER_AGENT
    on_request: RequestHook | None = None
    max_connections: int = 64
    timeout: float = 60.0
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(verb, resource) -> how many requests were sent; what the benchmark reads."""
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)
    _slots: asyncio.Semaphore | None = field(default=None, repr=False)
    """Requests in flight (not watches): a thousand creates at once wait here, before their bodies are
    encoded, rather than all encoded and queued in the connection pool (memory, and the watches' share)."""

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def namespace(self) -> str:
        return self.config.namespace

    def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=ssl_context(self.config))
            self._session = aiohttp.ClientSession(
                base_url=self.config.server.rstrip("/") + "/",
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self.timeout),
                headers={"User-Agent": self.user_agent},
            )
            self._slots = asyncio.Semaphore(max(1, self.max_connections - 8))
        return self._session

    async def _token(self, *, refused: Token | None = None) -> Token | None:
        """The token to send: renewed first when it is due, or when the server refused `refused`."""
        tokens = self.config.tokens
        if refused is not None:
            return await asyncio.to_thread(tokens.renew, refused)
        if tokens.due():
            return await asyncio.to_thread(tokens.token)
        return tokens.cached()

    async def _auth_headers(self) -> dict[str, str]:
        token = await self._token()
        return {"Authorization": f"Bearer {token.value}"} if token else {}

    def _count(self, verb: str, resource: str, status: int) -> None:
        self.requests[(verb, resource)] += 1
        if self.on_request is not None:
            self.on_request(verb, resource, status)

    async def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        metadata_only: bool = False,
    ) -> Any:
        """Send one request; the decoded JSON response, or ApiError.

        `metadata_only`: the server answers with the object's metadata alone
        (PartialObjectMetadata), for a write whose caller needs no more than the new
        resourceVersion: a 10,000-task run's status patch is not sent back whole.
        """
        self._session_for_loop()
        assert self._slots is not None
        async with self._slots:
            return await self._request(
                method,
                path,
                verb=verb,
                resource=resource,
                body=body,
                params=params,
                content_type=content_type,
                metadata_only=metadata_only,
            )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        body: Any,
        params: Mapping[str, Any] | None,
        content_type: str,
        metadata_only: bool = False,
    ) -> Any:
        session = self._session_for_loop()
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = path.lstrip("/") + (f"?{urlencode(query)}" if query else "")
        data = None
        if body is not None:
            data = body if isinstance(body, str | bytes) else json.dumps(body, separators=(",", ":"))
        token = await self._token()
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {token.value}"} if token else {}
            if body is not None:
                headers["Content-Type"] = content_type
            if metadata_only:
                headers["Accept"] = METADATA_ONLY
            async with session.request(method, url, data=data, headers=headers) as response:
                payload = await response.read()
                self._count(verb, resource, response.status)
                if response.status == 401 and attempt == 1 and self.config.tokens.changes:
                    token = await self._token(refused=token)  # expired or revoked: a new one, once
                    continue
                if response.status >= 400:
                    raise _api_error(response.status, payload, verb=verb, path=path)
                return json.loads(payload) if payload else None
        raise AssertionError("unreachable")

    # -- verbs ----------------------------------------------------------------------------------

    async def create(
        self, resource: Resource, namespace: str, body: Mapping[str, Any], *, metadata_only: bool = False
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST",
            resource.path(namespace),
            verb="create",
            resource=resource.plural,
            body=body,
            metadata_only=metadata_only,
        )
        return result

    async def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "GET", resource.path(namespace, name), verb="get", resource=resource.plural
        )
        return result

    async def get_or_none(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.get(resource, namespace, name)
        except ApiError as error:
            if error.not_found:
                return None
            raise

    async def list_objects(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every object (all pages); `namespace` None lists across namespaces."""
        items, _ = await self.list_with_version(
            resource, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return items

    async def list_with_version(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object (all pages) and the list's resourceVersion: where a watch of the same set starts."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        version = ""
        while True:
            page = await self.request(
                "GET",
                resource.path(namespace),
                verb="list",
                resource=resource.plural,
                params={
                    "labelSelector": label_selector,
                    "fieldSelector": field_selector,
                    "limit": 500,
                    "continue": token,
                },
            )
            items.extend(page.get("items") or [])
            version = version or str((page.get("metadata") or {}).get("resourceVersion") or "")
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items, version

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
        metadata_only: bool = False,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            verb="patch",
            resource=resource.plural + (f"/{subresource}" if subresource else ""),
            body=body,
            content_type=content_type,
            metadata_only=metadata_only,
        )
        return result

    async def apply(
        self,
        resource: Resource,
        namespace: str,
        body: Mapping[str, Any],
        *,
        field_manager: str,
        force: bool = True,
    ) -> dict[str, Any]:
        """Server-side apply of `body` (which names itself)."""
        result: dict[str, Any] = await self.request(
            "PATCH",
            resource.path(namespace, body["metadata"]["name"]),
            verb="apply",
            resource=resource.plural,
            # Real UTF-8, not \u escapes: the apiserver reads an apply patch as YAML, which
            # refuses the surrogate pairs json.dumps writes for characters beyond U+FFFF.
            body=json.dumps(body, ensure_ascii=False).encode(),
            params={"fieldManager": field_manager, "force": "true" if force else None},
            content_type=APPLY_PATCH,
        )
        return result

    async def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        *,
        grace_seconds: int | None = None,
        uid: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete one object; False if it was already gone (or is another object of that name)."""
        options: dict[str, Any] = {"propagationPolicy": propagation}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            await self.request(
                "DELETE",
                resource.path(namespace, name),
                verb="delete",
                resource=resource.plural,
                body=options,
            )
        except ApiError as error:
            if error.not_found or (uid is not None and error.conflict):
                return False
            raise
        return True

    async def create_event(
        self,
        involved: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        warning: bool = False,
        component: str = OPERATOR_USER_AGENT,
    ) -> None:
        """A core/v1 Event about `involved` (shown by `kubectl describe`)."""
        metadata = involved.get("metadata") or {}
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        namespace = metadata.get("namespace") or self.namespace
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{metadata.get('name', 'object')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": metadata.get("name"),
                "namespace": namespace,
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.create(EVENTS, namespace, event)

    async def pod_logs(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        follow: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        """A Pod's log, chunk by chunk (until the container ends when following); optionally only its tail."""
        session = self._session_for_loop()
        params = {
            "container": container,
            "follow": "true" if follow else None,
            "tailLines": tail_lines,
            "limitBytes": limit_bytes,
        }
        query = urlencode({k: v for k, v in params.items() if v is not None})
        url = PODS.path(namespace, name, "log").lstrip("/") + (f"?{query}" if query else "")
        token = await self._token()
        headers = {"Authorization": f"Bearer {token.value}"} if token else {}
        async with session.get(url, headers=headers) as response:
            self._count("get", "pods/log", response.status)
            if response.status >= 400:
                raise _api_error(response.status, await response.read(), verb="logs", path=url)
            async for chunk in response.content.iter_any():
                yield chunk

    async def watch(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 300,
        label_selector: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The watch events ({"type", "object"}) of `resource` until the server ends the stream.

        Without `resource_version` the server first sends every existing object as ADDED.
        An expired version arrives as an ERROR event (object.code 410); start again without one.
        """
        session = self._session_for_loop()
        query = urlencode(
            {
                "watch": "true",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": timeout_seconds,
                **({"resourceVersion": resource_version} if resource_version else {}),
                **({"labelSelector": label_selector} if label_selector else {}),
            }
        )
        url = resource.path(namespace).lstrip("/") + f"?{query}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        async with session.get(url, headers=await self._auth_headers(), timeout=timeout) as response:
            self._count("watch", resource.plural, response.status)
            if response.status >= 400:
                raise _api_error(response.status, await response.read(), verb="watch", path=url)
            pending = b""
            async for chunk in response.content.iter_any():  # lines can exceed aiohttp's readline limit
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        event: dict[str, Any] = json.loads(line)
                        yield event


def _api_error(status: int, payload: bytes, *, verb: str, path: str) -> ApiError:
    try:
        decoded = json.loads(payload)
    except ValueError:
        decoded = {}
    if not isinstance(decoded, dict):
        decoded = {}
    message = decoded.get("message") or payload.decode("utf-8", "replace")[:500]
    return ApiError(status, str(decoded.get("reason") or ""), str(message), verb=verb, path=path)


def run_sync(coroutine: Any) -> Any:
    """Run one coroutine to completion from synchronous code (the CLI)."""
    return asyncio.run(coroutine)
