"""The web UI in chromium on the hermetic cluster: what a user sees and does, end to end.

Pods are KWOK's (no containers, no logs); their lifecycle is steered with the
kwok.kubeflowlite.io/* annotations (see operator_harness.kwok), so a task can
stay queued and running long enough to watch its cell change colour.
"""

from __future__ import annotations

import copy
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from operator_harness import Api, OperatorProcess, dag_manifest, kwok, task_states, wait_for
from playwright.sync_api import Locator, Page, expect

REPO = Path(__file__).resolve().parents[3]
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'

# Records every state the grid cells of one run show, from now on; set once per page load, so
# the record surviving to the end also proves the page never reloaded.
RECORD_STATES = """(run) => {
  window.__kflSeen = {};
  const table = document.querySelector('table.grid');
  const column = [...table.tHead.rows[0].cells].findIndex((th) => th.dataset.run === run);
  const note = (td) => {
    const task = td.parentElement.dataset.task;
    const state = (td.className.match(/\\bst-([a-z_]+)/) || [])[1];
    const seen = (window.__kflSeen[task] = window.__kflSeen[task] || []);
    if (seen[seen.length - 1] !== state) seen.push(state);
  };
  const cells = [...table.tBodies[0].rows].map((tr) => tr.cells[column]);
  cells.forEach(note);
  new MutationObserver((changes) => changes.forEach((c) => note(c.target)))
    .observe(table.tBodies[0], {subtree: true, attributes: true, attributeFilter: ['class']});
}"""


def tutorial(**pod_annotations: str) -> dict[str, Any]:
    """examples/tutorial.yaml, with Pods that stay queued and running for a while."""
    dag: dict[str, Any] = yaml.safe_load((REPO / "examples" / "tutorial.yaml").read_text())
    dag["spec"]["defaults"]["pod"] = {"metadata": {"annotations": pod_annotations}}
    dag["spec"]["defaults"]["retries"] = 0
    for task in dag["spec"]["tasks"]:
        task.pop("retries", None)
    return dag


def seen(page: Page, task: str) -> list[str]:
    states: list[str] = page.evaluate("(task) => (window.__kflSeen || {})[task] || []", task)
    return states


def cell(page: Page, run: str, task: str) -> Locator:
    """The grid cell of `task` in `run`'s column."""
    column = page.evaluate(
        "(run) => [...document.querySelector('table.grid').tHead.rows[0].cells]"
        ".findIndex((th) => th.dataset.run === run)",
        run,
    )
    assert column > 0, f"run {run} is not on the grid"
    return page.locator(f'table.grid tr[data-task="{task}"] > :nth-child({column + 1})')


def head(page: Page, run: str) -> Locator:
    return page.locator(f'table.grid th[data-run="{run}"] a')


def state(name: str) -> re.Pattern[str]:
    return re.compile(rf"\bst-{name}\b")


def in_order(states: list[str], *wanted: str) -> bool:
    """`wanted` appear in `states` in that order (other states may come between)."""
    position = 0
    for state in states:
        if position < len(wanted) and state == wanted[position]:
            position += 1
    return position == len(wanted)


