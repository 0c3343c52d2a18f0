"""The run controller's stateful parts, without an apiserver: launch grace, refused creates, memory.

Boundary: the real RunController and its real Kube client, whose one HTTP method
(`request`) is answered by an in-memory object store (FakeApi: create, get, merge
patch, delete, by path, as the apiserver's REST paths are laid out); a FakeView
plays the watch caches, so a test decides when a created Pod becomes visible; the
clocks are injected. The same behaviour is proved against a real apiserver in
tests/cluster; these tests pin down the timing rules exactly and run in milliseconds.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from kubeflowlite.k8s import kube, names, patches, run_controller, workqueue, xcom_store
from kubeflowlite.k8s.run_controller import (
    LAUNCH_GRACE,
    STATUS_WRITES_WHILE_LAUNCHING,
    RunController,
)
from kubeflowlite.k8s.view import Obj

NS = "ns"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RUN = "etl-manual-20240501t000000"


@dataclass
class FakeApi(kube.Kube):
    """Kube whose requests are served from memory: objects by path, merge patches, AlreadyExists, 404."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[tuple[str, str]] = field(default_factory=list)
    patched: list[Any] = field(default_factory=list)
    """The body of every PATCH, in order."""
    refuse_pods: str | None = None
    """A message to refuse every Pod create with (422), as an admission webhook or quota would."""
    version: int = 0

    async def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        metadata_only: bool = False,
    ) -> Any:
        answer = await self._answer(method, path, verb=verb, resource=resource, body=body)
        # As the API server does with Accept: ...;as=PartialObjectMetadata (kube.METADATA_ONLY).
        return {"metadata": answer["metadata"]} if metadata_only and answer else answer

    async def _answer(self, method: str, path: str, *, verb: str, resource: str, body: Any) -> Any:
        self.sent.append((verb, resource))
        self.version += 1
        if method == "POST":
            if resource == "pods" and self.refuse_pods:
                raise kube.ApiError(422, "Invalid", self.refuse_pods, verb=verb, path=path)
            metadata = body["metadata"]
            target = f"{path}/{metadata.get('name') or metadata.get('generateName', '') + str(self.version)}"
            if target in self.objects:
                raise kube.ApiError(409, "AlreadyExists", f"{target} already exists", verb=verb, path=path)
            stored = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
            self.objects[target] = stored
            return stored
        target = path.removesuffix("/status")
        if method == "GET":
            if verb == "list":  # the objects stored under the collection's path
                prefix = target.rstrip("/") + "/"
                items = [
                    o for k, o in self.objects.items() if k.startswith(prefix) and "/" not in k[len(prefix) :]
                ]
                return {"items": items, "metadata": {}}
            if target not in self.objects:
                raise kube.ApiError(404, "NotFound", f"{target} not found", verb=verb, path=path)
            return self.objects[target]
        if method == "PATCH":
            self.patched.append(copy.deepcopy(body))
            merged = patches.apply_merge_patch(self.objects.get(target, {}), body)
            merged.setdefault("metadata", {})["resourceVersion"] = str(self.version)
            self.objects[target] = merged
            return merged
        if method == "DELETE":
            self.objects.pop(target, None)
            return {}
        raise AssertionError(f"unexpected {method} {path}")

    def count(self, verb: str, resource: str) -> int:
        return self.sent.count((verb, resource))


@dataclass
class FakeView:
    """The watch caches: what the controller has 'seen' of DAGs, runs and Pods."""

    dag_objects: dict[str, Obj] = field(default_factory=dict)
    runs: dict[str, Obj] = field(default_factory=dict)
    pods: dict[str, list[Obj]] = field(default_factory=dict)

    def dag(self, namespace: str, name: str) -> Obj | None:
        return self.dag_objects.get(name)

    def dags(self) -> list[Obj]:
        return list(self.dag_objects.values())

    def run(self, namespace: str, name: str) -> Obj | None:
        return self.runs.get(name)

    def runs_of_dag(self, namespace: str, dag: str) -> list[Obj]:
        return [run for run in self.runs.values() if run["spec"]["dagName"] == dag]

    def pods_of_run(self, namespace: str, run_name: str) -> list[Obj]:
        return self.pods.get(run_name, [])


