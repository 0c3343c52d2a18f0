"""Decisions of the cluster commands: what `clear` selects, what `backfill` does, how runs are shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from rich.console import Console

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.cli import cluster_plans as plans
from kubeflowlite.core.schedule import RunInterval

SPEC = DAGSpec.model_validate(
    {
        "tasks": [
            {"name": "extract", "bash": "true"},
            {"name": "transform", "bash": "true", "dependsOn": ["extract"]},
            {"name": "load", "bash": "true", "dependsOn": ["transform"]},
            {"name": "report", "bash": "true", "dependsOn": ["load"]},
            {"name": "audit", "bash": "true", "dependsOn": ["extract"]},
        ]
    }
)
STATES = {
    "extract": "success",
    "transform": "failed",
    "load": "upstream_failed",
    "report": "upstream_failed",
    "audit": "success",
}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"pattern": "^load$"}, ["load"]),
        ({"pattern": "^load$", "downstream": True}, ["load", "report"]),
        ({"pattern": "^load$", "upstream": True}, ["extract", "transform", "load"]),
        ({"pattern": None, "only_failed": True}, ["transform", "load", "report"]),
        ({"pattern": "^extract$", "downstream": True, "only_failed": True}, ["transform", "load", "report"]),
        ({"pattern": "a"}, ["extract", "transform", "load", "audit"]),
    ],
)
def test_clear_selection(options: dict[str, Any], expected: list[str]) -> None:
    settings = {"downstream": False, "upstream": False, "only_failed": False} | options
    assert plans.clear_selection(SPEC, STATES, **settings) == expected


def test_clear_selection_explains_bad_patterns() -> None:
    with pytest.raises(plans.PlanError, match="no task matches"):
        plans.clear_selection(
            SPEC, STATES, pattern="^nothing$", downstream=False, upstream=False, only_failed=False
        )
    with pytest.raises(plans.PlanError, match="regular expression"):
        plans.clear_selection(SPEC, STATES, pattern="(", downstream=False, upstream=False, only_failed=False)


def day(n: int) -> RunInterval:
    start = datetime(2020, 1, n, tzinfo=UTC)
    return RunInterval(start, start, start + timedelta(days=1))


def run(name: str, n: int, tasks: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"logicalDate": f"2020-01-0{n}T00:00:00Z"},
        "status": {"tasks": {t: {"state": s} for t, s in (tasks or {}).items()}},
    }


class TestBackfill:
    intervals: ClassVar = [day(1), day(2), day(3)]
    runs: ClassVar = [run("r2", 2, {"a": "success"}), run("r3", 3, {"a": "failed", "b": "upstream_failed"})]

    def test_missing_intervals_are_created_existing_runs_kept(self) -> None:
        plan = plans.plan_backfill(self.intervals, self.runs, reset=False, rerun_failed=False)
        assert [i.logical_date.day for i in plan.create] == [1]
        assert plan.existing == ["r2", "r3"] and plan.delete == [] and plan.clear == {}

    def test_reset_deletes_and_recreates(self) -> None:
        plan = plans.plan_backfill(self.intervals, self.runs, reset=True, rerun_failed=False)
        assert [i.logical_date.day for i in plan.create] == [1, 2, 3]
        assert plan.delete == ["r2", "r3"]

    def test_rerun_failed_clears_failed_tasks_of_existing_runs(self) -> None:
        plan = plans.plan_backfill(self.intervals, self.runs, reset=False, rerun_failed=True)
        assert plan.clear == {"r3": ["a", "b"]} and plan.existing == ["r2"]


def render(renderable: Any) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_run_tree_shows_each_task_under_its_upstream_with_state_and_try() -> None:
    now = datetime(2020, 1, 2, tzinfo=UTC)
    obj = {
        "metadata": {"name": "etl-1"},
        "spec": {"dagName": "etl", "logicalDate": "2020-01-01T00:00:00Z"},
        "status": {
            "state": "failed",
            "tasksSummary": "5/5",
            "dagSpec": SPEC.to_wire(),
            "tasks": {
                "extract": {
                    "state": "success",
                    "tryNumber": 1,
                    "startTime": "2020-01-01T23:59:00Z",
                    "endTime": "2020-01-01T23:59:30Z",
                },
                "transform": {"state": "failed", "tryNumber": 2, "message": "exit code 1"},
            },
        },
    }
    text = render(plans.run_tree(obj, now=now))
    lines = text.splitlines()
    assert "etl-1" in lines[0] and "failed" in lines[0]
    extract = next(line for line in lines if "extract" in line)
    transform = next(line for line in lines if "transform" in line)
    assert "success" in extract and "try 1" in extract and "30s" in extract
    assert "try 2" in transform and "exit code 1" in transform
    assert transform.index("transform") > extract.index("extract")  # nested under it


def test_tables_list_runs_and_dags() -> None:
    now = datetime(2020, 1, 2, tzinfo=UTC)
    runs = render(plans.runs_table([run("r2", 2), run("r3", 3)], now=now))
    assert runs.index("r3") < runs.index("r2")  # newest first
    dag = {
        "metadata": {"name": "etl"},
        "spec": {"schedule": "@daily", "paused": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "False", "message": "cycle"}],
            "lastRunState": "failed",
        },
    }
    dags = render(plans.dags_table([dag]))
    assert "etl" in dags and "@daily" in dags and "true" in dags and "False: cycle" in dags
