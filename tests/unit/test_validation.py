"""core.validation: one test per kind of problem, all problems at once with paths, and the task graph."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeflowlite.api.dag import DAG, DAGSpec, Task
from kubeflowlite.core.loading import parse_dag
from kubeflowlite.core.validation import CycleError, InvalidDAGError, Issue, task_graph, validate_dag


def dag(tasks: list[dict[str, Any]], name: str = "demo", **spec: Any) -> DAG:
    return DAG.model_validate({"metadata": {"name": name}, "spec": {"tasks": tasks, **spec}})


def issues(tasks: list[dict[str, Any]], **kwargs: Any) -> list[str]:
    return [str(issue) for issue in validate_dag(dag(tasks, **kwargs))]


def one(tasks: list[dict[str, Any]], **kwargs: Any) -> str:
    found = issues(tasks, **kwargs)
    assert len(found) == 1, found
    return found[0]


OK = {"name": "ok", "bash": "true"}


def test_a_valid_dag_has_no_issues() -> None:
    assert issues([OK, {"name": "b", "bash": "echo {{ ds }}", "dependsOn": ["ok"]}], schedule="@daily") == []


def test_duplicate_task_names() -> None:
    assert one([OK, {"name": "x", "type": "empty"}, OK]) == (
        "spec.tasks[2].name: duplicate task name 'ok' (also spec.tasks[0])"
    )


def test_unknown_upstream() -> None:
    assert one([OK, {"name": "b", "type": "empty"}, {"name": "c", "bash": "x", "dependsOn": ["x"]}]) == (
        "spec.tasks[2].dependsOn[0]: unknown upstream task 'x'"
    )


def test_self_dependency_and_repeated_upstream() -> None:
    assert (
        one([{"name": "a", "bash": "x", "dependsOn": ["a"]}])
        == "spec.tasks[0].dependsOn[0]: task 'a' depends on itself"
    )
    assert (
        one([OK, {"name": "b", "bash": "x", "dependsOn": ["ok", "ok"]}])
        == "spec.tasks[1].dependsOn[1]: 'ok' is listed twice"
    )


def test_cycle_is_printed() -> None:
    tasks = [
        {"name": "start", "bash": "x"},
        {"name": "a", "bash": "x", "dependsOn": ["start", "c"]},
        {"name": "b", "bash": "x", "dependsOn": ["a"]},
        {"name": "c", "bash": "x", "dependsOn": ["b"]},
    ]
    assert one(tasks) == "spec.tasks[1].dependsOn: dependency cycle: a -> b -> c -> a"


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ("61 * * * *", "invalid cron expression"),
        ("* * *", "expected 5 fields"),
        ("@fortnightly", "unknown preset"),
    ],
)
def test_invalid_cron(schedule: str, fragment: str) -> None:
    message = one([OK], schedule=schedule)
    assert message.startswith("spec.schedule: ") and fragment in message


def test_invalid_timezone() -> None:
    assert one([OK], timezone="Mars/Olympus") == (
        "spec.timezone: unknown time zone 'Mars/Olympus' (expected an IANA name such as UTC or Europe/Berlin)"
    )


def parsed_issues(tasks: list[dict[str, Any]], **spec: Any) -> list[str]:
    """Every issue of the whole document, as `kubectl apply` and the CLI's loader report them."""
    with pytest.raises(InvalidDAGError) as raised:
        parse_dag({"kind": "DAG", "metadata": {"name": "demo"}, "spec": {"tasks": tasks, **spec}})
    return [str(issue) for issue in raised.value.issues]


def test_dates() -> None:
    # Times are typed: an unreadable one is refused by the model, naming the field and the forms.
    [tomorrow] = parsed_issues([OK], startDate="tomorrow")
    assert tomorrow == (
        "spec.startDate: not a date or time: 'tomorrow' (expected YYYY-MM-DD or RFC 3339, e.g. 2020-02-09T00:00:00Z)"
    )
    assert parsed_issues([OK], endDate="2020-02-30")[0].startswith("spec.endDate: not a date or time")
    assert one([OK], startDate="2020-02-09", endDate="2020-02-01") == (
        "spec.endDate: endDate 2020-02-01T00:00:00Z is before startDate 2020-02-09T00:00:00Z"
    )
    assert dag([OK], startDate="2020-02-09T09:00:00+09:00").spec.start_date == datetime(
        2020, 2, 9, tzinfo=UTC
    )
    assert one([OK], schedule="@once").startswith("spec.startDate: schedule @once needs a startDate")