@dataclass
class Harness:
    api: FakeApi
    view: FakeView
    controller: RunController
    monotonic: list[float]
    enqueued: list[Hashable]

    def reconcile(self) -> float | None:
        return asyncio.run(self.controller.reconcile(NS, RUN))

    def status(self) -> dict[str, Any]:
        return dict(self.api.objects.get(kube.DAGRUNS.path(NS, RUN), {}).get("status") or {})


def harness(tasks: list[dict[str, Any]]) -> Harness:
    dag = {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": "etl", "namespace": NS, "uid": "dag-uid", "generation": 1},
        "spec": {"tasks": tasks},
    }
    run = {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": RUN, "namespace": NS, "uid": "run-uid", "resourceVersion": "1"},
        "spec": {"dagName": "etl", "logicalDate": "2024-05-01T00:00:00Z", "runType": "manual"},
    }
    api = FakeApi(kube.ClusterConfig(server="http://fake"))
    api.objects[kube.DAGRUNS.path(NS, RUN)] = copy.deepcopy(run)  # the server's copy, not the view's
    view = FakeView(dag_objects={"etl": dag}, runs={RUN: run})
    monotonic = [1000.0]
    enqueued: list[Hashable] = []
    controller = RunController(
        client=api,
        view=view,
        xcoms=xcom_store.RunStore(api),
        enqueue=enqueued.append,
        clock=lambda: NOW,
        monotonic=lambda: monotonic[0],
    )
    return Harness(api, view, controller, monotonic, enqueued)


def test_a_pod_is_created_once_while_the_watch_catches_up_then_again_after_the_grace() -> None:
    h = harness([{"name": "t", "bash": "true"}])
    h.reconcile()
    assert h.api.count("create", "pods") == 1
    assert h.status()["tasks"]["t"]["state"] == "queued"
    # The watch has not delivered the Pod yet: within the grace period it is not created again.
    h.monotonic[0] += LAUNCH_GRACE - 1
    h.reconcile()
    assert h.api.count("create", "pods") == 1
    # Past the grace the create is repeated (deterministic name: AlreadyExists, not a duplicate).
    h.monotonic[0] += 2
    h.reconcile()
    assert h.api.count("create", "pods") == 2
    assert len([path for path in h.api.objects if "/pods/" in path]) == 1
    assert h.status()["tasks"]["t"]["state"] == "queued"


def test_a_refused_pod_is_a_failed_try_with_the_servers_reason() -> None:
    h = harness([{"name": "t", "bash": "true", "retries": 0}])
    h.api.refuse_pods = 'pods "x" is forbidden: exceeded nothing, denied by policy'
    h.reconcile()
    assert h.enqueued  # the failure is reported on the next pass, which is asked for at once
    h.reconcile()
    task = h.status()["tasks"]["t"]
    assert task["state"] == "failed"
    assert "could not be created" in task["message"] and "denied by policy" in task["message"]
    assert h.status()["state"] == "failed"


def test_memory_of_a_deleted_run_is_released() -> None:
    h = harness([{"name": "t", "bash": "true"}])
    h.reconcile()
    assert (NS, RUN) in h.controller._memory
    del h.view.runs[RUN]
    assert h.reconcile() is None
    assert (NS, RUN) not in h.controller._memory


def test_the_pod_the_controller_creates_is_named_for_its_try() -> None:
    h = harness([{"name": "t", "bash": "true"}])
    h.reconcile()
    assert kube.PODS.path(NS, names.pod_name(RUN, "t", 1)) in h.api.objects


def test_a_refused_try_is_retried_and_the_refusal_forgotten_once_the_engine_moves_on() -> None:
    h = harness([{"name": "t", "bash": "true", "retries": 1, "retryDelay": "0s"}])
    h.api.refuse_pods = "denied by policy"
    h.reconcile()
    assert "t" in h.controller._memory[(NS, RUN)].launch_failures
    h.api.refuse_pods = None
    h.reconcile()  # the refusal fails try 1; try 2 is started at once (no delay) and its Pod created
    task = h.status()["tasks"]["t"]
    assert task["tryNumber"] == 2 and task["state"] == "queued"
    assert kube.PODS.path(NS, names.pod_name(RUN, "t", 2)) in h.api.objects
    h.reconcile()
    assert h.controller._memory[(NS, RUN)].launch_failures == {}


