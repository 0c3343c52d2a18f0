"""The web UI's pure parts: view models, graph layout and colouring, forms, escaping in templates."""

from __future__ import annotations

import concurrent.futures
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeflowlite.api.dagrun import RunType
from kubeflowlite.cli import cluster_plans
from kubeflowlite.k8s import names, run_manifest
from kubeflowlite.ui import forms, graph, models, render, runview
from kubeflowlite.ui.app import grid_cells, template_environment
from kubeflowlite.ui.command import is_loopback

NOW = datetime(2020, 2, 9, 12, 0, tzinfo=UTC)
TASKS = [
    {"name": "print_date"},
    {"name": "sleep", "dependsOn": ["print_date"]},
    {"name": "templated", "dependsOn": ["print_date"]},
]


def dag(name: str = "tutorial", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"tasks": TASKS, **spec}}


def run(name: str, date: str, states: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": "7"},
        "spec": {"dagName": "tutorial", "logicalDate": date, "runType": "manual", "conf": {}},
        "status": {
            "state": "running",
            "dagSpec": {"tasks": TASKS},
            "tasks": {task: {"state": state} for task, state in (states or {}).items()},
            **status,
        },
    }


def compact(*runs: dict[str, Any]) -> list[models.RunStates]:
    """Runs as the UI's cache keeps them."""
    return [models.run_states(r) for r in runs]


class TestDagList:
    def test_rows_filter_by_tag_and_show_recent_runs_newest_first(self) -> None:
        dags = [dag("a", tags=["x"]), dag("b", tags=["y"], description="<b>bold</b>")]
        runs = [run("r1", "2020-01-01T00:00:00Z"), run("r2", "2020-01-02T00:00:00Z")]
        for r in runs:
            r["spec"]["dagName"] = "a"
        rows = models.dag_rows(dags, compact(*runs))
        assert [r.name for r in rows] == ["a", "b"]
        assert rows[0].recent == [("r2", "running"), ("r1", "running")]
        assert rows[1].description == "<b>bold</b>"  # escaped by the template, not mangled here
        assert [r.name for r in models.dag_rows(dags, compact(*runs), tag="y")] == ["b"]
        assert models.all_tags(dags) == ["x", "y"]

    def test_ready_condition_and_its_message(self) -> None:
        invalid = dag(status=None)
        invalid["status"] = {"conditions": [{"type": "Ready", "status": "False", "message": "task x: bad"}]}
        (row,) = models.dag_rows([invalid], [])
        assert (row.ready, row.ready_message) == (False, "task x: bad")
        (pending,) = models.dag_rows([dag()], [])
        assert pending.ready is None


class TestGrid:
    def test_columns_oldest_left_and_paged_from_the_newest(self) -> None:
        runs = [run(f"r{i:02d}", f"2020-01-{i:02d}T00:00:00Z") for i in range(1, 31)]
        first = models.grid(dag(), compact(*runs), offset=0, per_page=25)
        assert [c.name for c in first.columns] == [f"r{i:02d}" for i in range(6, 31)]
        assert (first.older_offset, first.newer_offset, first.total) == (25, None, 30)
        older = models.grid(dag(), compact(*runs), offset=25, per_page=25)
        assert [c.name for c in older.columns] == [f"r{i:02d}" for i in range(1, 6)]
        assert (older.older_offset, older.newer_offset) == (None, 0)

    def test_rows_are_tasks_and_cells_carry_states(self) -> None:
        grid = models.grid(dag(), compact(run("r1", "2020-01-01T00:00:00Z", {"print_date": "success"})))
        assert grid.tasks == ["print_date", "sleep", "templated"]
        assert grid.rows == [["success"], ["none"], ["none"]]
        assert models.parse_watch_key(grid.watch_key) == {"r1": "7"}
        assert grid.floor == ""  # not a full page: any new run belongs on it

    def test_a_task_added_later_is_absent_from_older_runs(self) -> None:
        newer = dag()
        newer["spec"]["tasks"] = [*TASKS, {"name": "new"}]
        grid = models.grid(newer, compact(run("r1", "2020-01-01T00:00:00Z")))
        assert grid.tasks[-1] == "new"
        assert grid.rows[-1] == ["absent"]

    def test_only_changed_cells_are_sent(self) -> None:
        before = models.run_states(run("r1", "d", {"print_date": "running"})).column(["print_date", "sleep"])
        after = models.run_states(run("r1", "d", {"print_date": "success"})).column(["print_date", "sleep"])
        assert before == {"print_date": "running", "sleep": "none"}
        assert models.changed(before, after) == {"print_date": "success"}
        assert models.changed(after, after) == {}

    def test_a_new_run_belongs_on_a_full_first_page_only_if_newer_than_its_oldest(self) -> None:
        runs = [run(f"r{i:02d}", f"2020-01-{i:02d}T00:00:00Z") for i in range(1, 31)]
        first = models.grid(dag(), compact(*runs), per_page=25)
        assert first.floor == "2020-01-06T00:00:00Z"
        newer = models.run_states(run("new", "2020-02-01T00:00:00Z"))
        older = models.run_states(run("old", "2019-01-01T00:00:00Z"))
        assert models.belongs_on_first_page(newer, first.floor)
        assert not models.belongs_on_first_page(older, first.floor)
        assert models.belongs_on_first_page(older, "")

    @given(st.lists(st.sampled_from(models.STATES), max_size=30))
    def test_grid_cells_are_one_state_class_each(self, states: list[str]) -> None:
        html = str(grid_cells([*states, '"><script>']))
        assert html.count("<td ") == len(states) + 1
        assert "<script>" not in html

    def test_a_run_that_has_not_started_shows_none(self) -> None:
        fresh = {"metadata": {"name": "r"}, "spec": {"dagName": "tutorial"}}
        assert models.run_states(fresh).column(["a"]) == {"a": "none"}
        assert models.run_states(fresh).state == "queued"


