"""`kubeflowlite variables` and `kubeflowlite connections`: Airflow's Admin -> Variables / Connections on a cluster.

Variables are the data of ConfigMaps labelled `kubeflowlite.io/variables` (these
commands write `kfl-variables`); Connections are Secrets labelled
`kubeflowlite.io/connection` (`kfl-conn-<id>`), see k8s.runtime_config. The next
task rendered sees a change. `connections get` and `list` never print a password.
Locally the same names come from KFL_VAR_* / AIRFLOW_CONN_* and the files named by
KFL_VARIABLES_FILE / KFL_CONNECTIONS_FILE (local.runtime_config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kubeflowlite.cli import cluster
from kubeflowlite.core import connections
from kubeflowlite.k8s import kube, runtime_config

__all__ = ["connections_group", "variables_group"]

EXIT_INVALID = 2


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def _set_variables(client: kube.Kube, namespace: str, values: dict[str, str]) -> None:
    existing = await client.get_or_none(kube.CONFIGMAPS, namespace, runtime_config.VARIABLES_CONFIGMAP)
    if existing is None:
        await client.create(kube.CONFIGMAPS, namespace, runtime_config.variables_configmap(namespace, values))
    else:
        await client.patch(kube.CONFIGMAPS, namespace, runtime_config.VARIABLES_CONFIGMAP, {"data": values})


@click.group("variables")
def variables_group() -> None:
    """Airflow Variables on the cluster ({{ var.value.x }}, {{ var.json.x }}, Variable.get)."""


@variables_group.command("set")
@click.argument("name")
@click.argument("value")
@cluster.cluster_options
def variables_set(config: cluster.Target, name: str, value: str) -> None:
    """Set variable NAME to VALUE (text; JSON text for var.json)."""

    async def work(client: kube.Kube) -> None:
        await _set_variables(client, config.namespace, {name: value})

    cluster._run(config, work)
    click.echo(f"variable {name} set ({config.namespace})")


@variables_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@cluster.cluster_options
def variables_import(config: cluster.Target, file: Path) -> None:
    """Set every variable of a JSON object file (non-string values are stored as JSON)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        cluster._fail(f"{file}: {error}", EXIT_INVALID)
    if not isinstance(data, dict):
        cluster._fail(f"{file}: expected a JSON object of variables", EXIT_INVALID)
    values = {str(key): _text(value) for key, value in data.items()}

    async def work(client: kube.Kube) -> None:
        await _set_variables(client, config.namespace, values)

    cluster._run(config, work)
    click.echo(f"{len(values)} variables imported ({config.namespace})")


def _load(config: cluster.Target) -> runtime_config.NamespaceConfig:
    async def work(client: kube.Kube) -> runtime_config.NamespaceConfig:
        return await runtime_config.load(client, config.namespace)

    return cluster._run(config, work)


@variables_group.command("get")
@click.argument("name")
@cluster.cluster_options
def variables_get(config: cluster.Target, name: str) -> None:
    """Print variable NAME."""
    variables = _load(config).variables
    if name not in variables:
        cluster._fail(f"variable {name!r} is not set in namespace {config.namespace!r}")
    click.echo(variables[name])


@variables_group.command("list")
@cluster.cluster_options
def variables_list(config: cluster.Target) -> None:
    """Every variable: NAME<TAB>VALUE."""
    for name, value in sorted(_load(config).variables.items()):
        click.echo(f"{name}\t{value}")


@click.group("connections")
def connections_group() -> None:
    """Airflow Connections on the cluster ({{ conn.x.host }}, a task's `connections` env)."""


@connections_group.command("add")
@click.argument("conn_id")
@click.option("--uri", "uri", help="Airflow's URI form: type://login:password@host:port/schema?extra=...")
@click.option("--json", "json_text", help='Airflow\'s JSON form: {"conn_type": ..., "host": ..., ...}')
@cluster.cluster_options
def connections_add(config: cluster.Target, conn_id: str, uri: str | None, json_text: str | None) -> None:
    """Create or replace connection CONN_ID (a Secret; the value is never printed)."""
    if (uri is None) == (json_text is None):
        cluster._fail("give exactly one of --uri and --json", EXIT_INVALID)
    text = uri if uri is not None else str(json_text)
    try:
        manifest = runtime_config.connection_secret(config.namespace, conn_id, text)
    except connections.ConnectionFormatError as error:
        cluster._fail(str(error), EXIT_INVALID)

    async def work(client: kube.Kube) -> None:
        await client.apply(
            runtime_config.SECRETS, config.namespace, manifest, field_manager=cluster.FIELD_MANAGER
        )

    cluster._run(config, work)
    click.echo(f"connection {conn_id} saved in secret/{manifest['metadata']['name']} ({config.namespace})")


def _describe(conn: connections.Connection) -> dict[str, Any]:
    return {
        "conn_id": conn.conn_id,
        "conn_type": conn.conn_type,
        "host": conn.host,
        "login": conn.login,
        "password": "***" if conn.password else None,
        "schema": conn.schema,
        "port": conn.port,
        "extra": conn.extra,
    }


@connections_group.command("get")
@click.argument("conn_id")
@cluster.cluster_options
def connections_get(config: cluster.Target, conn_id: str) -> None:
    """Print connection CONN_ID as JSON, its password masked."""
    texts = _load(config).connections
    if conn_id not in texts:
        cluster._fail(f"connection {conn_id!r} is not defined in namespace {config.namespace!r}")
    try:
        parsed = connections.parse_connection(conn_id, texts[conn_id])
    except connections.ConnectionFormatError as error:
        cluster._fail(str(error))
    click.echo(json.dumps(_describe(parsed), indent=2))


@connections_group.command("list")
@cluster.cluster_options
def connections_list(config: cluster.Target) -> None:
    """Every connection: ID<TAB>TYPE<TAB>HOST (no secrets)."""
    for conn_id, text in sorted(_load(config).connections.items()):
        try:
            parsed = connections.parse_connection(conn_id, text)
        except connections.ConnectionFormatError as error:
            click.echo(f"{conn_id}\t(unreadable: {error})")
            continue
        click.echo(f"{conn_id}\t{parsed.conn_type or '-'}\t{parsed.host or '-'}")