def test_bad_durations_in_every_duration_field() -> None:
    # The API's pattern already rejects most bad durations when a file is parsed; copies
    # with updates bypass it, to check that validation does not rely on that (the operator
    # also validates objects it did not parse itself).
    base = dag([{"name": "t", "bash": "x"}, {"name": "s", "sensor": {"dag": "other"}}])
    task, sensor_task = base.spec.tasks
    assert sensor_task.sensor is not None
    spec = base.spec.model_copy(
        update={
            "defaults": base.spec.defaults.model_copy(update={"retry_delay": "later"}),
            "tasks": [
                task.model_copy(
                    update={"retry_delay": "5 mins", "max_retry_delay": "1x", "execution_timeout": "soon"}
                ),
                sensor_task.model_copy(
                    update={
                        "sensor": sensor_task.sensor.model_copy(
                            update={"offset": "-x", "poke_interval": "often", "timeout": "1y"}
                        )
                    }
                ),
            ],
        }
    )
    found = validate_dag(base.model_copy(update={"spec": spec}))
    assert [issue.path for issue in found] == [
        "spec.defaults.retryDelay",
        "spec.tasks[0].retryDelay",
        "spec.tasks[0].maxRetryDelay",
        "spec.tasks[0].executionTimeout",
        "spec.tasks[1].sensor.offset",
        "spec.tasks[1].sensor.pokeInterval",
        "spec.tasks[1].sensor.timeout",
    ]
    assert all(issue.message.startswith("not a duration") for issue in found)


def test_template_syntax_errors_in_every_templated_field() -> None:
    bad = "{{ oops"
    tasks = [
        {"name": "b", "bash": f"echo ok\n{bad}"},
        {"name": "c", "command": ["echo", bad], "args": [bad], "env": [{"name": "E", "value": bad}]},
        {"name": "p", "type": "empty", "pod": {"metadata": {"annotations": {"note": bad}}}},
        {"name": "t", "triggerDag": {"dag": "other", "conf": {"k": bad, "n": 1}}},
    ]
    found = validate_dag(dag(tasks))
    assert [issue.path for issue in found] == [
        "spec.tasks[0].bash",
        "spec.tasks[1].command[1]",
        "spec.tasks[1].args[0]",
        "spec.tasks[1].env[0].value",
        "spec.tasks[2].pod.metadata.annotations[note]",
        "spec.tasks[3].triggerDag.conf[k]",
    ]
    assert all(issue.message.startswith("template syntax error: ") for issue in found)
    assert found[0].message.endswith("(line 2)")


def test_branch_without_downstream() -> None:
    assert one([{"name": "pick", "bash": "echo a", "branch": True}]) == (
        "spec.tasks[0].branch: a branch task needs downstream tasks to choose from (none depends on it)"
    )


def test_nothing_to_run() -> None:
    assert (
        one([{"name": "idle"}])
        == "spec.tasks[0]: nothing to run: set bash, command, args, python or type: empty"
    )


def test_bash_with_command() -> None:
    assert one([{"name": "x", "bash": "a", "command": ["b"]}]).startswith(
        "spec.tasks[0].command: bash and command are exclusive"
    )


def test_sensor_or_trigger_with_a_command() -> None:
    assert one([{"name": "s", "bash": "x", "sensor": {"dag": "o"}}]).startswith(
        "spec.tasks[0].sensor: sensor and bash are exclusive"
    )
    assert one([{"name": "s", "sensor": {"dag": "o"}, "triggerDag": {"dag": "o"}}]) == (
        "spec.tasks[0].triggerDag: sensor and triggerDag are exclusive"
    )


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"name": "x", "type": "bash", "command": ["a"]}, "spec.tasks[0].type: type: bash needs bash"),
        ({"name": "x", "type": "container"}, "spec.tasks[0].type: type: container needs command or args"),
        ({"name": "x", "type": "sensor"}, "spec.tasks[0].type: type: sensor needs sensor"),
        ({"name": "x", "type": "empty", "bash": "a"}, "spec.tasks[0].type: type: empty runs nothing"),
    ],
)
def test_type_inconsistent_with_fields(task: dict[str, Any], expected: str) -> None:
    assert any(message.startswith(expected) for message in issues([task]))


@pytest.mark.parametrize("name", ["a" * 64, "ends-with-dash-", "under_score_", "dot."])
def test_task_names_must_be_label_values(name: str) -> None:
    # The model rejects these already (the loader reports it: test_names_rule); validate_dag
    # also checks a DAG built without validation (model_copy / model_construct).
    built = dag([{"name": "x", "bash": "x"}])
    task = built.spec.tasks[0].model_copy(update={"name": name})
    found = validate_dag(built.model_copy(update={"spec": built.spec.model_copy(update={"tasks": [task]})}))
    assert str(found[0]).startswith(f"spec.tasks[0].name: invalid task name {name!r}")


@pytest.mark.parametrize("name", ["a" * 63, "x", "A.b-c_d", "0"])
def test_valid_task_names(name: str) -> None:
    assert issues([{"name": name, "bash": "x"}]) == []


def test_dag_name_is_a_dns_name_of_at_most_63() -> None:
    long_name = "a" * 64
    found = validate_dag(
        DAG.model_construct(
            metadata=dag([OK]).metadata.model_copy(update={"name": long_name}), spec=dag([OK]).spec
        )
    )
    assert [issue.path for issue in found] == ["metadata.name"]
    assert "invalid DAG name" in found[0].message