class TestRunViews:
    def test_tries_list_earlier_tries_then_the_current_one(self) -> None:
        r = run("r1", "2020-01-01T00:00:00Z")
        r["status"]["tasks"]["sleep"] = {
            "state": "running",
            "tryNumber": 2,
            "startTime": "2020-02-09T11:59:00Z",
            "tries": [
                {
                    "tryNumber": 1,
                    "state": "failed",
                    "startTime": "2020-02-09T11:50:00Z",
                    "endTime": "2020-02-09T11:51:00Z",
                    "exitCode": 1,
                }
            ],
        }
        tries = runview.tries(r, "sleep", now=NOW)
        assert [(t.number, t.state, t.exit_code) for t in tries] == [(1, "failed", "1"), (2, "running", "-")]
        assert tries[0].duration == "1m" and tries[1].duration == "1m"
        assert tries[1].pod == names.pod_name("r1", "sleep", 2)

    def test_gantt_shows_queued_time_from_the_pod_and_running_time_from_the_try(self) -> None:
        r = run("r1", "2020-01-01T00:00:00Z")
        r["status"]["tasks"] = {
            "print_date": {
                "state": "success",
                "tryNumber": 1,
                "startTime": "2020-02-09T11:00:10Z",
                "endTime": "2020-02-09T11:00:20Z",
            },
            "sleep": {
                "state": "success",
                "tryNumber": 1,
                "startTime": "2020-02-09T11:00:20Z",
                "endTime": "2020-02-09T11:00:40Z",
            },
        }
        pod = {
            "metadata": {
                "name": names.pod_name("r1", "print_date", 1),
                "creationTimestamp": "2020-02-09T11:00:00Z",
            }
        }
        bars, span = runview.gantt(r, [pod], now=NOW)
        assert span == "40s"
        first, second = bars
        assert (first.queued_left, first.queued_width, first.running_left, first.running_width) == (
            0,
            25,
            25,
            25,
        )
        assert (second.queued_width, second.running_left, second.running_width) == (0, 50, 50)

    def test_run_details_pretty_print_conf_and_params(self) -> None:
        r = run("r1", "2020-01-01T00:00:00Z")
        r["spec"]["conf"] = {"b": 1, "a": "<script>"}
        r["status"]["dagSpec"]["params"] = {"p": "v"}
        details = runview.run_details(r, now=NOW)
        assert details.conf == '{\n  "a": "<script>",\n  "b": 1\n}'
        assert '"p": "v"' in details.params

    def test_stuck_pod_shows_its_waiting_reason(self) -> None:
        pod = {
            "metadata": {"name": "p"},
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {"state": {"waiting": {"reason": "ImagePullBackOff", "message": "no"}}}
                ],
            },
        }
        info = runview.pod_info(pod)
        assert (info.phase, info.waiting_reason, info.waiting_message) == (
            "Pending",
            "ImagePullBackOff",
            "no",
        )

    def test_xcom_is_pretty_json_or_the_stored_text(self) -> None:
        assert runview.xcom_text({"data": {"t": '{"k": [1]}'}}, "t") == '{\n  "k": [\n    1\n  ]\n}'
        assert runview.xcom_text({"data": {"t": "not json"}}, "t") == "not json"
        assert runview.xcom_text(None, "t") is None

    def test_pod_command_is_what_the_container_runs(self) -> None:
        pod = {
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "command": ["sh", "-c"],
                        "args": ["echo 2020-02-09"],
                        "env": [{"name": "A", "value": "1"}, {"name": "S", "valueFrom": {}}],
                    }
                ]
            }
        }
        assert runview.pod_command(pod, "main") == "sh\n-c\necho 2020-02-09\n# env A=1"


