"""Airflow Connections and Variables: their text forms, and what templates may read of them.

A Connection is written as Airflow writes `AIRFLOW_CONN_<ID>`: a URI
(`postgres://user:pass@host:5432/schema?sslmode=require`) or a JSON object
(`{"conn_type": ..., "host": ..., "login": ..., "password": ..., "port": ...,
"schema": ..., "extra": {...}}`). Both shells parse them here, from wherever they
keep them (a Secret on a cluster; environment variables or a JSON file locally).

Templates see `{{ conn.my_db.host }}`, `.login`, `.port`, `.schema`,
`.conn_type`, `.extra_dejson`; never `.password` or the full URI: a rendered value
lands in a Pod's spec, where a secret must not. A task that needs the secret gets
the connection as the environment variable AIRFLOW_CONN_<ID> (task field
`connections`), which a Pod takes from the Secret by reference.

Pure: callers pass the texts in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "CONNECTION_ENV_PREFIX",
    "Connection",
    "ConnectionFormatError",
    "connection_env_name",
    "connections_from_env",
    "parse_connection",
    "template_connections",
]

CONNECTION_ENV_PREFIX = "AIRFLOW_CONN_"
"""Airflow's environment variable for a connection: AIRFLOW_CONN_<CONN_ID in upper case>."""


class ConnectionFormatError(ValueError):
    """A connection that cannot be parsed or read; the message never includes the secret."""


@dataclass(frozen=True)
class Connection:
    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def extra_dejson(self) -> dict[str, Any]:
        return dict(self.extra)


def connection_env_name(conn_id: str) -> str:
    """AIRFLOW_CONN_MY_DB for my_db (hyphens and dots become underscores, as env names need)."""
    return CONNECTION_ENV_PREFIX + "".join(ch if ch.isalnum() else "_" for ch in conn_id).upper()


def parse_connection(conn_id: str, text: str) -> Connection:
    """A connection from its URI or JSON text; ConnectionFormatError (naming the id, not the value) if neither."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise ConnectionFormatError(f"connection {conn_id!r}: not valid JSON ({error.msg})") from None
        if not isinstance(data, dict):
            raise ConnectionFormatError(f"connection {conn_id!r}: the JSON form must be an object")
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except json.JSONDecodeError:
                raise ConnectionFormatError(f"connection {conn_id!r}: extra is not a JSON object") from None
        port = data.get("port")
        try:
            port_number = None if port in (None, "") else int(port)
        except (TypeError, ValueError):
            raise ConnectionFormatError(f"connection {conn_id!r}: port is not a number") from None
        return Connection(
            conn_id=conn_id,
            conn_type=data.get("conn_type"),
            host=data.get("host"),
            login=data.get("login"),
            password=data.get("password"),
            schema=data.get("schema"),
            port=port_number,
            extra=dict(extra) if isinstance(extra, dict) else {},
        )
    if "://" not in stripped:
        raise ConnectionFormatError(
            f"connection {conn_id!r}: expected a URI (type://login:password@host:port/schema) or JSON"
        )
    parts = urlsplit(stripped)
    try:
        port_number = parts.port
    except ValueError:
        raise ConnectionFormatError(f"connection {conn_id!r}: port is not a number") from None
    conn_type = parts.scheme.replace("-", "_") or None
    query: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "__extra__" in query:
        try:
            query = json.loads(query["__extra__"])
        except json.JSONDecodeError:
            raise ConnectionFormatError(f"connection {conn_id!r}: __extra__ is not JSON") from None
    return Connection(
        conn_id=conn_id,
        conn_type=conn_type,
        host=unquote(parts.hostname) if parts.hostname else None,
        login=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        schema=unquote(parts.path[1:]) if parts.path.startswith("/") and len(parts.path) > 1 else None,
        port=port_number,
        extra=query if isinstance(query, dict) else {},
    )


def connections_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Connection texts from AIRFLOW_CONN_<ID> variables, keyed by the id in lower case (as Airflow does)."""
    return {
        key[len(CONNECTION_ENV_PREFIX) :].lower(): value
        for key, value in environ.items()
        if key.startswith(CONNECTION_ENV_PREFIX) and len(key) > len(CONNECTION_ENV_PREFIX)
    }


_SECRET_FIELDS = frozenset({"password", "get_uri", "uri"})
_PUBLIC_FIELDS = ("conn_id", "conn_type", "host", "login", "schema", "port", "extra_dejson")


class _TemplateConnection:
    """One connection as templates see it: every field but the secret ones."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        if name in _SECRET_FIELDS:
            raise KeyError(
                f"conn.{self._connection.conn_id}.{name} is not available in templates (the rendered text "
                f"would be stored in the task's Pod spec): list {self._connection.conn_id!r} in the task's "
                f"`connections` and read ${connection_env_name(self._connection.conn_id)} instead"
            )
        if name in _PUBLIC_FIELDS:
            return getattr(self._connection, name)
        raise AttributeError(name)


class _TemplateConnections:
    """`conn` in templates: `conn.my_db.host`; an unknown id is an error naming the known ones."""

    def __init__(self, texts: Mapping[str, str]) -> None:
        self._texts = texts

    def _get(self, conn_id: str) -> _TemplateConnection:
        text = self._texts.get(conn_id)
        if text is None:
            known = ", ".join(sorted(self._texts)) or "none"
            raise KeyError(f"connection {conn_id!r} is not defined (known: {known})")
        return _TemplateConnection(parse_connection(conn_id, text))

    def __getattr__(self, conn_id: str) -> _TemplateConnection:
        if conn_id.startswith("_"):
            raise AttributeError(conn_id)
        return self._get(conn_id)

    def __getitem__(self, conn_id: str) -> _TemplateConnection:
        return self._get(conn_id)


def template_connections(texts: Mapping[str, str]) -> Any:
    """The `conn` object of a template context over connection texts (conn id -> URI or JSON)."""
    return _TemplateConnections(dict(texts))
