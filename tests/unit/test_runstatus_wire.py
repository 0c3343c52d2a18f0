"""How a run's status is stored (DAGRunStatus.to_wire, both shells): small at 10,000 tasks, cheap to redo."""

from __future__ import annotations

import json

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import DAGRunStatus, RunState, TaskInstanceStatus, TaskMap, TaskState, TryRecord
from kubeflowlite.k8s import patches

ETCD_LIMIT = 1536 * 1024


def spec(count: int) -> DAGSpec:
    return DAGSpec.model_validate(
        {"tasks": [{"name": f"task-number-{i:05d}", "bash": "true"} for i in range(count)]}
    )


def done(name: str) -> TaskInstanceStatus:
    return TaskInstanceStatus(
        state=TaskState.success,
        try_number=1,
        pod_name=f"some-run-{name}-1",
        start_time="2024-01-01T00:00:01Z",
        end_time="2024-01-01T00:00:02Z",
        exit_code=0,
    )


def status(dag: DAGSpec) -> DAGRunStatus:
    return DAGRunStatus(
        state=RunState.success,
        start_time="2024-01-01T00:00:00Z",
        end_time="2024-01-01T01:00:00Z",
        tasks=TaskMap({task.name: done(task.name) for task in dag.tasks}),
        dag_spec=dag,
    )


def test_a_small_run_keeps_every_detail_and_reads_back_the_same() -> None:
    small = status(spec(3)).model_copy(
        update={
            "tasks": TaskMap(
                {
                    "task-number-00000": done("a").model_copy(
                        update={"tries": [TryRecord(try_number=1, state=TaskState.failed, message="boom")]}
                    ),
                    "task-number-00001": done("b"),
                }
            )
        }
    )
    wire = small.to_wire()
    assert DAGRunStatus.model_validate(wire) == small
    assert "tries" not in wire["tasks"]["task-number-00001"], "an empty list is not stored"
    assert wire["tasks"]["task-number-00000"]["tries"][0]["message"] == "boom"
    assert wire["dagSpec"]["tasks"][0] == {"name": "task-number-00000", "bash": "true"}, "defaults left out"


def test_a_run_of_10000_tasks_fits_etcd() -> None:
    big = status(spec(10000))
    wire = big.to_wire()
    size = len(json.dumps(wire, separators=(",", ":")))
    assert size < ETCD_LIMIT * 3 / 4, size  # room for metadata, and longer names
    assert len(json.dumps(big.model_dump(mode="json", by_alias=True, exclude_none=True))) > ETCD_LIMIT, (
        "a plain dump does not"
    )
    back = DAGRunStatus.model_validate(wire)
    assert back.dag_spec == big.dag_spec
    assert {name: (i.state, i.try_number) for name, i in back.tasks.items()} == {
        name: (i.state, i.try_number) for name, i in big.tasks.items()
    }


def test_unfinished_and_failed_tasks_of_a_large_run_keep_their_detail() -> None:
    big = status(spec(1001))
    failed = done("x").model_copy(
        update={"state": TaskState.failed, "exit_code": 3, "message": "exit code 3"}
    )
    big = big.model_copy(update={"tasks": big.tasks.updated({"task-number-00007": failed})})
    wire = big.to_wire()["tasks"]
    assert (
        wire["task-number-00007"]["message"] == "exit code 3" and "podName" not in wire["task-number-00007"]
    )
    assert wire["task-number-00008"] == {"state": "success", "tryNumber": 1}


def test_writing_again_reuses_what_did_not_change() -> None:
    dag = spec(2000)
    first = status(dag)
    first_wire = first.to_wire()
    changed = done("y").model_copy(update={"state": TaskState.failed, "message": "later"})
    second = first.model_copy(
        update={"tasks": first.tasks.updated({"task-number-00003": changed}), "duration": "1h"}
    )
    second_wire = second.to_wire(previous=(first, first_wire))
    assert second_wire == second.to_wire(), "the same result as from scratch"
    assert second_wire["dagSpec"] is first_wire["dagSpec"]
    assert second_wire["tasks"]["task-number-00004"] is first_wire["tasks"]["task-number-00004"]
    patch = patches.merge_patch(first_wire, second_wire)
    assert set(patch) == {"duration", "tasks"} and list(patch["tasks"]) == ["task-number-00003"]


def test_a_snapshot_the_server_holds_is_left_out() -> None:
    dag = spec(3)
    first = status(dag)
    assert "dagSpec" not in first.to_wire(stored_spec=dag)
    assert "dagSpec" not in first.to_wire(previous=(first, first.to_wire()), stored_spec=dag)
    assert "dagSpec" in first.to_wire(stored_spec=spec(3)), "another spec object: written (`is`, not ==)"


def test_task_statuses_and_tasks_share_one_set_of_given_fields() -> None:
    """api.base.ManyModel: no set per instance, and none copied per model_copy (728 bytes each)."""
    first = done("a")
    moved = first.model_copy(update={"state": TaskState.failed, "message": "boom"})
    read = TaskInstanceStatus.model_validate({"state": "running", "tryNumber": 2})
    sets = {id(s.model_fields_set) for s in (first, moved, read, moved.model_copy(deep=True))}
    assert len(sets) == 1 and first.model_fields_set == set(TaskInstanceStatus.model_fields)
    assert moved.state is TaskState.failed and first.state is TaskState.success, "a copy, not the same"
    assert moved == done("a").model_copy(update={"state": TaskState.failed, "message": "boom"})
    tasks = spec(3).tasks
    assert tasks[0].model_fields_set is tasks[2].model_fields_set
