"""The web application: routes that read through `source`, shape with `models`, render with Jinja2.

Safety rules, each in one place:
- Everything shown is escaped: the Jinja2 environment autoescapes every template,
  and the only markup inserted unescaped is Graphviz's SVG (which escapes labels).
  A Content-Security-Policy allows scripts from this server's /static only, so even
  an escaping mistake could not run an inline script.
- Writes are POSTs carrying the server's CSRF token (a random value per process,
  only readable by pages this server rendered) and, when the browser sends an
  Origin, from this server's own origin (`check_write`).
- A UI bound to loopback answers only requests addressed to a loopback name
  (DNS rebinding), and sends no page to be framed (CSP frame-ancestors).
- An API refusal (RBAC's 403, a conflict, a missing object) is shown as the API
  server's message with its status code, never as a stack trace (`api_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from markupsafe import Markup, escape
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from kubeflowlite.api.dagrun import RunType
from kubeflowlite.cli import cluster_plans
from kubeflowlite.k8s import kube, names, pods
from kubeflowlite.ui import forms, graph, informer, live, models, render, runview
from kubeflowlite.ui.source import PodGone, Scope, Source

HERE = Path(__file__).parent
CACHE_WAIT_SECONDS = 30.0
"""How long a page waits for the DAGRun cache's first list before listing on its own."""
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def template_environment() -> jinja2.Environment:
    """The templates' Jinja2 environment: every template autoescaped, unknown names an error."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["q"] = lambda text: quote(str(text), safe="")
    env.filters["cells"] = grid_cells
    return env


def grid_cells(states: list[str]) -> Markup:
    """One grid row's cells: only a state class each (a 1,000-task grid page has 25,000 of them)."""
    return Markup("".join(f'<td class="st-{escape(state)}"></td>' for state in states))


