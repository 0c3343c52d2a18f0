"""Pod phase is task state: realistic Pod dicts (as kopf delivers them) folded into Attempts."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from kubeflowlite.core.engine import NO_XCOM, AttemptPhase
from kubeflowlite.k8s import names, view
from kubeflowlite.k8s.observe import attempt_from_pod

CREATED = "2024-05-01T10:00:00Z"
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)


def pod(phase: str | None, **status: Any) -> dict[str, Any]:
    """A task Pod as the apiserver returns it, with `status` fields replaced."""
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "tutorial-manual-20240501t100000-print-date-7xq2m3ab-2",
            "namespace": "default",
            "uid": "9c1e",
            "creationTimestamp": CREATED,
            "labels": {
                names.LABEL_DAG: "tutorial",
                names.LABEL_RUN: "tutorial-manual-20240501t100000",
                names.LABEL_TASK: "print_date",
                names.LABEL_TRY: "2",
            },
            "annotations": {names.ANNOTATION_TASK_ID: "print_date"},
        },
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36"}]},
        "status": {"qosClass": "BestEffort"},
    }
    if phase is not None:
        manifest["status"]["phase"] = phase
    manifest["status"].update(status)
    return manifest


def main_status(state: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    return [
        {"name": "main", "image": "busybox:1.36", "ready": False, "restartCount": 0, "state": state} | extra
    ]


def terminated(exit_code: int, message: str | None = None, reason: str = "Completed") -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": "2024-05-01T10:00:05Z",
        "finishedAt": "2024-05-01T10:00:09Z",
        "containerID": "containerd://0123456789abcdef",
        "signal": 0,
    }
    if message is not None:
        state["message"] = message
    return {"terminated": state}


def waiting(reason: str, message: str) -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/3 nodes are available: 3 Insufficient memory.",
    "lastTransitionTime": CREATED,
}
PULL_EVENT = {
    "type": "Warning",
    "reason": "Failed",
    "message": 'Failed to pull image "busybox:nope": not found',
    "lastTimestamp": "2024-05-01T10:00:03Z",
}


@dataclass
class Case:
    pod: dict[str, Any]
    phase: AttemptPhase
    message: str | None = None
    """A substring the message must contain; None: the message must be None."""
    exit_code: int | None = None
    xcom: Any = NO_XCOM
    now: datetime = NOW
    events: list[dict[str, Any]] = field(default_factory=list)


def deleted(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest = copy.deepcopy(manifest)
    manifest["metadata"]["deletionTimestamp"] = "2024-05-01T10:00:40Z"
    manifest["metadata"]["deletionGracePeriodSeconds"] = 30
    return manifest


CASES = {
    "just-created-no-status": Case(pod(None), AttemptPhase.pending),
    "pending-container-creating": Case(
        pod(
            "Pending",
            containerStatuses=main_status(waiting("ContainerCreating", "")),
            conditions=[{"type": "PodScheduled", "status": "True"}],
        ),
        AttemptPhase.pending,
    ),
    "pending-image-pull-shows-why": Case(
        pod(
            "Pending",
            containerStatuses=main_status(waiting("ImagePullBackOff", 'Back-off pulling image "x"')),
        ),
        AttemptPhase.pending,
        message='container main: ImagePullBackOff: Back-off pulling image "x"',
    ),
    "pending-past-timeout-image-pull": Case(
        pod("Pending", containerStatuses=main_status(waiting("ErrImagePull", "rpc error: not found"))),
        AttemptPhase.failed,
        message="pod still pending after 10m: container main: ErrImagePull: rpc error: not found",
        now=T0 + timedelta(minutes=11),
    ),
    "pending-past-timeout-unschedulable": Case(
        pod("Pending", conditions=[UNSCHEDULABLE]),
        AttemptPhase.failed,
        message="Unschedulable: 0/3 nodes are available: 3 Insufficient memory.",
        now=T0 + timedelta(minutes=10, seconds=1),
    ),
    "pending-past-timeout-names-events": Case(
        pod("Pending"),
        AttemptPhase.failed,
        message='Failed: Failed to pull image "busybox:nope": not found',
        now=T0 + timedelta(hours=1),
        events=[PULL_EVENT, {"type": "Normal", "reason": "Scheduled", "message": "assigned"}],
    ),
    "pending-past-timeout-no-reason": Case(
        pod("Pending"),
        AttemptPhase.failed,
        message="pod still pending after 10m",
        now=T0 + timedelta(hours=1),
    ),
    "running": Case(
        pod("Running", containerStatuses=main_status({"running": {"startedAt": "2024-05-01T10:00:05Z"}})),
        AttemptPhase.running,
    ),
    "running-deleted": Case(
        deleted(
            pod("Running", containerStatuses=main_status({"running": {"startedAt": "2024-05-01T10:00:05Z"}}))
        ),
        AttemptPhase.failed,
        message="pod deleted while running",
    ),
    "pending-deleted": Case(
        deleted(pod("Pending")), AttemptPhase.failed, message="pod deleted before it started"
    ),
    "succeeded-with-xcom": Case(
        pod("Succeeded", containerStatuses=main_status(terminated(0, '{"rows": 42, "ok": true}'))),
        AttemptPhase.succeeded,
        exit_code=0,
        xcom={"rows": 42, "ok": True},
    ),
    "succeeded-with-null-xcom": Case(
        pod("Succeeded", containerStatuses=main_status(terminated(0, "null"))),
        AttemptPhase.succeeded,
        exit_code=0,
        xcom=None,
    ),
    "succeeded-without-xcom": Case(
        pod("Succeeded", containerStatuses=main_status(terminated(0))), AttemptPhase.succeeded, exit_code=0
    ),
    "succeeded-but-deleted-is-still-success": Case(
        deleted(pod("Succeeded", containerStatuses=main_status(terminated(0, "1")))),
        AttemptPhase.succeeded,
        exit_code=0,
        xcom=1,
    ),
    "succeeded-invalid-xcom": Case(
        pod("Succeeded", containerStatuses=main_status(terminated(0, "{not json"))),
        AttemptPhase.failed,
        message="return value is not valid JSON",
        exit_code=0,
    ),
    "succeeded-truncated-xcom": Case(
        pod("Succeeded", containerStatuses=main_status(terminated(0, '["' + "x" * 4094))),
        AttemptPhase.failed,
        message="the value is too large",
        exit_code=0,
    ),
    "succeeded-oversize-xcom": Case(
        pod("Succeeded", containerStatuses=main_status(terminated(0, '"' + "x" * 5000 + '"'))),
        AttemptPhase.failed,
        message="over the 4096-byte limit",
        exit_code=0,
    ),
    "failed-exit-code": Case(
        pod("Failed", containerStatuses=main_status(terminated(3, reason="Error"))),
        AttemptPhase.failed,
        message="exit code 3",
        exit_code=3,
    ),
    "failed-container-while-phase-still-pending": Case(
        # The kubelet reports the exit a second or two before the Pod's phase: a failure
        # must be seen as early as a success is.
        pod("Pending", containerStatuses=main_status(terminated(2, reason="Error"))),
        AttemptPhase.failed,
        message="exit code 2",
        exit_code=2,
    ),
    "failed-oom": Case(
        pod("Failed", containerStatuses=main_status(terminated(137, reason="OOMKilled"))),
        AttemptPhase.failed,
        message="exit code 137 (OOMKilled)",
        exit_code=137,
    ),
    "failed-execution-timeout": Case(
        pod(
            "Failed",
            reason="DeadlineExceeded",
            message="Pod was active on the node longer than the specified deadline",
            containerStatuses=main_status(terminated(137, reason="Error")),
        ),
        AttemptPhase.failed,
        message="execution timeout: exit code 137: Pod was active on the node longer than the specified deadline",
        exit_code=137,
    ),
    "failed-evicted-without-container-status": Case(
        pod("Failed", reason="Evicted", message="The node was low on resource: memory."),
        AttemptPhase.failed,
        message="Evicted: The node was low on resource: memory.",
    ),
    "failed-with-termination-message": Case(
        pod("Failed", containerStatuses=main_status(terminated(1, "boom: bad input", reason="Error"))),
        AttemptPhase.failed,
        message="exit code 1: boom: bad input",
        exit_code=1,
    ),
    "node-lost": Case(
        pod("Running", reason="NodeLost", message="Node kwok-node-0 which was running pod is unresponsive"),
        AttemptPhase.failed,
        message="node lost: Node kwok-node-0 which was running pod is unresponsive",
    ),
    "disruption-target": Case(
        pod(
            "Running",
            conditions=[
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "DeletionByTaintManager",
                    "message": "Taint manager: deleting due to NoExecute taint",
                }
            ],
        ),
        AttemptPhase.failed,
        message="pod disrupted (DeletionByTaintManager): Taint manager",
    ),
    "main-finished-while-sidecar-runs": Case(
        pod(
            "Running",
            containerStatuses=[
                *main_status(terminated(0, '"done"')),
                {"name": "proxy", "state": {"running": {"startedAt": "2024-05-01T10:00:05Z"}}},
            ],
        ),
        AttemptPhase.succeeded,
        exit_code=0,
        xcom="done",
    ),
    "unknown-phase-keeps-running": Case(
        pod("Unknown"), AttemptPhase.running, message="node is not reporting"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_attempt_from_pod(case: Case) -> None:
    attempt = attempt_from_pod(case.pod, now=case.now, events=case.events)
    assert attempt.task == "print_date"
    assert attempt.try_number == 2
    assert attempt.phase is case.phase
    if case.message is None:
        assert attempt.message is None
    else:
        assert attempt.message is not None and case.message in attempt.message, attempt.message
    assert attempt.exit_code == case.exit_code
    assert attempt.xcom == case.xcom if case.xcom is not NO_XCOM else attempt.xcom is NO_XCOM
    if case.phase in (AttemptPhase.succeeded, AttemptPhase.failed):
        assert attempt.end_time is not None


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_slim_copy_the_operator_keeps_gives_the_same_attempt(case: Case) -> None:
    """view.slim_pod keeps a fraction of a Pod; what observation makes of it must not change."""
    slim = view.slim_pod(case.pod)
    assert attempt_from_pod(slim, now=case.now, events=case.events) == attempt_from_pod(
        case.pod, now=case.now, events=case.events
    )
    assert "spec" not in slim and "qosClass" not in slim["status"]
    for container in slim["status"].get("containerStatuses") or []:
        assert set(container) == {"name", "state"}
        assert all("containerID" not in detail for detail in container["state"].values())


def test_the_slim_copy_keeps_an_annotation_only_where_it_says_more_than_its_label() -> None:
    plain = view.slim_pod(pod("Running"))
    assert "annotations" not in plain["metadata"], "the task id is the label's value: no dict per Pod"
    odd = pod("Running")
    odd["metadata"]["annotations"][names.ANNOTATION_TASK_ID] = "Print Date!"
    odd["metadata"]["labels"][names.LABEL_TASK] = names.label_value("Print Date!")
    slim = view.slim_pod(odd)
    assert slim["metadata"]["annotations"] == {names.ANNOTATION_TASK_ID: "Print Date!"}
    for whole, kept in ((pod("Running"), plain), (odd, slim)):
        assert attempt_from_pod(kept, now=NOW) == attempt_from_pod(whole, now=NOW)


def test_pods_in_the_same_container_state_share_one_slim_copy_of_it() -> None:
    def running(name: str, since: str) -> dict[str, Any]:
        state = {"running": {"startedAt": since}}
        return {
            "metadata": {"name": name},
            "status": {"phase": "Running", "containerStatuses": main_status(state)},
        }

    one, two = (
        view.slim_pod(running("a", "2024-05-01T10:00:05Z")),
        view.slim_pod(running("b", "2024-05-01T10:00:05Z")),
    )
    later = view.slim_pod(running("c", "2024-05-01T10:00:06Z"))
    assert one["status"]["containerStatuses"] is two["status"]["containerStatuses"]
    assert later["status"]["containerStatuses"] == [
        {"name": "main", "state": {"running": {"startedAt": "2024-05-01T10:00:06Z"}}}
    ]
    assert later["status"]["containerStatuses"] is not one["status"]["containerStatuses"]


def test_the_snapshot_of_a_custom_object_leaves_out_managed_fields() -> None:
    """view.snapshot (kopf's indices of DAGs and runs): managedFields were as big as the object."""
    metadata = {"name": "r", "uid": "u", "resourceVersion": "7", "labels": {"a": "b"}}
    body = {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {
            **metadata,
            "managedFields": [{"manager": "kubeflowlite", "fieldsV1": {"f:status": {}}}],
        },
        "spec": {"dagName": "d"},
        "status": {"state": "running"},
    }
    copy = view.snapshot(body)
    assert copy == {**body, "metadata": metadata}
    assert copy["status"] is not body["status"] and copy["metadata"]["labels"] is metadata["labels"]
    applied = {"kubectl.kubernetes.io/last-applied-configuration": '{"spec": "the whole object"}', "a": "b"}
    body["metadata"]["annotations"] = applied
    assert view.snapshot(body)["metadata"]["annotations"] == {"a": "b"}
    assert applied["a"] == "b" and len(applied) == 2, "the watched body is left as it was"


def test_equal_spec_snapshots_are_held_once() -> None:
    """view.Shared: ten runs of one DAG hold one copy of its spec snapshot, a changed DAG its own."""
    shared = view.Shared()

    def spec(bash: str) -> dict[str, Any]:
        return {"tasks": [{"name": f"t{i}", "bash": bash} for i in range(3)], "maxActiveTasks": 5}

    first = spec("true")
    assert shared.one(first) is first
    assert all(shared.one(spec("true")) is first for _ in range(10))
    changed = spec("false")
    assert shared.one(changed) is changed and shared.one(spec("false")) is changed
    assert shared.one({"tasks": []}) == {"tasks": []}


def test_the_operators_copies_of_runs_share_their_spec_snapshot() -> None:
    from kubeflowlite.k8s import kube, operator

    held = operator.Operator(operator.OperatorOptions(cluster=kube.ClusterConfig(server="https://x")))

    def run(name: str) -> dict[str, Any]:
        spec = {"tasks": [{"name": "a", "bash": "true"}, {"name": "b", "bash": "true"}]}
        return {"metadata": {"name": name, "uid": name, "resourceVersion": "1"}, "status": {"dagSpec": spec}}

    one, two = held.snapshot(run("one")), held.snapshot(run("two"))
    assert one["status"]["dagSpec"] is two["status"]["dagSpec"]


def test_the_operators_copy_of_a_run_shares_the_task_statuses_it_wrote() -> None:
    from kubeflowlite.k8s import kube, operator

    wrote = {"tasks": {"a": {"state": "running", "tryNumber": 1}, "b": {"state": "queued", "tryNumber": 1}}}

    class Runs:
        def written(self, namespace: str, name: str) -> dict[str, Any]:
            return wrote if (namespace, name) == ("ns", "r") else {}

        def run_spec(self, namespace: str, name: str) -> None:
            return None

    held = operator.Operator(operator.OperatorOptions(cluster=kube.ClusterConfig(server="https://x")))
    held.runs = cast(Any, Runs())
    echoed = copy.deepcopy(wrote["tasks"]) | {"b": {"state": "running", "tryNumber": 1}}
    body = {"metadata": {"namespace": "ns", "name": "r", "uid": "u", "resourceVersion": "2"}}
    tasks = held.snapshot({**body, "status": {"tasks": echoed}})["status"]["tasks"]
    assert tasks == echoed
    assert tasks["a"] is wrote["tasks"]["a"] and tasks["b"] is echoed["b"]


def test_the_operators_copy_of_a_run_holds_the_parsed_snapshot_the_controller_holds() -> None:
    """Not the snapshot's JSON as well: a 10,000-task DAG's is megabytes, and never changes once written."""
    from kubeflowlite.api.dag import DAGSpec
    from kubeflowlite.k8s import kube, operator

    wire = {"tasks": [{"name": "a", "bash": "true"}]}
    parsed = DAGSpec.model_validate(wire)

    class Runs:
        def written(self, namespace: str, name: str) -> dict[str, Any]:
            return {}

        def run_spec(self, namespace: str, name: str) -> DAGSpec | None:
            return parsed if name == "held" else None

    held = operator.Operator(operator.OperatorOptions(cluster=kube.ClusterConfig(server="https://x")))
    held.runs = cast(Any, Runs())

    def run(name: str) -> dict[str, Any]:
        metadata = {"namespace": "ns", "name": name, "uid": name, "resourceVersion": "1"}
        return {"metadata": metadata, "status": {"state": "running", "dagSpec": copy.deepcopy(wire)}}

    assert held.snapshot(run("held"))["status"]["dagSpec"] is parsed
    assert held.snapshot(run("other"))["status"]["dagSpec"] == wire, "not held: the JSON, to be read back"


def test_times_come_from_the_main_container() -> None:
    attempt = attempt_from_pod(
        pod("Succeeded", startTime="2024-05-01T10:00:01Z", containerStatuses=main_status(terminated(0))),
        now=NOW,
    )
    assert attempt.start_time == datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC)
    assert attempt.end_time == datetime(2024, 5, 1, 10, 0, 9, tzinfo=UTC)