def test_memory_is_rebuilt_from_the_watched_status_after_a_restart() -> None:
    h = harness([{"name": "t", "bash": "true"}])
    h.reconcile()
    written = h.status()
    # A new controller (a restarted operator) that sees the run as the server holds it.
    h.view.runs[RUN] = {**h.view.runs[RUN], "status": written}
    fresh = RunController(
        client=h.api,
        view=h.view,
        xcoms=xcom_store.RunStore(h.api),
        enqueue=h.enqueued.append,
        clock=lambda: NOW,
        monotonic=lambda: h.monotonic[0],
    )
    patches_before = h.api.count("patch", "dagruns/status")
    asyncio.run(fresh.reconcile(NS, RUN))
    memory = fresh._memory[(NS, RUN)]
    assert memory.status.tasks["t"].state.value == "queued" and memory.spec is not None
    assert h.api.count("patch", "dagruns/status") == patches_before  # nothing changed: nothing written
    # The snapshot read back is the DAG's own parsed spec (one object, not one per run), and stored.
    assert memory.spec is fresh.dag_spec(h.view.dag(NS, "etl"))[0] is memory.spec_stored
    assert "dagSpec" not in memory.wire
    # It has no launch record, so it makes sure the Pod exists (AlreadyExists: no duplicate).
    assert len([path for path in h.api.objects if "/pods/" in path]) == 1


def test_the_spec_snapshot_is_written_once_and_not_kept_in_its_stored_form() -> None:
    h = harness([{"name": "a", "bash": "true"}, {"name": "b", "bash": "true", "dependsOn": ["a"]}])
    h.reconcile()
    memory = h.controller._memory[(NS, RUN)]
    first = h.api.patched[-1]["status"]
    assert first["dagSpec"]["tasks"][1] == {"name": "b", "bash": "true", "dependsOn": ["a"]}
    assert "dagSpec" not in memory.wire and memory.spec_stored is memory.spec
    _succeed_created_pods(h)
    h.reconcile()  # a succeeds, b starts
    _succeed_created_pods(h)
    h.reconcile()  # b succeeds: the run too
    later = h.api.patched[1:]
    assert len(later) == 2 and all("dagSpec" not in patch["status"] for patch in later)
    assert h.status()["state"] == "success"
    assert h.status()["dagSpec"] == first["dagSpec"], "the server keeps the snapshot written first"


def test_one_parsed_spec_per_dag_generation_shared_by_its_runs_and_replaced_by_the_next() -> None:
    h = harness([{"name": "a", "bash": "true"}])
    dag = h.view.dag_objects["etl"]
    parsed = h.controller.dag_spec(dag)[0]
    assert parsed is not None and h.controller.dag_spec(dag)[0] is parsed
    h.reconcile()
    memory = h.controller._memory[(NS, RUN)]
    assert memory.spec is parsed, "the run shares the DAG's parsed spec"
    edited = {
        **dag,
        "metadata": {**dag["metadata"], "generation": 2},
        "spec": {"tasks": [{"name": "a", "bash": "false"}]},
    }
    h.view.dag_objects["etl"] = edited
    newer = h.controller.dag_spec(edited)[0]
    assert newer is not None and newer is not parsed and newer.tasks[0].bash == "false"
    assert list(h.controller._dag_specs) == ["dag-uid"], "the old generation's parse is let go"
    h.reconcile()
    assert memory.spec is parsed, "a run in flight keeps its snapshot"


def test_a_finished_run_is_let_go_once_the_watch_has_caught_up() -> None:
    h = harness([{"name": "t", "bash": "true"}])
    h.reconcile()
    pod = dict(h.api.objects[kube.PODS.path(NS, names.pod_name(RUN, "t", 1))])
    pod["status"] = {
        "phase": "Succeeded",
        "containerStatuses": [
            {
                "name": "main",
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "startedAt": "2024-05-01T12:00:00Z",
                        "finishedAt": "2024-05-01T12:00:01Z",
                    }
                },
            }
        ],
    }
    h.view.pods[RUN] = [pod]
    h.reconcile()
    assert h.status()["state"] == "success"
    memory = h.controller._memory[(NS, RUN)]
    # The watch still shows an older version of the run: the memory is what is current.
    h.reconcile()
    assert (NS, RUN) in h.controller._memory
    h.view.runs[RUN] = {
        **h.view.runs[RUN],
        "status": h.status(),
        "metadata": {**h.view.runs[RUN]["metadata"], "resourceVersion": memory.resource_version},
    }
    assert h.reconcile() is None
    assert (NS, RUN) not in h.controller._memory


