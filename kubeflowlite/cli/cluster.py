"""The cluster commands: run the operator, and work with DAGs and DAGRuns on Kubernetes.

Every command uses the current kubeconfig context and its namespace unless told
otherwise (`--kubeconfig`, `--context`, `-n`), as kubectl does. They only read
objects and write specs, never a status: clearing, pausing and triggering are
requests that the operator carries out, so `kubectl` users can make them too.
Decisions (what to clear, what a backfill creates) are in cli.cluster_plans.

Exit codes follow cli.main: 0 ok, 1 the request failed on the cluster, 2 invalid input.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import sys
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from kubeflowlite import dagfiles
from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import RunType
from kubeflowlite.api.times import format_time
from kubeflowlite.cli import cluster_plans, options
from kubeflowlite.core import durations, loading
from kubeflowlite.core.schedule import Schedule
from kubeflowlite.core.validation import InvalidDAGError
from kubeflowlite.k8s import crdgen, kube, names, pods, resources
from kubeflowlite.k8s.run_manifest import dagrun_manifest

EXIT_FAILED = 1
EXIT_INVALID = 2
FIELD_MANAGER = "kubeflowlite"

T = TypeVar("T")


def _console() -> Console:
    """stdout for tables and trees; wide when piped, so names are never cut."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 250)


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


class Target:
    """Where a command acts, read from the kubeconfig on first use (so local checks come first)."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        self._kubeconfig = kubeconfig
        self._context = context
        self._namespace = namespace

    @functools.cached_property
    def config(self) -> kube.ClusterConfig:
        try:
            config = kube.load_cluster_config(self._kubeconfig, context=self._context)
        except Exception as error:  # kubernetes.config raises several unrelated types
            _fail(f"cannot load the cluster configuration: {error}", EXIT_INVALID)
        if self._namespace:
            config = dataclasses.replace(config, namespace=self._namespace)
        return config

    @property
    def namespace(self) -> str:
        return self.config.namespace


def cluster_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--kubeconfig, --context and -n/--namespace, turned into a `config` argument (a Target)."""

    @click.option(
        "--kubeconfig", envvar="KUBECONFIG", help="Path to the kubeconfig file (default: kubectl's)."
    )
    @click.option("--context", "context", help="The kubeconfig context to use.")
    @click.option("-n", "--namespace", "namespace", help="Namespace (default: the context's).")
    @functools.wraps(command)
    def wrapper(kubeconfig: str | None, context: str | None, namespace: str | None, **kwargs: Any) -> Any:
        return command(config=Target(kubeconfig, context, namespace), **kwargs)

    return wrapper


def _run(target: Target, work: Callable[[kube.Kube], Awaitable[T]]) -> T:
    """Run `work` with a client; API errors become a message and exit code 1."""
    config = target.config

    async def main() -> T:
        async with kube.Kube(config) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except kube.ApiError as error:
        _fail(f"error: {error.message or error}")
    except OSError as error:
        _fail(f"cannot reach the cluster at {config.server}: {error}")


async def _get(
    client: kube.Kube, resource: kube.Resource, namespace: str, name: str, what: str
) -> dict[str, Any]:
    found = await client.get_or_none(resource, namespace, name)
    if found is None:
        _fail(f"{what} {name!r} not found in namespace {namespace!r}")
    return found


async def _runs_of(client: kube.Kube, namespace: str, dag: str | None) -> list[dict[str, Any]]:
    runs = await client.list_objects(kube.DAGRUNS, namespace)
    return [run for run in runs if dag is None or (run.get("spec") or {}).get("dagName") == dag]


def _dag_spec(dag: dict[str, Any]) -> DAGSpec:
    try:
        return loading.parse_dag(dag, source=f"DAG {dag['metadata']['name']}").spec
    except InvalidDAGError as error:
        _fail(f"the DAG is invalid:\n{error}", EXIT_INVALID)


# --- the operator ---------------------------------------------------------------------------------