class UI:
    """The application's state: the API client, the scope, the DAGRun cache, the layouts, the CSRF token."""

    def __init__(self, client: kube.Kube, scope: Scope, *, allow_writes: bool = True) -> None:
        self.source = Source(client, scope)
        self.scope = scope
        self.runs = informer.RunCache(client, scope)
        self.layouts = graph.LayoutCache()
        self.csrf = secrets.token_urlsafe(32)
        self.allow_writes = allow_writes
        self.templates = Jinja2Templates(env=template_environment())

    # --- helpers --------------------------------------------------------------------------------------

    def page(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context |= {"csrf": self.csrf, "scope": self.scope, "writes": self.allow_writes}
        response: HTMLResponse = self.templates.TemplateResponse(
            request, template, context, status_code=status_code
        )
        return response

    def namespace(self, request: Request) -> str:
        namespace = str(request.path_params["ns"])
        if not self.scope.allows(namespace):
            raise HTTPException(404, f"namespace {namespace!r} is not shown by this UI (started with -n)")
        return namespace

    async def check_write(self, request: Request) -> dict[str, str]:
        """The form of a write request, once its CSRF token and origin are right; 403 otherwise."""
        if not self.allow_writes:
            raise HTTPException(
                403, "this UI is read-only (kubeflowlite ui --read-only; the chart's ui.allowWrites)"
            )
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, f"cross-origin request refused (Origin {origin})")
        form = await request.form()
        token = str(form.get("csrf") or "")
        if not hmac.compare_digest(token.encode(), self.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        return {key: str(value) for key, value in form.items()}

    # --- pages ----------------------------------------------------------------------------------------

    async def runs_in(self, namespace: str | None, dag: str | None = None) -> list[models.RunStates]:
        """The runs of the scope (or of one namespace's DAG) from the cache, once it mirrors the API.

        Before the cache's first list has finished this waits for it (the same one list a
        render would make); if that list fails (RBAC may refuse list or watch), the runs are
        listed directly, so the page shows the API server's own answer.
        """
        if not await self.runs.warm(CACHE_WAIT_SECONDS):
            objects = (
                await self.source.all_runs()
                if dag is None
                else await self.source.runs_of(str(namespace), dag)
            )
            return [models.run_states(run) for run in objects]
        if dag is None:
            return self.runs.all_runs()
        return self.runs.runs_of(str(namespace), dag)

    async def dags(self, request: Request) -> Response:
        tag = request.query_params.get("tag") or None
        dags, runs = await asyncio.gather(self.source.dags(), self.runs_in(self.scope.namespace))
        rows = models.dag_rows(dags, runs, tag=tag)
        return self.page(request, "dags.html", rows=rows, tags=models.all_tags(dags), tag=tag)

    async def _grid(self, request: Request) -> tuple[str, str, dict[str, Any] | None, models.Grid]:
        namespace, name = self.namespace(request), str(request.path_params["dag"])
        dag, runs = await asyncio.gather(self.source.dag(namespace, name), self.runs_in(namespace, name))
        if dag is None and not runs:
            raise HTTPException(404, f"DAG {name!r} not found in namespace {namespace!r}")
        offset = _int(request.query_params.get("offset"))
        return namespace, name, dag, models.grid(dag, runs, offset=offset)

    async def dag_page(self, request: Request) -> Response:
        namespace, name, dag, grid = await self._grid(request)
        rows = models.dag_rows([dag], [], tag=None) if dag is not None else []
        response = self.page(
            request,
            "grid.html",
            namespace=namespace,
            dag=name,
            row=rows[0] if rows else None,
            grid=grid,
            error=None,
        )
        # Once the grid is sent, lay the DAG out for its runs' graph views: the next click is likely one.
        tasks = ((dag or {}).get("spec") or {}).get("tasks") or []
        response.background = BackgroundTask(self.layouts.prepare, tasks)
        return response

    async def grid_fragment(self, request: Request) -> Response:
        namespace, name, _, grid = await self._grid(request)
        return self.page(request, "_grid.html", namespace=namespace, dag=name, grid=grid)

    async def grid_events(self, request: Request) -> Response:
        namespace, name = self.namespace(request), str(request.path_params["dag"])
        events = live.grid_events(
            self.source,
            self.runs,
            namespace=namespace,
            dag=name,
            watch_key=request.query_params.get("runs") or "",
            offset=_int(request.query_params.get("offset")),
            floor=request.query_params.get("floor") or "",
        )
        return EventSourceResponse(events, ping=15)

    async def run_events(self, request: Request) -> Response:
        namespace, name = self.namespace(request), str(request.path_params["run"])
        events = live.run_events(
            self.runs,
            namespace=namespace,
            run_name=name,
            version=request.query_params.get("v") or "",
        )
        return EventSourceResponse(events, ping=15)

    async def _run(self, request: Request) -> tuple[str, dict[str, Any]]:
        namespace, name = self.namespace(request), str(request.path_params["run"])
        run = await self.source.run(namespace, name)
        if run is None:
            raise HTTPException(404, f"DAGRun {name!r} not found in namespace {namespace!r}")
        return namespace, run

    async def run_page(self, request: Request) -> Response:
        namespace, run = await self._run(request)
        snapshot = (run.get("status") or {}).get("dagSpec") or {}
        tasks = snapshot.get("tasks") or []
        svg = ""
        layout_error = ""
        if tasks:
            try:
                svg = await run_in_threadpool(self.layouts.svg, tasks)
            except graph.LayoutError as error:
                layout_error = str(error)
        compact = models.run_states(run)
        states = compact.column(models.task_ids(None, [compact]))
        return self.page(
            request,
            "run.html",
            namespace=namespace,
            run=runview.run_details(run, now=_now()),
            svg=Markup(graph.colour(svg, states)) if svg else "",
            layout_error=layout_error,
            tasks=list(states),
            version=str((run.get("metadata") or {}).get("resourceVersion") or ""),
        )

    async def gantt_page(self, request: Request) -> Response:
        namespace, run = await self._run(request)
        pod_list = await self.source.pods_of(namespace, models.name_of(run))
        bars, span = runview.gantt(run, pod_list, now=_now())
        return self.page(
            request,
            "gantt.html",
            namespace=namespace,
            run=runview.run_details(run, now=_now()),
            bars=bars,
            span=span,
        )

    async def task_page(self, request: Request) -> Response:
        namespace, run = await self._run(request)
        task = str(request.path_params["task"])
        run_name = models.name_of(run)
        tries = runview.tries(run, task, now=_now())
        state = models.task_state(run, task)
        if state == "absent":
            raise HTTPException(404, f"run {run_name!r} has no task {task!r}")
        current = tries[-1] if tries else None
        pod, events, configmap = await asyncio.gather(
            self.source.pod(namespace, current.pod) if current else _none(),
            self.source.pod_events(namespace, current.pod) if current else _empty(),
            self.source.xcom(namespace, run_name),
        )
        xcom = runview.xcom_text(configmap, task)
        command: str | None
        if pod is not None:
            command, command_source = runview.pod_command(pod, pods.MAIN_CONTAINER), "as the Pod runs it"
        else:
            xcoms = {str(k): str(v) for k, v in ((configmap or {}).get("data") or {}).items()}
            command = render.rendered_command(run, task, xcoms)
            command_source = "rendered from the run's DAG snapshot: the Pod is gone"
        return self.page(
            request,
            "task.html",
            namespace=namespace,
            run=runview.run_details(run, now=_now()),
            task=task,
            state=state,
            tries=tries,
            pod=runview.pod_info(pod) if pod else None,
            command=command,
            command_source=command_source,
            events=runview.event_rows(events),
            xcom=xcom,
        )

    async def log_fragment(self, request: Request) -> Response:
        namespace, run_name = self.namespace(request), str(request.path_params["run"])
        task = str(request.path_params["task"])
        number = _int(request.query_params.get("try")) or 1
        tail = forms.log_tail(request.query_params.get("tail"))
        pod = runview.try_pod(run_name, task, number)
        text, gone, error, cut = "", False, "", None
        pod_obj = await self.source.pod(namespace, pod)
        phase = ((pod_obj or {}).get("status") or {}).get("phase")
        waiting, streaming = phase == "Pending", phase == "Running"
        try:
            if not (waiting or streaming):
                log = await self.source.log(namespace, pod, tail=tail, max_bytes=forms.LOG_MAX_BYTES)
                text, cut = log.decode("utf-8", "replace"), forms.log_cut(log, tail)
        except PodGone:
            gone = True
        except kube.ApiError as refused:  # shown in the log panel (htmx swaps only successful responses)
            error = f"{refused.status} {refused.reason}: {refused.message}"
        return self.page(
            request,
            "_log.html",
            namespace=namespace,
            run=run_name,
            task=task,
            number=number,
            pod=pod,
            text=text,
            gone=gone or pod_obj is None,
            error=error,
            waiting=waiting,
            streaming=streaming,
            tail=tail,
            cut=cut,
            more=forms.more_log(tail) if cut or streaming else None,
        )

    async def log_stream(self, request: Request) -> Response:
        namespace, run_name = self.namespace(request), str(request.path_params["run"])
        pod = runview.try_pod(
            run_name, str(request.path_params["task"]), _int(request.query_params.get("try")) or 1
        )
        tail = forms.log_tail(request.query_params.get("tail"))
        return EventSourceResponse(
            live.log_events(self.source, namespace=namespace, pod=pod, tail=tail), ping=15
        )

    # --- writes -----------------------------------------------------------------------------------------

    async def trigger(self, request: Request) -> Response:
        form = await self.check_write(request)
        namespace, name = self.namespace(request), str(request.path_params["dag"])
        try:
            logical_date, conf = forms.parse_trigger(form.get("conf", ""), form.get("date", ""))
        except forms.FormError as error:
            return self.message(request, 400, "Trigger refused", str(error))
        try:
            run = await self.source.trigger(namespace, name, logical_date=logical_date, conf=conf)
        except kube.ApiError as error:
            if error.conflict:
                existing = names.dagrun_name(name, logical_date, RunType.manual)
                return self.message(
                    request, 409, "Trigger refused", f"a manual run at that date exists: {existing}"
                )
            raise
        return RedirectResponse(
            f"/dags/{quote(namespace)}/{quote(name)}/?triggered={quote(run)}", status_code=303
        )

    async def pause(self, request: Request) -> Response:
        form = await self.check_write(request)
        namespace, name = self.namespace(request), str(request.path_params["dag"])
        await self.source.set_paused(namespace, name, form.get("paused") == "true")
        return RedirectResponse(
            _local(form.get("next")) or f"/dags/{quote(namespace)}/{quote(name)}/", status_code=303
        )

    async def clear(self, request: Request) -> Response:
        form = await self.check_write(request)
        namespace, run = await self._run(request)
        task = form.get("task", "")
        try:
            tasks = forms.clear_tasks(
                run,
                task,
                downstream=bool(form.get("downstream")),
                upstream=bool(form.get("upstream")),
                only_failed=bool(form.get("only_failed")),
            )
        except cluster_plans.PlanError as error:
            return self.message(request, 400, "Clear refused", str(error))
        if not tasks:
            return self.message(request, 400, "Nothing to clear", "no task matches the options chosen")
        await self.source.clear(namespace, models.name_of(run), tasks)
        return RedirectResponse(f"/runs/{quote(namespace)}/{quote(models.name_of(run))}/", status_code=303)

    def message(self, request: Request, status: int, title: str, text: str) -> HTMLResponse:
        return self.page(request, "error.html", status_code=status, status=status, title=title, message=text)

    async def api_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, kube.ApiError)
        title = (
            "Forbidden by the cluster's RBAC"
            if error.status == 403
            else f"The API server refused ({error.reason})"
        )
        return self.message(request, error.status, title, error.message or str(error))

    async def http_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return self.message(request, error.status_code, "Not possible", str(error.detail))