class TestForms:
    def test_trigger_checks_conf_and_date(self) -> None:
        assert forms.parse_trigger(' {"a": 1} ', "2020-02-09", now=NOW) == (
            datetime(2020, 2, 9, tzinfo=UTC),
            {"a": 1},
        )
        assert forms.parse_trigger("", "", now=NOW) == (NOW, {})
        with pytest.raises(forms.FormError, match="conf is not valid JSON"):
            forms.parse_trigger("{nope", "", now=NOW)
        with pytest.raises(forms.FormError, match="conf must be a JSON object"):
            forms.parse_trigger("[1]", "", now=NOW)
        with pytest.raises(forms.FormError, match="logical date 'tomorrow'"):
            forms.parse_trigger("", "tomorrow", now=NOW)

    def test_clear_uses_the_cli_selection(self) -> None:
        r = run("r1", "d", {"print_date": "failed", "sleep": "upstream_failed", "templated": "success"})
        assert forms.clear_tasks(r, "print_date", downstream=True, upstream=False, only_failed=False) == [
            "print_date",
            "sleep",
            "templated",
        ]
        assert forms.clear_tasks(r, "print_date", downstream=True, upstream=False, only_failed=True) == [
            "print_date",
            "sleep",
        ]
        assert forms.clear_tasks(r, "sleep", downstream=False, upstream=True, only_failed=False) == [
            "print_date",
            "sleep",
        ]
        assert forms.clear_tasks(r, "sleep", downstream=False, upstream=False, only_failed=False) == ["sleep"]
        with pytest.raises(cluster_plans.PlanError, match="no task 'x'"):
            forms.clear_tasks(r, "x", downstream=False, upstream=False, only_failed=False)
        not_started = run("r2", "d")
        del not_started["status"]["dagSpec"]
        with pytest.raises(cluster_plans.PlanError, match="not started"):
            forms.clear_tasks(not_started, "sleep", downstream=False, upstream=False, only_failed=False)

    def test_log_tail_steps_up_to_the_whole_log(self) -> None:
        assert forms.log_tail(None) == forms.LOG_TAILS[0]
        assert forms.log_tail("300") == forms.LOG_TAILS[1]
        assert forms.log_tail("all") is None
        assert forms.log_tail("junk") == forms.LOG_TAILS[0]
        assert forms.more_log(forms.LOG_TAILS[0]) == str(forms.LOG_TAILS[1])
        assert forms.more_log(forms.LOG_TAILS[-1]) == "all"
        assert forms.more_log(None) is None

    def test_a_cut_log_says_so_and_offers_more(self) -> None:
        first = forms.LOG_TAILS[0]
        assert forms.log_cut(b"one\ntwo\n", first) is None  # all of it: nothing more to show
        assert forms.log_cut(b"line\n" * first, first) == f"The last {first} lines: earlier lines are hidden."
        assert (
            forms.log_cut(b"x" * forms.LOG_MAX_BYTES, None)
            == "Cut at 8 MiB: the rest of this log is not shown."
        )
        assert forms.log_cut(b"line\n" * 50_000, None) is None  # the whole log was asked for and fits

        template = template_environment().get_template("_log.html")
        page = dict(namespace="ns", run="r", task="t", number=1, pod="r-t-1", gone=False, error="",
                    waiting=False, streaming=False, tail=first)  # fmt: skip
        short = template.render(**page, text="one\n", cut=None, more=None)
        assert "show more" not in short and "log-cut" not in short
        long = template.render(
            **page, text="line\n" * first, cut=forms.log_cut(b"line\n" * first, first), more="2000"
        )
        assert "earlier lines are hidden" in long
        assert 'hx-get="/runs/ns/r/tasks/t/log?try=1&amp;tail=2000"' in long and "show more" in long

    def test_cli_and_ui_write_the_same_objects(self) -> None:
        manifest = run_manifest.dagrun_manifest(
            namespace="ns",
            dag={"metadata": {"name": "tutorial"}},
            logical_date=NOW,
            run_type=RunType.manual,
            conf={"a": 1},
        )
        assert manifest["spec"] == {
            "dagName": "tutorial",
            "logicalDate": "2020-02-09T12:00:00Z",
            "runType": "manual",
            "conf": {"a": 1},
        }
        body, request_id = cluster_plans.clear_patch(["a"])
        assert body == {"spec": {"clear": {"id": request_id, "tasks": ["a"]}}}
        assert cluster_plans.pause_patch(True) == {"spec": {"paused": True}}

    def test_loopback_hosts(self) -> None:
        assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
        assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