@click.command("operator")
@click.option(
    "--kubeconfig",
    envvar="KUBECONFIG",
    help="Path to the kubeconfig file (default: in-cluster or kubectl's).",
)
@click.option("--context", "context", help="The kubeconfig context to use.")
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Watch this namespace; repeatable.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch every namespace.")
@click.option(
    "--metrics-port", type=int, default=9090, show_default=True, help="Prometheus /metrics port (0: off)."
)
@click.option("--liveness", help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz.")
@click.option(
    "--pending-timeout", default="10m", show_default=True, help="A Pod Pending longer fails its try."
)
@click.option(
    "--workers", type=click.IntRange(1, 256), default=8, show_default=True, help="Concurrent reconciles."
)
@click.option(
    "--connection-secrets/--no-connection-secrets",
    default=True,
    show_default=True,
    help="Read Secrets labelled kubeflowlite.io/connection for {{ conn.x.host }} (needs RBAC to list Secrets).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
@click.option(
    "--leader-elect",
    is_flag=True,
    help="Reconcile only while holding a coordination Lease (run several replicas safely).",
)
@click.option(
    "--leader-election-namespace",
    envvar="POD_NAMESPACE",
    help="Namespace of the Lease (default: $POD_NAMESPACE, else the first watched namespace).",
)
@click.option("--leader-election-id", default="kubeflowlite-operator", show_default=True, help="Lease name.")
def operator_cmd(
    kubeconfig: str | None,
    context: str | None,
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    metrics_port: int,
    liveness: str | None,
    pending_timeout: str,
    workers: int,
    connection_secrets: bool,
    log_level: str,
    leader_elect: bool,
    leader_election_namespace: str | None,
    leader_election_id: str,
) -> None:
    """Run the operator: reconcile DAGs and DAGRuns (kopf inside). Without -n/-A: the context's namespace."""
    from kubeflowlite.k8s import leader, operator, oplog  # kopf is imported only for this command

    if liveness is not None:
        _check_liveness(liveness, metrics_port)
    oplog.configure(log_level)
    try:
        timeout = durations.parse_duration(pending_timeout)
    except ValueError as error:
        _fail(f"invalid --pending-timeout: {error}", EXIT_INVALID)
    config = kube.load_cluster_config(kubeconfig, context=context)
    watched = operator.namespaces_of(namespaces) or (() if all_namespaces else (config.namespace,))
    options = operator.OperatorOptions(
        cluster=config,
        namespaces=() if all_namespaces else watched,
        clusterwide=all_namespaces,
        metrics_port=metrics_port,
        liveness=liveness,
        pending_timeout=timeout,
        workers=workers,
        leader_election=leader.Settings(
            namespace=leader_election_namespace or (watched[0] if watched else config.namespace),
            name=leader_election_id,
        )
        if leader_elect
        else None,
        read_connection_secrets=connection_secrets,
    )
    scope = "all namespaces" if all_namespaces else ", ".join(watched)
    logging.getLogger("kubeflowlite").info("operator starting: %s, watching %s", config.server, scope)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(operator.run_operator(options))


def _check_liveness(url: str, metrics_port: int) -> None:
    """kopf serves its liveness endpoint over plain HTTP, on a port of its own: a URL it cannot serve
    otherwise stops the operator only once it has started, with kopf's traceback."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or 80
    except ValueError:  # not a number, or out of range
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None:
        raise click.BadParameter(f"expected http://HOST:PORT/PATH, got {url!r}", param_hint="'--liveness'")
    if metrics_port and port == metrics_port:
        raise click.BadParameter(
            f"port {port} is also --metrics-port; the two endpoints need different ports",
            param_hint="'--liveness'",
        )


# --- CRDs and DAG files ---------------------------------------------------------------------------


@click.command("crds")
@click.option(
    "--output", "output", type=click.Path(file_okay=False, path_type=Path), help="Write the files here."
)
def crds_cmd(output: Path | None) -> None:
    """Print (or write) the CustomResourceDefinitions generated from the API types."""
    if output is None:
        click.echo("---\n".join(crdgen.render_crds().values()), nl=False)
        return
    for path in crdgen.write_crds(output):
        click.echo(str(path))


@click.command("apply")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@cluster_options
def apply_cmd(config: Target, path: Path) -> None:
    """Validate DAG file(s) locally (every problem printed), then server-side apply them."""
    try:
        dags = dagfiles.load_dags(path)
    except InvalidDAGError as error:
        _fail(f"{error}\nnothing applied: fix the problems above", EXIT_INVALID)
    if not dags:
        _fail(f"no DAG found in {path}", EXIT_INVALID)

    async def work(client: kube.Kube) -> None:
        for dag in dags:
            manifest = dag.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"})
            namespace = dag.metadata.namespace or config.namespace
            manifest["metadata"]["namespace"] = namespace
            await client.apply(kube.DAGS, namespace, manifest, field_manager=FIELD_MANAGER)
            click.echo(f"dag.{resources.GROUP}/{dag.dag_id} applied ({namespace})")

    _run(config, work)


# --- runs -------------------------------------------------------------------------------------------


@click.command("trigger")
@click.argument("dag")
@click.option(
    "--date", "date", type=options.DATE, help="Logical date (YYYY-MM-DD or RFC 3339). Default: now."
)
@options.conf_options
@cluster_options
def trigger_cmd(
    config: Target,
    dag: str,
    date: datetime | None,
    conf: dict[str, Any] | None,
    params: tuple[tuple[str, Any], ...],
) -> None:
    """Start a manual run of DAG (a DAGRun; the operator runs it)."""
    logical_date = options.now_if_none(date)
    run_conf = options.run_conf(conf, params)

    async def work(client: kube.Kube) -> str:
        dag_obj = await _get(client, kube.DAGS, config.namespace, dag, "DAG")
        manifest = dagrun_manifest(
            namespace=config.namespace,
            dag=dag_obj,
            logical_date=logical_date,
            run_type=RunType.manual,
            conf=run_conf,
        )
        try:
            await client.create(kube.DAGRUNS, config.namespace, manifest)
        except kube.ApiError as error:
            if error.conflict:
                _fail(
                    f"a run of {dag} at {format_time(logical_date)} exists already: {manifest['metadata']['name']}"
                )
            raise
        return str(manifest["metadata"]["name"])

    click.echo(f"dagrun.{resources.GROUP}/{_run(config, work)} created")


@click.command("backfill")
@click.argument("dag")
@click.option(
    "-s",
    "--start-date",
    "start_date",
    type=options.DATE,
    required=True,
    help="First logical date (inclusive).",
)
@click.option(
    "-e", "--end-date", "end_date", type=options.DATE, required=True, help="Last logical date (inclusive)."
)
@click.option("--reset-dagruns", is_flag=True, help="Delete existing runs in the range and run them anew.")
@click.option(
    "--rerun-failed-tasks", is_flag=True, help="Clear the failed tasks of existing runs in the range."
)
@cluster_options
def backfill_cmd(
    config: Target,
    dag: str,
    start_date: datetime,
    end_date: datetime,
    reset_dagruns: bool,
    rerun_failed_tasks: bool,
) -> None:
    """Create runs for every scheduled interval between -s and -e (maxActiveRuns applies)."""
    if end_date < start_date:
        _fail("--end-date is before --start-date", EXIT_INVALID)

    async def work(client: kube.Kube) -> cluster_plans.BackfillPlan:
        dag_obj = await _get(client, kube.DAGS, config.namespace, dag, "DAG")
        spec = _dag_spec(dag_obj)
        intervals = Schedule.from_spec(spec).runs_between(start_date, end_date)
        if not intervals:
            _fail(
                f"DAG {dag!r} has no scheduled interval between {format_time(start_date)} and {format_time(end_date)}",
                EXIT_INVALID,
            )
        runs = await _runs_of(client, config.namespace, dag)
        plan = cluster_plans.plan_backfill(
            intervals, runs, reset=reset_dagruns, rerun_failed=rerun_failed_tasks
        )
        for name in plan.delete:
            await client.delete(kube.DAGRUNS, config.namespace, name, propagation="Foreground")
            await _wait_gone(client, config.namespace, name)
        for interval in plan.create:
            manifest = dagrun_manifest(
                namespace=config.namespace,
                dag=dag_obj,
                logical_date=interval.logical_date,
                run_type=RunType.backfill,
            )
            try:
                await client.create(kube.DAGRUNS, config.namespace, manifest)
            except kube.ApiError as error:
                if not error.conflict:
                    raise
            click.echo(f"dagrun.{resources.GROUP}/{manifest['metadata']['name']} created")
        for name, tasks in plan.clear.items():
            await _request_clear(client, config.namespace, name, tasks)
            click.echo(f"dagrun.{resources.GROUP}/{name}: cleared {', '.join(tasks)}")
        for name in plan.existing:
            click.echo(f"dagrun.{resources.GROUP}/{name} exists (kept)")
        return plan

    _run(config, work)


async def _wait_gone(client: kube.Kube, namespace: str, name: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await client.get_or_none(kube.DAGRUNS, namespace, name) is not None:
        if asyncio.get_running_loop().time() > deadline:
            _fail(f"dagrun {name} was not deleted within {timeout:g}s")
        await asyncio.sleep(0.2)


async def _request_clear(client: kube.Kube, namespace: str, run: str, tasks: list[str]) -> str:
    body, request_id = cluster_plans.clear_patch(tasks)
    await client.patch(kube.DAGRUNS, namespace, run, body)
    return request_id


@click.command("clear")
@click.argument("run")
@click.option("-t", "--task", "pattern", help="Clear the tasks whose id matches this regular expression.")
@click.option("-d", "--downstream", is_flag=True, help="Also clear their downstream tasks.")
@click.option("-u", "--upstream", is_flag=True, help="Also clear their upstream tasks.")
@click.option("-f", "--only-failed", is_flag=True, help="Only clear failed and upstream_failed tasks.")
@cluster_options
def clear_cmd(
    config: Target,
    run: str,
    pattern: str | None,
    downstream: bool,
    upstream: bool,
    only_failed: bool,
) -> None:
    """Re-run task instances of RUN (writes spec.clear; the operator resets them)."""

    async def work(client: kube.Kube) -> tuple[str, list[str]]:
        run_obj = await _get(client, kube.DAGRUNS, config.namespace, run, "DAGRun")
        status = run_obj.get("status") or {}
        snapshot = status.get("dagSpec")
        if not snapshot:
            _fail(f"run {run} has not started yet: nothing to clear")
        spec = DAGSpec.model_validate(snapshot)
        states = {task: (i or {}).get("state") or "none" for task, i in (status.get("tasks") or {}).items()}
        try:
            tasks = cluster_plans.clear_selection(
                spec,
                states,
                pattern=pattern,
                downstream=downstream,
                upstream=upstream,
                only_failed=only_failed,
            )
        except cluster_plans.PlanError as error:
            _fail(str(error), EXIT_INVALID)
        if not tasks:
            _fail("nothing to clear (no task matches with the options given)", EXIT_INVALID)
        return await _request_clear(client, config.namespace, run, tasks), tasks

    request_id, tasks = _run(config, work)
    click.echo(f"dagrun.{resources.GROUP}/{run}: clear {request_id} requested for {', '.join(tasks)}")


@click.command("get")
@click.argument("run")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), help="Print the DAGRun object instead.")
@cluster_options
def get_cmd(config: Target, run: str, output: str | None) -> None:
    """Show RUN: its tasks as a tree, with state, try and duration."""

    async def work(client: kube.Kube) -> dict[str, Any]:
        return await _get(client, kube.DAGRUNS, config.namespace, run, "DAGRun")

    run_obj = _run(config, work)
    if output == "json":
        click.echo(json.dumps(run_obj, indent=2))
        return
    if output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(run_obj, sort_keys=False), nl=False)
        return
    _console().print(cluster_plans.run_tree(run_obj, now=datetime.now(UTC)))


@click.command("logs")
@click.argument("run")
@click.argument("task")
@click.option("--try", "try_number", type=click.IntRange(min=1), help="Which try (default: the latest).")
@click.option("-f", "--follow", is_flag=True, help="Stream the log until the task ends.")
@cluster_options
def logs_cmd(config: Target, run: str, task: str, try_number: int | None, follow: bool) -> None:
    """Print the log of TASK in RUN (its Pod's main container)."""

    async def work(client: kube.Kube) -> None:
        run_obj = await _get(client, kube.DAGRUNS, config.namespace, run, "DAGRun")
        instance = ((run_obj.get("status") or {}).get("tasks") or {}).get(task)
        latest = int((instance or {}).get("tryNumber") or 0)
        if instance is None and task not in _task_names(run_obj):
            _fail(f"run {run} has no task {task!r}")
        if latest == 0:
            _fail(f"task {task!r} of run {run} has not run yet")
        number = try_number or latest
        if number > latest:
            _fail(
                f"task {task!r} of run {run} has had {latest} tr{'y' if latest == 1 else 'ies'}, not {number}"
            )
        pod = names.pod_name(run, task, number)
        try:
            async for chunk in client.pod_logs(
                config.namespace, pod, container=pods.MAIN_CONTAINER, follow=follow
            ):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        except kube.ApiError as error:
            if error.not_found:
                cleanup = ((run_obj.get("status") or {}).get("dagSpec") or {}).get("podCleanup")
                why = f" (the DAG's podCleanup is {cleanup})" if cleanup and cleanup != "keep" else ""
                _fail(
                    f"the Pod of try {number} of {task} ({pod}) is gone{why}, and its log with it; "
                    "keep Pods with podCleanup: keep"
                )
            _fail(f"no log for try {number} of {task} ({pod}): {error.message or error}")

    _run(config, work)


def _task_names(run_obj: dict[str, Any]) -> set[str]:
    spec = (run_obj.get("status") or {}).get("dagSpec") or {}
    return {str(t.get("name")) for t in spec.get("tasks") or []}


# --- DAG switches and lists ---------------------------------------------------------------------------


def _set_paused(config: Target, dag: str, paused: bool) -> None:
    async def work(client: kube.Kube) -> None:
        await _get(client, kube.DAGS, config.namespace, dag, "DAG")
        await client.patch(kube.DAGS, config.namespace, dag, cluster_plans.pause_patch(paused))

    _run(config, work)
    click.echo(f"dag.{resources.GROUP}/{dag} {'paused' if paused else 'unpaused'}")


@click.command("pause")
@click.argument("dag")
@cluster_options
def pause_cmd(config: Target, dag: str) -> None:
    """Stop scheduling new runs of DAG (queued runs wait; running ones go on)."""
    _set_paused(config, dag, True)


@click.command("unpause")
@click.argument("dag")
@cluster_options
def unpause_cmd(config: Target, dag: str) -> None:
    """Resume scheduling DAG."""
    _set_paused(config, dag, False)


@click.command("dags")
@cluster_options
def dags_cmd(config: Target) -> None:
    """List the DAGs of the namespace."""

    async def work(client: kube.Kube) -> list[dict[str, Any]]:
        return await client.list_objects(kube.DAGS, config.namespace)

    _console().print(cluster_plans.dags_table(_run(config, work)))


@click.command("runs")
@click.argument("dag", required=False)
@cluster_options
def runs_cmd(config: Target, dag: str | None) -> None:
    """List DAGRuns (of DAG, if given), newest logical date first."""

    async def work(client: kube.Kube) -> list[dict[str, Any]]:
        return await _runs_of(client, config.namespace, dag)

    _console().print(cluster_plans.runs_table(_run(config, work), now=datetime.now(UTC)))


CLUSTER_COMMANDS: list[click.Command] = [
    operator_cmd,
    crds_cmd,
    apply_cmd,
    trigger_cmd,
    backfill_cmd,
    clear_cmd,
    get_cmd,
    logs_cmd,
    pause_cmd,
    unpause_cmd,
    dags_cmd,
    runs_cmd,
]
"""Registered on the `kubeflowlite` group by cli.main."""
