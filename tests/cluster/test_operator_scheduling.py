"""The scheduler on a real cluster: catchup, maxActiveRuns, pause, history limits, backfill.

DAGs here use past windows (startDate/endDate in 2020) so that what is due does
not depend on when the test runs.
"""

from __future__ import annotations

import time
from typing import Any

from operator_harness import (
    Api,
    OperatorProcess,
    dag_manifest,
    kwok,
    wait_for,
)

DAILY_2020 = {"schedule": "@daily", "startDate": "2020-01-01T00:00:00Z", "endDate": "2020-01-05T00:00:00Z"}
EXPECTED_DATES = [f"2020-01-0{day}T00:00:00Z" for day in range(1, 6)]


def test_catchup_over_a_past_window_creates_exactly_the_due_runs(api: Api, operator: OperatorProcess) -> None:
    api.apply(dag_manifest("daily", [{"name": "t", "bash": "true"}], catchup=True, **DAILY_2020))

    runs = wait_for(
        lambda: (
            found if len(found := api.runs()) >= 5 and all(_state(r) == "success" for r in found) else None
        ),
        what="five successful runs",
    )
    time.sleep(2)  # a scheduler that creates too many would have done so by now

    runs = api.runs()
    assert sorted(r["spec"]["logicalDate"] for r in runs) == EXPECTED_DATES
    assert sorted(r["metadata"]["name"] for r in runs) == [
        f"daily-scheduled-2020010{d}t000000" for d in range(1, 6)
    ]
    assert all(r["spec"]["runType"] == "scheduled" for r in runs)
    status = api.dag("daily")["status"]
    assert status["lastRunState"] == "success"
    assert "nextRun" not in status  # the endDate has passed: nothing more will be scheduled


def test_without_catchup_only_the_latest_interval_runs(api: Api, operator: OperatorProcess) -> None:
    api.apply(dag_manifest("latest", [{"name": "t", "bash": "true"}], catchup=False, **DAILY_2020))

    wait_for(lambda: api.runs(), what="a run")
    time.sleep(2)

    assert [r["spec"]["logicalDate"] for r in api.runs()] == ["2020-01-05T00:00:00Z"]


def test_max_active_runs_holds(api: Api, operator: OperatorProcess) -> None:
    task = {"name": "t", "bash": "sleep 1", "pod": kwok(delay="1s")}
    api.apply(dag_manifest("one-at-a-time", [task], catchup=True, maxActiveRuns=1, **DAILY_2020))
    most_active = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        runs = api.runs()
        most_active = max(most_active, sum(1 for r in runs if _state(r) == "running"))
        if len(runs) == 5 and all(_state(r) == "success" for r in runs):
            break
        time.sleep(0.1)
    assert most_active == 1
    assert sorted(r["spec"]["logicalDate"] for r in api.runs()) == EXPECTED_DATES
    assert all(_state(r) == "success" for r in api.runs())


def test_manual_runs_wait_for_max_active_runs_too(api: Api, operator: OperatorProcess) -> None:
    task = {"name": "t", "bash": "sleep 2", "pod": kwok(delay="2s")}
    api.apply(dag_manifest("manual-limit", [task], maxActiveRuns=1))
    first = api.create_run("manual-limit", "2024-01-01T00:00:00Z")
    second = api.create_run("manual-limit", "2024-01-02T00:00:00Z")

    wait_for(lambda: _state(api.run(first)) == "running", what="the first run to start")
    held = api.run(second)["status"]
    assert held["state"] == "queued"
    assert any(c["type"] == "Admitted" and c["reason"] == "MaxActiveRuns" for c in held["conditions"])
    assert _state(api.wait_run(second, timeout=60)) == "success"


def test_a_paused_dag_is_not_scheduled_until_unpaused(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess
) -> None:
    api.apply(
        dag_manifest("sleepy", [{"name": "t", "bash": "true"}], catchup=True, paused=True, **DAILY_2020)
    )
    time.sleep(2)
    assert api.runs() == []

    result = cluster.kubectl(
        "patch", "dag", "sleepy", "-n", namespace, "--type=merge", "-p", '{"spec":{"paused":false}}'
    )
    assert result.returncode == 0

    wait_for(lambda: len(api.runs()) == 5, what="the missed runs after unpausing")


def test_history_limits_keep_only_the_newest_finished_runs(api: Api, operator: OperatorProcess) -> None:
    ok = {"name": "t", "bash": "true"}
    api.apply(
        dag_manifest(
            "limited", [ok], catchup=True, successfulRunsHistoryLimit=2, maxActiveRuns=5, **DAILY_2020
        )
    )

    def kept() -> list[str] | None:
        runs = api.runs()
        dates = sorted(r["spec"]["logicalDate"] for r in runs)
        return dates if dates == EXPECTED_DATES[-2:] and all(_state(r) == "success" for r in runs) else None

    wait_for(kept, what="only the two newest runs to remain", timeout=60)
    time.sleep(2)  # and the deleted ones are never scheduled again
    assert sorted(r["spec"]["logicalDate"] for r in api.runs()) == EXPECTED_DATES[-2:]


def _state(run: dict[str, Any]) -> str | None:
    return (run.get("status") or {}).get("state")


def test_depends_on_past_waits_for_the_previous_run(
    cluster: Any, namespace: str, api: Api, operator: OperatorProcess
) -> None:
    task = {
        "name": "t",
        "bash": "true",
        "dependsOnPast": True,
        "pod": kwok(outcome="{{ 'failure' if ds == '2024-01-01' and ti.try_number == 1 else 'success' }}"),
    }
    api.apply(dag_manifest("ordered", [task]))
    first = api.create_run("ordered", "2024-01-01T00:00:00Z")
    assert _state(api.wait_run(first)) == "failed"
    second = api.create_run("ordered", "2024-01-02T00:00:00Z")
    wait_for(
        lambda: (
            "dependsOnPast"
            in ((api.run(second).get("status") or {}).get("tasks", {}).get("t", {}).get("message") or "")
        ),
        what="the second run to wait on the first",
    )
    assert not api.pods(second)

    patch = '{"spec":{"clear":{"id":"again","tasks":["t"]}}}'
    cluster.kubectl("patch", "dagrun", first, "-n", namespace, "--type=merge", "-p", patch)

    assert _state(api.wait_run(first, states=("success",))) == "success"
    assert _state(api.wait_run(second)) == "success"