def test_tutorial_appears_and_a_triggered_run_turns_green_live(
    ui: Any, operator: OperatorProcess, api: Api, page: Page, shot: Any
) -> None:
    api.apply(tutorial(**{"kwok.kubeflowlite.io/pending-delay": "2s", "kwok.kubeflowlite.io/delay": "2s"}))
    page.goto(ui.url + "/")
    row = page.locator('tr[data-dag="tutorial"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("First DAG")
    expect(row).to_contain_text("55 14 * * *")
    expect(row.locator(".tag")).to_have_text("example")
    shot("dags")

    row.locator("a.dag-link").click()
    expect(page.locator("h1")).to_contain_text("tutorial")
    page.locator("details.action summary").click()
    page.fill("form.trigger textarea[name=conf]", '{"my_param": "from the UI"}')
    page.fill("form.trigger input[name=date]", "2020-02-09")
    page.click("form.trigger button[type=submit]")

    page.wait_for_url(re.compile(r".*/dags/.*/tutorial/\?triggered=.*"))
    run_name = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["triggered"][0]
    page.evaluate(RECORD_STATES, run_name)
    created = api.run(run_name)
    assert created["spec"]["conf"] == {"my_param": "from the UI"}
    assert created["spec"]["logicalDate"] == "2020-02-09T00:00:00Z"
    assert created["spec"]["runType"] == "manual"

    sleep = cell(page, run_name, "sleep")
    expect(sleep).to_have_class(state("running"), timeout=30_000)
    shot("grid-running")
    expect(sleep).to_have_class(state("success"), timeout=30_000)
    expect(head(page, run_name)).to_have_class(state("success"), timeout=30_000)
    for task in ("print_date", "templated"):
        expect(cell(page, run_name, task)).to_have_class(state("success"))
    states = seen(page, "sleep")
    assert in_order(states, "queued", "running", "success"), states  # and the record survived: no reload
    assert page.evaluate("window.__kflSeen !== undefined")
    shot("grid")

    head(page, run_name).click()
    expect(page.locator("#graph svg")).to_be_visible()
    for task in ("print_date", "sleep", "templated"):
        expect(page.locator(f"#graph g.node.task.st-success:has(title:text-is('{task}'))")).to_have_count(1)
    expect(page.locator("pre.conf")).to_contain_text("from the UI")
    expect(page.locator("dl.details")).to_contain_text("2020-02-09T00:00:00Z")
    shot("graph")

    page.click("nav.tabs >> text=Gantt")
    expect(page.locator("table.gantt tr")).to_have_count(3)
    expect(page.locator('tr[data-task="sleep"] .bar.queued')).to_have_count(1)  # 2 s Pending: queued time
    shot("gantt")

    # Back on the DAG list: the run is one of its recent dots, and the schedule's next run shows.
    page.goto(ui.url + "/")
    dot = row.locator(f'.dots a.dot[href$="/{run_name}/"]')
    expect(dot).to_have_class(state("success"))
    expect(row.locator(".next-run")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\dT14:55:00Z$"))
    dot.click()
    expect(page.locator("#run-state")).to_have_text("success")


def test_clearing_a_failed_task_from_the_ui_reruns_it(
    ui: Any, operator: OperatorProcess, api: Api, page: Page, shot: Any
) -> None:
    flaky = kwok(outcome="{{ 'failure' if ti.try_number < 2 else 'success' }}")
    api.apply(
        dag_manifest(
            "flaky",
            [
                {"name": "first", "command": ["true"], "pod": kwok(message='{"rows": 3}')},
                {"name": "flaky", "dependsOn": ["first"], "command": ["false"], "pod": flaky},
                {"name": "after", "dependsOn": ["flaky"], "command": ["true"], "pod": kwok(delay="3s")},
            ],
        )
    )
    run = api.create_run("flaky", "2020-02-09T00:00:00Z")
    failed = api.wait_run(run, states=("failed",))
    assert task_states(failed) == {"first": "success", "flaky": "failed", "after": "upstream_failed"}

    page.goto(f"{ui.url}/runs/{api.namespace}/{run}/tasks/flaky")
    expect(page.locator("#task-state")).to_have_text("failed")
    expect(page.locator("table.tries tbody tr")).to_have_count(1)
    page.locator("details.action summary").click()
    page.check("form.clear input[name=downstream]")
    page.click("form.clear button[type=submit]")
    page.wait_for_url(re.compile(rf".*/runs/{api.namespace}/{run}/$"))
    page.evaluate("window.__kflSamePage = true")
    after = page.locator("#graph g.node.task:has(title:text-is('after'))")
    assert "st-success" not in (after.get_attribute("class") or "")  # the rerun is not done yet
    expect(after).to_have_class(state("success"), timeout=30_000)  # the graph follows the run live
    expect(page.locator("#run-state")).to_have_text("success")
    assert page.evaluate("window.__kflSamePage") is True

    done = api.wait_run(run, states=("success",))
    assert task_states(done) == {"first": "success", "flaky": "success", "after": "success"}
    assert done["status"]["tasks"]["flaky"]["tryNumber"] == 2
    assert done["spec"]["clear"]["tasks"] == ["flaky", "after"]

    page.goto(f"{ui.url}/runs/{api.namespace}/{run}/tasks/flaky")
    expect(page.locator("#task-state")).to_have_text("success")
    expect(page.locator("table.tries tbody tr")).to_have_count(2)
    expect(page.locator("table.tries tbody tr").first).to_contain_text("failed")
    page.goto(f"{ui.url}/runs/{api.namespace}/{run}/tasks/first")
    expect(page.locator("pre.xcom")).to_contain_text('"rows": 3')
    expect(page.locator("pre.command")).to_contain_text("true")
    # KWOK nodes run no kubelet: the log panel shows the API server's answer, not a stack trace.
    expect(page.locator("#log .log-error")).to_contain_text("did not return the log")
    shot("task")


def test_pausing_from_the_ui_sets_spec_paused(ui: Any, api: Api, page: Page) -> None:
    api.apply(dag_manifest("switch", [{"name": "a", "command": ["true"]}], schedule="@daily"))
    page.goto(ui.url + "/")
    button = page.locator('tr[data-dag="switch"] form.pause button')
    expect(button).to_have_text("active")
    button.click()
    expect(page.locator('tr[data-dag="switch"] form.pause button')).to_have_text("paused")
    assert api.dag("switch")["spec"]["paused"] is True

    page.goto(f"{ui.url}/dags/{api.namespace}/switch/")
    page.click("form.pause button")
    expect(page.locator("form.pause button")).to_have_text("active")
    assert api.dag("switch")["spec"]["paused"] is False


def test_no_script_a_user_wrote_ever_runs(ui: Any, operator: OperatorProcess, api: Api, page: Page) -> None:
    api.apply(
        dag_manifest(
            "xss",
            [
                {"name": "value", "command": ["true"], "pod": kwok(message=json.dumps(XSS))},
                {"name": "broken", "command": ["false"], "pod": kwok(outcome="failure", message=XSS)},
            ],
            description=XSS,
            tags=["<b>tag</b>"],
        )
    )
    run = api.create_run("xss", "2020-02-09T00:00:00Z", conf={"x": XSS})
    api.wait_run(run, states=("failed",))

    pages = {
        "/": "table.dags",
        "/?tag=" + urllib.parse.quote("<b>tag</b>"): "table.dags",
        f"/dags/{api.namespace}/xss/": ".dag-info",
        f"/runs/{api.namespace}/{run}/": "pre.conf",
        f"/runs/{api.namespace}/{run}/tasks/value": "pre.xcom",
        f"/runs/{api.namespace}/{run}/tasks/broken": "table.tries",
    }
    for path, where in pages.items():
        page.goto(ui.url + path)
        expect(page.locator(where)).to_contain_text("<script>window.__pwned = 1</script>")
        assert page.evaluate("window.__pwned") is None, path
        assert page.locator("main script, main img").count() == 0, path


def test_writes_need_a_post_with_the_csrf_token(ui: Any, api: Api, page: Page) -> None:
    api.apply(dag_manifest("guarded", [{"name": "a", "command": ["true"]}]))
    url = f"{ui.url}/dags/{api.namespace}/guarded/pause"

    def post(form: dict[str, str], headers: dict[str, str] | None = None) -> int:
        data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    assert post({"paused": "true"}) == 403
    rebound = urllib.request.Request(ui.url + "/", headers={"Host": "evil.example"})
    try:
        urllib.request.urlopen(rebound, timeout=10)
        raise AssertionError("a page for another host name must be refused (DNS rebinding)")
    except urllib.error.HTTPError as error:
        assert error.code == 400
    assert post({"paused": "true", "csrf": "guess"}) == 403
    try:
        urllib.request.urlopen(f"{url}?paused=true", timeout=10)
        raise AssertionError("a GET must not write")
    except urllib.error.HTTPError as error:
        assert error.code == 405
    assert not api.dag("guarded")["spec"].get("paused")

    page.goto(ui.url + "/")
    token = page.locator('tr[data-dag="guarded"] input[name=csrf]').get_attribute("value") or ""
    assert post({"paused": "true", "csrf": token}, {"Origin": "http://evil.example"}) == 403
    assert not api.dag("guarded")["spec"].get("paused")
    page.locator('tr[data-dag="guarded"] form.pause button').click()
    expect(page.locator('tr[data-dag="guarded"] form.pause button')).to_have_text("paused")
    assert api.dag("guarded")["spec"]["paused"] is True


def test_the_log_view_says_when_a_pod_is_gone(
    ui: Any, operator: OperatorProcess, api: Api, page: Page, shot: Any
) -> None:
    api.apply(dag_manifest("tidy", [{"name": "a", "bash": "echo {{ ds }}"}], podCleanup="onSuccess"))
    run = api.create_run("tidy", "2020-02-09T00:00:00Z")
    api.wait_run(run, states=("success",))
    wait_for(lambda: not api.pods(run), timeout=30, what="the task's Pod to be deleted")

    page.goto(f"{ui.url}/runs/{api.namespace}/{run}/tasks/a")
    gone = page.locator("#log .log-gone")
    expect(gone).to_contain_text("is gone")
    expect(gone).to_contain_text(f"{run}-a-1")
    expect(page.locator("pre.command")).to_contain_text("echo 2020-02-09")  # rendered as the operator did
    expect(page.locator("h3", has_text="Command")).to_contain_text("the Pod is gone")
    shot("task-log-gone")


def test_a_forbidden_action_shows_the_rbac_message(
    start_ui: Any, cluster: Any, api: Api, page: Page, tmp_path: Path
) -> None:
    api.apply(dag_manifest("locked", [{"name": "a", "command": ["true"]}]))
    kubeconfig = read_only_kubeconfig(cluster, api.namespace, tmp_path)
    ui = start_ui(kubeconfig=kubeconfig)
    page.goto(ui.url + "/")
    page.locator('tr[data-dag="locked"] form.pause button').click()
    expect(page.locator("section.error h1")).to_contain_text("Forbidden by the cluster's RBAC")
    expect(page.locator("section.error .message")).to_contain_text("cannot patch resource")
    assert not api.dag("locked")["spec"].get("paused")


def test_runs_the_user_may_not_list_show_the_rbac_message_at_once(
    start_ui: Any, cluster: Any, api: Api, page: Page, tmp_path: Path
) -> None:
    api.apply(dag_manifest("hidden", [{"name": "a", "command": ["true"]}]))
    kubeconfig = read_only_kubeconfig(cluster, api.namespace, tmp_path, resources=["dags"])
    ui = start_ui(kubeconfig=kubeconfig)
    started = time.monotonic()
    page.goto(ui.url + "/")
    expect(page.locator("section.error h1")).to_contain_text("Forbidden by the cluster's RBAC")
    expect(page.locator("section.error .message")).to_contain_text('cannot list resource "dagruns"')
    assert time.monotonic() - started < 20  # the cache's refused list is not waited out (30 s)


def read_only_kubeconfig(
    cluster: Any,
    namespace: str,
    folder: Path,
    *,
    resources: tuple[str, ...] | list[str] = ("dags", "dagruns"),
) -> Path:
    """A kubeconfig for a ServiceAccount that may read our objects in `namespace` and write nothing."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "viewer", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["kubeflowlite.io"],
                "resources": list(resources),
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": [""],
                "resources": ["pods", "pods/log", "events", "configmaps"],
                "verbs": ["get", "list"],
            },
        ],
    }
    cluster.kubectl("create", "serviceaccount", "viewer", "-n", namespace)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(role))
    cluster.kubectl(
        "create",
        "rolebinding",
        "viewer",
        "-n",
        namespace,
        "--role=viewer",
        f"--serviceaccount={namespace}:viewer",
    )
    token = cluster.kubectl("create", "token", "viewer", "-n", namespace).stdout.strip()
    config = copy.deepcopy(yaml.safe_load(Path(cluster.kubeconfig).read_text()))
    config["users"] = [{"name": "viewer", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "viewer"
        context["context"]["namespace"] = namespace
    path = folder / "viewer.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_run_created_elsewhere_appears_on_the_open_grid(ui: Any, api: Api, page: Page) -> None:
    api.apply(dag_manifest("elsewhere", [{"name": "a", "command": ["true"]}]))
    first = api.create_run("elsewhere", "2020-02-09T00:00:00Z")
    page.goto(f"{ui.url}/dags/{api.namespace}/elsewhere/")
    expect(page.locator("table.grid th[data-run]")).to_have_count(1)
    page.evaluate("window.__kflSamePage = true")
    second = api.create_run("elsewhere", "2020-02-10T00:00:00Z")  # as `kubeflowlite trigger` or kubectl would
    runs = page.locator("table.grid th[data-run]")
    expect(runs).to_have_count(2)
    assert [runs.nth(0).get_attribute("data-run"), runs.nth(1).get_attribute("data-run")] == [first, second]
    assert page.evaluate("window.__kflSamePage") is True  # the grid was re-fetched, the page not reloaded


def test_a_stuck_task_shows_why_its_pod_waits(
    ui: Any, operator: OperatorProcess, api: Api, page: Page
) -> None:
    api.apply(
        dag_manifest(
            "stuck",
            [
                {
                    "name": "pull",
                    "command": ["true"],
                    "pod": kwok(stuck=True, waiting_reason="ImagePullBackOff"),
                }
            ],
        )
    )
    run = api.create_run("stuck", "2020-02-09T00:00:00Z")
    wait_for(lambda: api.pods(run), timeout=30, what="the task's Pod")
    page.goto(f"{ui.url}/runs/{api.namespace}/{run}/tasks/pull")
    expect(page.locator("#task-state")).to_have_text("queued")
    expect(page.locator(".waiting")).to_contain_text("ImagePullBackOff")
    expect(page.locator("table.events")).to_contain_text("Scheduled")


def test_the_grid_pages_through_runs_without_leaving_the_page(ui: Any, api: Api, page: Page) -> None:
    api.apply(dag_manifest("many", [{"name": "a", "command": ["true"]}]))
    for day in range(1, 28):
        api.create_run("many", f"2020-01-{day:02d}T00:00:00Z", name=f"many-{day:02d}")
    page.goto(f"{ui.url}/dags/{api.namespace}/many/")
    columns = page.locator("table.grid th[data-run]")
    expect(columns).to_have_count(25)
    expect(columns.first).to_have_attribute("data-run", "many-03")
    expect(columns.last).to_have_attribute("data-run", "many-27")
    page.evaluate("window.__kflSamePage = true")
    page.click("text=‹ older")
    expect(columns).to_have_count(2)
    expect(columns.first).to_have_attribute("data-run", "many-01")
    page.click("text=newer ›")
    expect(columns).to_have_count(25)
    assert page.evaluate("window.__kflSamePage") is True


def test_the_dag_list_shows_an_invalid_dag_and_filters_by_tag(
    start_ui: Any, operator: OperatorProcess, api: Api, page: Page
) -> None:
    api.apply(
        dag_manifest(
            "loop",
            [
                {"name": "a", "command": ["true"], "dependsOn": ["b"]},
                {"name": "b", "command": ["true"], "dependsOn": ["a"]},
            ],
            tags=["broken"],
        )
    )
    api.apply(dag_manifest("fine", [{"name": "a", "command": ["true"]}], tags=["ok"]))
    ui = start_ui("-A")  # every namespace: the list gets a namespace column
    page.goto(ui.url + "/")
    loop = page.locator('tr[data-dag="loop"]')
    expect(loop.locator(".bad")).to_have_text("invalid", timeout=20_000)
    expect(loop.locator(".ready-message")).to_contain_text("cycle")
    expect(loop).to_contain_text(api.namespace)
    expect(page.locator('tr[data-dag="fine"] .ok')).to_have_text("ready")
    page.select_option("form.filter select[name=tag]", "ok")
    page.wait_for_url(re.compile(r".*\?tag=ok$"))
    expect(page.locator('tr[data-dag="fine"]')).to_have_count(1)
    expect(page.locator('tr[data-dag="loop"]')).to_have_count(0)


def test_a_running_tries_log_is_followed_and_a_refusal_is_shown(
    ui: Any, operator: OperatorProcess, api: Api, page: Page
) -> None:
    api.apply(dag_manifest("long", [{"name": "work", "command": ["true"], "pod": kwok(delay="60s")}]))
    run = api.create_run("long", "2020-02-09T00:00:00Z")
    wait_for(lambda: task_states(api.run(run)).get("work") == "running", timeout=30, what="the task to run")
    page.goto(f"{ui.url}/runs/{api.namespace}/{run}/tasks/work")
    panel = page.locator("#log")
    expect(panel).to_have_attribute("data-stream", re.compile(r"/log/stream\?try=1&tail=200$"))
    # KWOK nodes have no kubelet to stream from: the stream ends with the API server's answer.
    expect(panel.locator(".log-status")).to_contain_text("did not return the log", timeout=20_000)
    expect(panel.locator(".following")).to_have_text("stopped")


def test_the_trigger_form_checks_conf_and_reports_a_duplicate(ui: Any, api: Api, page: Page) -> None:
    api.apply(dag_manifest("form", [{"name": "a", "command": ["true"]}]))
    page.goto(f"{ui.url}/dags/{api.namespace}/form/")
    page.locator("details.action summary").click()
    page.fill("form.trigger textarea[name=conf]", "{not json")
    page.click("form.trigger button[type=submit]")
    expect(page.locator("form.trigger .form-error")).to_contain_text("conf is not valid JSON")
    assert api.runs() == []  # checked in the page: nothing was sent

    page.fill("form.trigger textarea[name=conf]", "")
    page.fill("form.trigger input[name=date]", "2020-02-09")
    page.click("form.trigger button[type=submit]")
    page.wait_for_url(re.compile(r".*\?triggered=form-manual-20200209t000000$"))
    page.locator("details.action summary").click()
    page.fill("form.trigger input[name=date]", "2020-02-09")
    page.click("form.trigger button[type=submit]")
    expect(page.locator("section.error h1")).to_contain_text("Trigger refused")
    expect(page.locator("section.error .message")).to_contain_text("form-manual-20200209t000000")
    assert [r["metadata"]["name"] for r in api.runs()] == ["form-manual-20200209t000000"]