def test_a_held_run_says_why_once_and_wakes_its_dag() -> None:
    h = harness([{"name": "t", "bash": "true"}])
    h.view.dag_objects["etl"]["spec"]["paused"] = True
    h.reconcile()
    status = h.status()
    assert status["state"] == "queued"
    (condition,) = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("Admitted", "False", "DAGPaused")
    assert ("dag", NS, "etl") in h.enqueued
    writes = h.api.count("patch", "dagruns/status")
    h.reconcile()
    assert h.api.count("patch", "dagruns/status") == writes  # the same reason: not written again
    assert h.api.count("create", "pods") == 0


def test_a_sensor_is_poked_in_the_pass_that_starts_it_and_asks_to_be_woken() -> None:
    h = harness([{"name": "wait", "sensor": {"dag": "other", "pokeInterval": "45s", "timeout": "1h"}}])
    delay = h.reconcile()
    task = h.status()["tasks"]["wait"]
    assert task["state"] == "running" and task["message"].startswith("waiting for other at")
    assert "podName" not in task and h.api.count("create", "pods") == 0
    assert delay == 45.0


def test_a_template_error_fails_the_try_in_the_same_pass_and_its_downstream_follows() -> None:
    h = harness(
        [
            {"name": "broken", "bash": "{{ nope.nothing }}", "retries": 0},
            {"name": "cleanup", "bash": "true", "dependsOn": ["broken"], "triggerRule": "all_failed"},
        ]
    )
    h.reconcile()
    tasks = h.status()["tasks"]
    assert tasks["broken"]["state"] == "failed" and "template error" in tasks["broken"]["message"]
    assert tasks["cleanup"]["state"] == "queued"  # decided again in the same pass: no second reconcile
    assert h.api.count("create", "pods") == 1  # cleanup's Pod only


BUDGET = 10
"""MAX_CREATES in these tests (and a floor of 4), so that passes of a few Pods show the rules."""


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_controller, "MAX_CREATES", BUDGET)
    monkeypatch.setattr(run_controller, "MIN_PASS_CREATES", 4)


def test_a_wide_fan_out_is_launched_in_passes_as_wide_as_the_budget(small_budget: None) -> None:
    h = harness([{"name": f"t{i:04d}", "bash": "true"} for i in range(BUDGET + 3)])
    h.view.dag_objects["etl"]["spec"]["maxActiveTasks"] = 100000
    assert h.reconcile() == workqueue.CONTINUE, "the rest is asked for at once, not spaced"
    assert h.api.count("create", "pods") == BUDGET
    assert h.status()["state"] == "running", "the status is written while launching"
    assert h.controller.in_hand == 0, "every manifest is given back once its create is answered"
    h.reconcile()  # the first pass's Pods are not seen yet: created once, the rest now
    assert h.api.count("create", "pods") == BUDGET + 3
    assert len([path for path in h.api.objects if "/pods/" in path]) == BUDGET + 3


def test_a_pass_gets_the_floor_when_other_runs_hold_the_budget(small_budget: None) -> None:
    h = harness([{"name": f"t{i:04d}", "bash": "true"} for i in range(BUDGET)])
    h.view.dag_objects["etl"]["spec"]["maxActiveTasks"] = 100000
    h.controller.in_hand = BUDGET  # other runs' passes hold every manifest the budget allows
    assert h.reconcile() == workqueue.CONTINUE
    assert h.api.count("create", "pods") == 4, "no run waits for another's burst: the floor"
    assert h.controller.in_hand == BUDGET, "this pass gave back all it took"
    h.controller.in_hand = 0
    assert h.reconcile() != workqueue.CONTINUE
    assert h.api.count("create", "pods") == BUDGET


def test_refused_and_failed_creates_give_their_manifests_back(small_budget: None) -> None:
    h = harness([{"name": f"t{i:04d}", "bash": "true", "retries": 0} for i in range(6)])
    h.api.refuse_pods = "denied by policy"
    h.reconcile()
    assert h.controller.in_hand == 0
    assert len(h.controller._memory[(NS, RUN)].launch_failures) == 6

    broken = harness([{"name": f"t{i:04d}", "bash": "true"} for i in range(6)])
    answer = broken.api._answer

    async def unavailable(method: str, path: str, **kwargs: Any) -> Any:
        if method == "POST" and kwargs["body"]["metadata"]["name"] == names.pod_name(RUN, "t0002", 1):
            raise kube.ApiError(503, "ServiceUnavailable", "etcd is down", verb="create", path=path)
        return await answer(method, path, **kwargs)

    broken.api._answer = unavailable  # type: ignore[method-assign]
    with pytest.raises(kube.ApiError, match="etcd is down"):
        broken.reconcile()
    assert broken.controller.in_hand == 0
    created = [path for path in broken.api.objects if "/pods/" in path]
    assert len(created) == 5, "the other creates were still made before the error was raised"