class TestGraph:
    def test_layout_is_cached_by_the_spec_shape(self) -> None:
        cache = graph.LayoutCache()
        first = cache.svg(TASKS)
        assert cache.svg([dict(t) for t in TASKS]) is first
        assert cache.layouts == 1
        cache.svg([*TASKS, {"name": "more", "dependsOn": ["sleep"]}])
        assert cache.layouts == 2
        assert first.startswith("<svg") and "<?xml" not in first

    def test_a_layout_being_computed_is_computed_once(self) -> None:
        """The grid's background layout and a click on a run at the same moment run dot once."""
        cache = graph.LayoutCache()
        many = [{"name": f"t{i}", "dependsOn": [f"t{i - 1}"] if i else []} for i in range(200)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            svgs = list(pool.map(lambda _: cache.svg(many), range(4)))
        assert cache.layouts == 1
        assert all(svg is svgs[0] for svg in svgs)
        cache.prepare(TASKS)  # ahead of the graph page, which then finds it
        assert cache.svg(TASKS) is cache.svg([dict(t) for t in TASKS])
        assert cache.layouts == 2

    def test_colour_puts_a_state_class_on_every_task_node(self) -> None:
        svg = graph.LayoutCache().svg(TASKS)
        coloured = graph.colour(
            svg, {"print_date": "success", "sleep": "running", "templated": 'x" onload="'}
        )
        assert f'<g id="{graph.node_id("print_date")}" class="node task st-success">' in coloured
        assert f'<g id="{graph.node_id("sleep")}" class="node task st-running">' in coloured
        assert f'<g id="{graph.node_id("templated")}" class="node task st-none">' in coloured
        assert "onload" not in coloured

    def test_task_names_are_escaped_by_graphviz(self) -> None:
        svg = graph.LayoutCache().svg([{"name": 'a<script>"'}])
        assert "<script>" not in svg and "&lt;script&gt;" in svg

    def test_edges_follow_depends_on(self) -> None:
        source = graph.dot_source(TASKS)
        assert '"print_date" -> "sleep";' in source and '"print_date" -> "templated";' in source


class TestRenderedCommand:
    def run_of(self, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
        r = run("r1", "2020-02-09T00:00:00Z")
        r["spec"]["conf"] = {"who": "ui"}
        r["status"]["dagSpec"] = {"tasks": tasks, "params": {"who": "default"}, **spec}
        return r

    def test_rendered_as_the_operator_would_with_conf_and_stored_xcoms(self) -> None:
        r = self.run_of(
            [
                {"name": "push", "bash": "echo 1"},
                {
                    "name": "pull",
                    "dependsOn": ["push"],
                    "bash": "echo {{ ds }} {{ params.who }} {{ ti.xcom_pull(task_ids='push') }}",
                    "env": [{"name": "TRY", "value": "{{ ti.try_number }}"}],
                },
            ]
        )
        text = render.rendered_command(r, "pull", {"push": '{"n": 3}'})
        assert text == "echo 2020-02-09 ui {'n': 3}\n# env TRY=1"

    def test_unknown_task_or_unstarted_run_has_no_command(self) -> None:
        r = self.run_of([{"name": "a", "bash": "true"}])
        assert render.rendered_command(r, "nope", {}) is None
        del r["status"]["dagSpec"]
        assert render.rendered_command(r, "a", {}) is None

    def test_a_template_error_is_shown_not_raised(self) -> None:
        r = self.run_of([{"name": "a", "bash": "{{ nope.missing }}"}])
        assert (render.rendered_command(r, "a", {}) or "").startswith("# template error:")


class TestTemplatesEscape:
    """What KWOK cannot produce (a real log) is checked on the template itself."""

    def test_a_log_with_markup_is_shown_as_text(self) -> None:
        template = template_environment().get_template("_log.html")
        html = template.render(
            namespace="ns",
            run="r",
            task="t",
            number=1,
            pod="r-t-1",
            text='<script>window.__pwned = 1</script><img src=x onerror="x()">',
            gone=False,
            error="",
            waiting=False,
            streaming=False,
            tail=200,
            cut=None,
            more="2000",
        )
        assert "<script>" not in html and "<img" not in html
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html

    def test_an_api_error_in_the_log_panel_is_text(self) -> None:
        template = template_environment().get_template("_log.html")
        html = template.render(
            namespace="ns", run="r", task="t", number=1, pod="p", text="", gone=False,
            error="<b>boom</b>", waiting=False, streaming=False, tail=None, cut=None, more=None,
        )  # fmt: skip
        assert "<b>boom</b>" not in html and "&lt;b&gt;boom&lt;/b&gt;" in html