async def _none() -> None:
    return None


async def _empty() -> list[dict[str, Any]]:
    return []


def _int(text: str | None) -> int:
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0


def _now() -> datetime:
    return datetime.now(UTC)


def _local(path: str | None) -> str | None:
    """A redirect target only if it is a path on this server."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return None


class SecurityHeaders:
    """ASGI middleware adding CSP and friends to every HTTP response (streams untouched)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def create_app(
    client: kube.Kube, scope: Scope, *, allow_writes: bool = True, allowed_hosts: list[str] | None = None
) -> Starlette:
    """The Starlette application over `client` (closed with the app) for `scope`.

    `allowed_hosts` are the Host names requests may carry (default: any); a UI bound to
    loopback accepts only loopback names, so a DNS-rebinding page cannot read it.
    """
    ui = UI(client, scope, allow_writes=allow_writes)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        ui.runs.start()  # list and watch DAGRuns now, so the first page finds them in memory
        try:
            yield
        finally:
            await ui.runs.close()
            await client.close()

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/", ui.dags),
        Route("/healthz", healthz),
        Route("/dags/{ns}/{dag}/", ui.dag_page),
        Route("/dags/{ns}/{dag}/grid", ui.grid_fragment),
        Route("/dags/{ns}/{dag}/events", ui.grid_events),
        Route("/dags/{ns}/{dag}/trigger", ui.trigger, methods=["POST"]),
        Route("/dags/{ns}/{dag}/pause", ui.pause, methods=["POST"]),
        Route("/runs/{ns}/{run}/", ui.run_page),
        Route("/runs/{ns}/{run}/events", ui.run_events),
        Route("/runs/{ns}/{run}/gantt", ui.gantt_page),
        Route("/runs/{ns}/{run}/clear", ui.clear, methods=["POST"]),
        Route("/runs/{ns}/{run}/tasks/{task}", ui.task_page),
        Route("/runs/{ns}/{run}/tasks/{task}/log", ui.log_fragment),
        Route("/runs/{ns}/{run}/tasks/{task}/log/stream", ui.log_stream),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["*"]),
            Middleware(SecurityHeaders),
            Middleware(GZipMiddleware, minimum_size=2048),
        ],
        exception_handlers={kube.ApiError: ui.api_error, HTTPException: ui.http_error},
    )
    app.state.ui = ui
    return app
