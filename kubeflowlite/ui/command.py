"""`kubeflowlite ui`: serve the web UI with the user's kubeconfig, as `kubectl proxy` does.

This module imports only click and the kubeconfig loader; the web stack
(Starlette, uvicorn, Jinja2 templates) is imported when the command runs, so the
rest of the CLI starts as fast as before.
"""

from __future__ import annotations

import ipaddress
import sys

import click

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("ui")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to serve on."
)
@click.option(
    "--host",
    default=LOOPBACK,
    show_default=True,
    help="Address to bind; anything but loopback lets others act with your credentials.",
)
@click.option("--kubeconfig", envvar="KUBECONFIG", help="Path to the kubeconfig file (default: kubectl's).")
@click.option("--context", "context", help="The kubeconfig context to use.")
@click.option("-n", "--namespace", "namespace", help="Show this namespace (default: the context's).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Show every namespace.")
@click.option("--read-only", is_flag=True, help="Refuse every write (trigger, clear, pause).")
def ui_cmd(
    port: int,
    host: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    all_namespaces: bool,
    read_only: bool,
) -> None:
    """Serve the web UI: DAGs, grid, graph, Gantt, task logs; trigger, clear, pause."""
    if namespace and all_namespaces:
        click.echo("choose -n or -A, not both", err=True)
        sys.exit(2)
    import uvicorn

    from kubeflowlite.k8s import kube
    from kubeflowlite.ui.app import LOOPBACK_HOSTS, create_app
    from kubeflowlite.ui.source import Scope

    try:
        config = kube.load_cluster_config(kubeconfig, context=context)
    except Exception as error:  # kubernetes.config raises several unrelated types
        click.echo(f"cannot load the cluster configuration: {error}", err=True)
        sys.exit(2)
    scope = Scope(None if all_namespaces else (namespace or config.namespace))
    if not is_loopback(host):
        click.echo(f"warning: serving on {host}: anyone who reaches it acts with these credentials", err=True)
    where = "all namespaces" if scope.namespace is None else f"namespace {scope.namespace}"
    click.echo(f"kubeflowlite ui: http://{host}:{port}/ ({config.server}, {where})", err=True)
    client = kube.Kube(config, user_agent="kubeflowlite-ui")
    app = create_app(
        client, scope, allow_writes=not read_only, allowed_hosts=LOOPBACK_HOSTS if is_loopback(host) else None
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