def test_a_pass_that_fails_before_its_creates_gives_its_manifests_back(small_budget: None) -> None:
    h = harness([{"name": f"t{i:04d}", "bash": "true"} for i in range(6)])

    async def store_fails(**_: Any) -> None:
        raise kube.ApiError(500, "InternalError", "no XCom today", verb="patch", path="configmaps")

    h.controller.xcoms.store = store_fails  # type: ignore[method-assign]
    with pytest.raises(kube.ApiError, match="no XCom today"):
        h.reconcile()
    assert h.api.count("create", "pods") == 0
    assert h.controller.in_hand == 0


def _succeed_created_pods(h: Harness) -> None:
    """The watch delivers every Pod created so far, finished with exit code 0."""
    finished = {"exitCode": 0, "startedAt": "2024-05-01T12:00:00Z", "finishedAt": "2024-05-01T12:00:01Z"}
    h.view.pods[RUN] = [
        {
            **pod,
            "status": {
                "phase": "Succeeded",
                "containerStatuses": [{"name": "main", "state": {"terminated": finished}}],
            },
        }
        for path, pod in h.api.objects.items()
        if "/pods/" in path
    ]


def test_while_a_wide_run_launches_its_status_is_written_at_most_every_few_seconds(
    small_budget: None,
) -> None:
    h = harness([{"name": f"t{i:04d}", "bash": "true"} for i in range(3 * BUDGET + 2)])
    h.view.dag_objects["etl"]["spec"]["maxActiveTasks"] = 100000

    def succeeded() -> int:
        return sum(task["state"] == "success" for task in h.status()["tasks"].values())

    assert h.reconcile() == workqueue.CONTINUE
    assert h.api.count("patch", "dagruns/status") == 1, "the first pass writes"
    _succeed_created_pods(h)
    h.monotonic[0] += STATUS_WRITES_WHILE_LAUNCHING - 1
    assert h.reconcile() == workqueue.CONTINUE
    assert h.api.count("create", "pods") == 2 * BUDGET
    assert h.api.count("patch", "dagruns/status") == 1, "a continuing pass soon after a write waits"
    assert succeeded() == 0
    memory = h.controller._memory[(NS, RUN)]
    assert (memory.status.tasks_summary or "").startswith(f"{BUDGET}/"), "the next pass continues from it"
    _succeed_created_pods(h)
    h.monotonic[0] += 2  # past the interval: this continuing pass writes what both passes saw
    assert h.reconcile() == workqueue.CONTINUE
    assert h.api.count("patch", "dagruns/status") == 2 and succeeded() == 2 * BUDGET
    _succeed_created_pods(h)
    assert h.reconcile() != workqueue.CONTINUE  # the last launch pass, soon after: written at once
    assert h.api.count("patch", "dagruns/status") == 3 and succeeded() == 3 * BUDGET
    assert h.api.count("create", "pods") == 3 * BUDGET + 2
    stored = h.status()
    assert memory.wire == {k: v for k, v in stored.items() if k != "dagSpec"}, (
        "what the controller remembers as written is what is stored, less the spec snapshot"
    )
    assert "dagSpec" in stored and memory.spec_stored is memory.spec
    _succeed_created_pods(h)
    h.reconcile()
    assert h.status()["state"] == "success" and succeeded() == 3 * BUDGET + 2


def test_a_run_with_an_unreadable_logical_date_is_held_with_the_field_named() -> None:
    h = harness([{"name": "t", "bash": "true"}])
    for copy_ in (h.view.runs[RUN], h.api.objects[kube.DAGRUNS.path(NS, RUN)]):
        copy_["spec"]["logicalDate"] = "next tuesday"
    assert h.reconcile() is None
    (condition,) = h.status()["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Admitted",
        "False",
        "InvalidSpec",
    )
    assert condition["message"] == (
        "spec.logicalDate: not a date or time: 'next tuesday' (expected YYYY-MM-DD or RFC 3339, e.g. 2020-02-09T00:00:00Z)"
    )
    assert condition["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert h.api.count("create", "pods") == 0
