"""Two operator replicas with --leader-elect: exactly one reconciles, the other takes over within 15 s.

Both are real `kubeflowlite operator` processes against the hermetic apiserver, with
the Lease in the test's namespace. The leader is killed with SIGKILL (no release, as
when its node dies) while a task of a run is running; the standby must take over
within 15 s and finish the run, and no task Pod may be created twice (each try's Pod
is created once: no create of a Pod name is refused as already existing, and the Pod
that ran before the takeover is the one the run's status records).
"""

from __future__ import annotations

import signal
import time
from typing import Any

from operator_harness import Api, OperatorProcess, dag_manifest, kwok, task_states, wait_for
from ops_harness import samples, value

DAY = "2024-01-01T00:00:00Z"
DAY2 = "2024-01-02T00:00:00Z"


def leading(operator: OperatorProcess) -> bool:
    try:
        return value(operator, "kubeflowlite_leader") == 1
    except OSError:
        return False


def pod_creates(operator: OperatorProcess) -> dict[str, float]:
    found = samples(operator, "kubeflowlite_api_requests_total", verb="create", resource="pods")
    return {dict(labels)["code"]: count for labels, count in found.items()}


def test_one_replica_reconciles_and_the_other_takes_over_within_15_seconds(
    namespace: str, api: Api, start_operator: Any
) -> None:
    first = start_operator("--leader-elect", f"--leader-election-namespace={namespace}")
    wait_for(lambda: leading(first), what="the first replica to lead", timeout=30)
    second = start_operator("--leader-elect", f"--leader-election-namespace={namespace}")
    tasks = [
        {"name": "extract", "bash": "true"},
        {"name": "slow", "bash": "true", "dependsOn": ["extract"], "pod": kwok(delay="8s")},
        {"name": "load", "bash": "true", "dependsOn": ["slow"]},
    ]
    api.apply(dag_manifest("etl", tasks))
    done = api.wait_run(api.create_run("etl", DAY))
    assert done["status"]["state"] == "success"
    # exactly one reconciles: the standby has written nothing (no Pod, no status)
    assert not leading(second)
    assert pod_creates(first) == {"201": 3}
    assert pod_creates(second) == {}
    assert not samples(second, "kubeflowlite_api_requests_total", verb="patch")
    lease = api.cluster.kubectl("get", "lease", "kubeflowlite-operator", "-n", namespace, "-o", "json").stdout
    assert '"holderIdentity"' in lease

    run = api.create_run("etl", DAY2)
    wait_for(lambda: task_states(api.run(run)).get("slow") == "running", what="slow to be running")
    slow_pod = next(p for p in api.pods(run) if p.metadata.labels["kubeflowlite.io/task"] == "slow")
    first.kill()
    killed = time.monotonic()
    wait_for(lambda: leading(second), what="the standby to take over", timeout=20)
    takeover = time.monotonic() - killed
    assert takeover <= 15, f"took over after {takeover:.1f}s"

    finished = api.wait_run(run, timeout=60)
    assert finished["status"]["state"] == "success"
    assert task_states(finished) == {"extract": "success", "slow": "success", "load": "success"}
    pods = api.pods(run)
    assert sorted(p.metadata.labels["kubeflowlite.io/task"] for p in pods) == ["extract", "load", "slow"]
    assert (
        next(p for p in pods if p.metadata.name == slow_pod.metadata.name).metadata.uid
        == slow_pod.metadata.uid
    )
    assert pod_creates(second) == {"201": 1}  # only load: nothing the old leader created was created again
    print(f"\nleader takeover after SIGKILL: {takeover:.1f}s", flush=True)


def test_a_clean_shutdown_hands_the_lease_over_at_once(namespace: str, start_operator: Any) -> None:
    first: OperatorProcess = start_operator("--leader-elect", f"--leader-election-namespace={namespace}")
    wait_for(lambda: leading(first), what="the first replica to lead", timeout=30)
    second: OperatorProcess = start_operator("--leader-elect", f"--leader-election-namespace={namespace}")
    time.sleep(3)
    assert not leading(second)
    first.stop()  # SIGTERM: kopf's cleanup releases the Lease
    stopped = time.monotonic()
    wait_for(lambda: leading(second), what="the standby to take over", timeout=15)
    assert time.monotonic() - stopped < 6  # released: no need to wait for the lease to expire


def test_a_frozen_leader_that_wakes_up_after_a_takeover_exits_without_acting(
    namespace: str, api: Api, start_operator: Any
) -> None:
    """The split-brain case: the leader is paused (SIGSTOP) past its lease, the standby takes
    over, then the old leader resumes. It must stop instead of reconciling with a stale Lease."""
    first: OperatorProcess = start_operator("--leader-elect", f"--leader-election-namespace={namespace}")
    wait_for(lambda: leading(first), what="the first replica to lead", timeout=30)
    second: OperatorProcess = start_operator("--leader-elect", f"--leader-election-namespace={namespace}")
    api.apply(
        dag_manifest(
            "etl", [{"name": "a", "bash": "true"}, {"name": "b", "bash": "true", "dependsOn": ["a"]}]
        )
    )
    assert first.process is not None
    first.process.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: leading(second), what="the standby to take over from the frozen leader", timeout=20)
        run = api.create_run("etl", DAY)  # work only the new leader may do
        first.process.send_signal(signal.SIGCONT)
        assert first.process.wait(timeout=15) == 1  # it noticed it lost the Lease and exited
    finally:
        if first.process.poll() is None:
            first.process.send_signal(signal.SIGCONT)
    assert api.wait_run(run)["status"]["state"] == "success"
    assert pod_creates(second) == {"201": 2}  # a Pod the old leader had created would show as a 409