def test_failures_without_a_finish_time_are_dated_deterministically() -> None:
    stuck = attempt_from_pod(pod("Pending"), now=T0 + timedelta(hours=3))
    assert stuck.end_time == T0 + timedelta(minutes=10)
    gone = attempt_from_pod(deleted(pod("Running")), now=T0 + timedelta(hours=3))
    assert gone.end_time == datetime(2024, 5, 1, 10, 0, 10, tzinfo=UTC)


def test_pending_timeout_is_configurable() -> None:
    waiting_pod = pod("Pending")
    assert (
        attempt_from_pod(waiting_pod, now=NOW, pending_timeout=timedelta(seconds=30)).phase
        is AttemptPhase.failed
    )
    assert (
        attempt_from_pod(waiting_pod, now=NOW, pending_timeout=timedelta(minutes=5)).phase
        is AttemptPhase.pending
    )


def test_only_recent_warning_events_are_named() -> None:
    events = [
        {"type": "Warning", "reason": f"R{i}", "message": f"m{i}", "lastTimestamp": f"2024-05-01T10:00:0{i}Z"}
        for i in range(6)
    ]
    attempt = attempt_from_pod(pod("Pending"), now=NOW, events=list(reversed(events)))
    assert attempt.message == "R3: m3; R4: m4; R5: m5"


def test_messages_are_bounded() -> None:
    attempt = attempt_from_pod(
        pod("Failed", containerStatuses=main_status(terminated(1, "x" * 10_000, reason="Error"))), now=NOW
    )
    assert attempt.message is not None and len(attempt.message) <= 1024