def test_many_problems_at_once_with_paths() -> None:
    tasks = [
        {"name": "a", "bash": "x", "dependsOn": ["ghost"]},
        {"name": "a", "bash": "{% if %}"},
        {"name": "idle"},
        {"name": "both", "bash": "x", "args": ["y"]},
    ]
    found = parsed_issues(tasks, schedule="not cron", timezone="Nowhere", startDate="x")
    assert [issue.split(": ")[0] for issue in found] == [
        "spec.startDate",
        "spec.schedule",
        "spec.timezone",
        "spec.tasks[1].name",
        "spec.tasks[0].dependsOn[0]",
        "spec.tasks[1].bash",
        "spec.tasks[2]",
        "spec.tasks[3].args",
    ]


def test_invalid_dag_error_lists_every_issue_with_its_source() -> None:
    error = InvalidDAGError([Issue("spec.a", "bad"), Issue("spec.b", "worse")], source="dags/x.yaml")
    assert str(error) == "dags/x.yaml: spec.a: bad\ndags/x.yaml: spec.b: worse"
    assert error.issues[1] == Issue("spec.b", "worse") and error.source == "dags/x.yaml"


# -- the task graph ---------------------------------------------------------------------


def spec_of(edges: dict[str, list[str]]) -> DAGSpec:
    return DAGSpec(tasks=[Task(name=name, bash="x", depends_on=upstream) for name, upstream in edges.items()])


def test_task_graph() -> None:
    graph = task_graph(spec_of({"d": ["b", "c"], "a": [], "b": ["a"], "c": ["a"], "e": []}))
    assert graph.topological_order == ("a", "b", "c", "d", "e")
    assert graph.upstream["d"] == ("b", "c")
    assert graph.downstream["a"] == ("b", "c")
    assert graph.roots == ("a", "e") and graph.leaves == ("d", "e")
    assert graph.descendants("a") == {"b", "c", "d"}
    assert graph.ancestors("d") == {"a", "b", "c"}
    assert graph.descendants("e") == frozenset()


def test_task_graph_ignores_unknown_upstreams_and_reports_cycles() -> None:
    assert task_graph(spec_of({"a": ["ghost"], "b": ["a"]})).topological_order == ("a", "b")
    with pytest.raises(CycleError) as caught:
        task_graph(spec_of({"a": ["b"], "b": ["a"]}))
    assert isinstance(caught.value, ValueError) and caught.value.cycle == ["a", "b", "a"]


@st.composite
def random_dags(draw: st.DrawFn) -> dict[str, list[str]]:
    count = draw(st.integers(1, 30))
    names = [f"t{i}" for i in range(count)]
    order = draw(st.permutations(names))
    edges: dict[str, list[str]] = {}
    for position, name in enumerate(order):
        edges[name] = draw(st.lists(st.sampled_from(order[:position]), unique=True)) if position else []
    file_order = draw(st.permutations(names))
    return {name: edges[name] for name in file_order}


@settings(max_examples=100, deadline=None)
@given(random_dags())
def test_topological_order_respects_every_edge(edges: dict[str, list[str]]) -> None:
    graph = task_graph(spec_of(edges))
    position = {name: index for index, name in enumerate(graph.topological_order)}
    assert sorted(position) == sorted(edges)
    for name, upstream in edges.items():
        for parent in upstream:
            assert position[parent] < position[name]
            assert parent in graph.ancestors(name) and name in graph.descendants(parent)


@settings(max_examples=100, deadline=None)
@given(random_dags(), st.data())
def test_a_back_edge_is_a_reported_cycle(edges: dict[str, list[str]], data: st.DataObject) -> None:
    graph = task_graph(spec_of(edges))
    candidates = [(a, b) for a in edges for b in graph.descendants(a)]
    if not candidates:
        return
    ancestor, descendant = data.draw(st.sampled_from(candidates))
    edges[ancestor] = [*edges[ancestor], descendant]
    with pytest.raises(CycleError) as caught:
        task_graph(spec_of(edges))
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1] and len(set(cycle)) == len(cycle) - 1
    for parent, child in itertools.pairwise(cycle):
        assert parent in edges[child]


def test_skip_exit_code_only_where_a_process_exit_code_exists() -> None:
    assert issues([{"name": "b", "bash": "exit 99", "skipExitCode": 99}]) == []
    assert issues([{"name": "c", "command": ["false"], "image": "busybox", "skipExitCode": 3}]) == []
    assert one([{"name": "e", "type": "empty", "skipExitCode": 99}]) == (
        "spec.tasks[0].skipExitCode: empty tasks have no exit code of their own to skip on"
    )
    assert one([{"name": "s", "sensor": {"dag": "other"}, "skipExitCode": 99}]) == (
        "spec.tasks[0].skipExitCode: sensor tasks have no exit code of their own to skip on"
    )
