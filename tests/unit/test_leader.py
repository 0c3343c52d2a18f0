"""The leader election rule: who may take the Lease, and what a candidate writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubeflowlite.k8s import leader
from kubeflowlite.k8s.leader import Action

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def lease(holder: str | None, duration: int = 10, transitions: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": "kubeflowlite-operator", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "renewTime": "2024-05-01T11:59:59.000000Z",
            "acquireTime": "2024-05-01T11:00:00.000000Z",
            "leaseTransitions": transitions,
        },
    }


def decide(record: dict[str, Any] | None, unchanged_for: float = 0.0) -> Action:
    return leader.decide(record, identity="me", unchanged_for=unchanged_for, default_lease=10)


def test_no_lease_is_created_and_ours_is_renewed() -> None:
    assert decide(None) is Action.create
    assert decide(lease("me")) is Action.renew
    assert decide(lease("me"), unchanged_for=1000) is Action.renew


def test_a_live_lease_of_another_holder_is_left_alone_until_it_expires_by_our_clock() -> None:
    assert decide(lease("other"), unchanged_for=9.9) is Action.wait
    assert decide(lease("other"), unchanged_for=10) is Action.acquire
    assert decide(lease("other", duration=30), unchanged_for=20) is Action.wait


def test_a_released_lease_is_taken_at_once() -> None:
    assert decide(lease(None)) is Action.acquire
    assert decide(lease("")) is Action.acquire


def test_renewing_keeps_acquire_time_and_taking_over_counts_a_transition() -> None:
    renewed = leader.lease_spec(lease("me", transitions=2), identity="me", lease_seconds=10, now=NOW)
    assert renewed["acquireTime"] == "2024-05-01T11:00:00.000000Z"
    assert renewed["renewTime"] == "2024-05-01T12:00:00.000000Z"
    assert (renewed["holderIdentity"], renewed["leaseTransitions"], renewed["leaseDurationSeconds"]) == (
        "me",
        2,
        10,
    )
    taken = leader.lease_spec(lease("other", transitions=2), identity="me", lease_seconds=10, now=NOW)
    assert (taken["acquireTime"], taken["leaseTransitions"]) == ("2024-05-01T12:00:00.000000Z", 3)
    released = leader.lease_spec(lease("me", transitions=2), identity=None, lease_seconds=10, now=NOW)
    assert (released["holderIdentity"], released["leaseDurationSeconds"]) == (None, 1)


def test_the_timing_lets_a_standby_take_over_within_15_seconds() -> None:
    timing = leader.Timing()
    assert timing.deadline < timing.lease  # the old leader stops before anyone may take over
    assert timing.lease + timing.retry <= 15


def test_identities_differ_per_process_start(monkeypatch: Any) -> None:
    monkeypatch.setenv("POD_NAME", "kfl-abc")
    first, second = leader.default_identity(), leader.default_identity()
    assert first.startswith("kfl-abc_") and second.startswith("kfl-abc_") and first != second


def test_a_leader_that_could_not_renew_within_the_deadline_may_not_act() -> None:
    now = [100.0]
    elector = leader.LeaderElector(
        client=None,  # type: ignore[arg-type]  # the rule needs no API
        settings=leader.Settings(namespace="ns"),
        on_started=lambda: None,
        on_lost=lambda: None,
        clock=lambda: now[0],
    )
    assert not elector.still_leading()
    elector.leading, elector._renewed_at = True, 100.0
    now[0] = 106.9
    assert elector.still_leading()
    now[0] = 107.1  # frozen past the 7 s deadline: a standby may take over at 10 s
    assert not elector.still_leading()
