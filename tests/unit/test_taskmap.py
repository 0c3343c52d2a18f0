"""api.dagrun.TaskMap: the task map of a run status reads, compares and serializes like a dict."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubeflowlite.api.dagrun import DAGRunStatus, TaskInstanceStatus, TaskMap, TaskState

STATES = list(TaskState)


def instance(try_number: int) -> TaskInstanceStatus:
    return TaskInstanceStatus(state=STATES[try_number % len(STATES)], try_number=try_number)


@given(
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 9), max_size=20),
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 9), max_size=8),
)
def test_updated_is_a_dict_update_that_leaves_the_original_alone(
    start: dict[str, int], changes: dict[str, int]
) -> None:
    base = {key: instance(n) for key, n in start.items()}
    change = {key: instance(n) for key, n in changes.items()}
    old = TaskMap(base)
    new = old.updated(change)
    expected = {**base, **change}
    assert new == expected and list(new) == list(expected)  # same items, same order as a dict
    assert old == base and list(old) == list(base)
    assert len(new) == len(expected) and all(key in new for key in expected)


def test_a_status_serializes_its_tasks_as_a_json_object_in_order() -> None:
    tasks = {"b": {"state": "running", "tryNumber": 1}, "a": {"state": "none", "tryNumber": 0}}
    status = DAGRunStatus.model_validate({"state": "running", "tasks": tasks})
    assert type(status.tasks) is TaskMap and list(status.tasks) == ["b", "a"]
    # as stored (not an exclude_unset dump: a task status says every field was given, api.base.ManyModel)
    assert list(status.to_wire()["tasks"].items()) == list(tasks.items())
    updated = status.model_copy(update={"tasks": status.tasks.updated({"c": TaskInstanceStatus()})})
    assert list(updated.model_dump(by_alias=True, mode="json")["tasks"]) == ["b", "a", "c"]
    assert DAGRunStatus.model_validate(updated.model_dump(by_alias=True)).tasks == updated.tasks
