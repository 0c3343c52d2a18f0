"""Names and labels of the objects the operator creates: valid, deterministic, collision-free."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from kubeflowlite.api.dagrun import RunType
from kubeflowlite.api.names import TASK_NAME_PATTERN
from kubeflowlite.k8s import names

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")

task_ids = st.from_regex(re.compile(TASK_NAME_PATTERN[:-1] + r"\Z"), fullmatch=True).filter(
    lambda s: len(s) <= 200
)
any_text = st.text(min_size=1, max_size=300)
run_names = st.from_regex(r"\A[a-z0-9]([-a-z0-9.]{0,120}[a-z0-9])?\Z", fullmatch=True)
RUN = "tutorial-scheduled-20200209t145500"


def assert_dns_label(name: str) -> None:
    assert len(name) <= 63, name
    assert DNS_LABEL.match(name), name


def test_readable_names_for_the_common_case() -> None:
    when = datetime(2020, 2, 9, 14, 55, tzinfo=UTC)
    assert names.dagrun_name("tutorial", when, "scheduled") == RUN
    assert names.dagrun_name("tutorial", when, RunType.manual) == "tutorial-manual-20200209t145500"
    assert names.pod_name(RUN, "sleep", 2) == f"{RUN}-sleep-2"
    assert names.xcom_configmap_name(RUN) == f"{RUN}-xcom"
    assert names.label_value("print_date") == "print_date"


def test_dagrun_name_normalises_time_zones_and_keeps_microseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    utc = datetime(2020, 2, 9, 14, 55, tzinfo=UTC)
    assert names.dagrun_name("d", utc.astimezone(plus_two), "manual") == names.dagrun_name("d", utc, "manual")
    assert names.dagrun_name("d", utc.replace(tzinfo=None), "manual") == names.dagrun_name("d", utc, "manual")
    precise = utc.replace(microsecond=123)
    assert names.dagrun_name("d", precise, "manual") == "d-manual-20200209t145500-000123"
    assert names.dagrun_name("d", precise, "manual") != names.dagrun_name("d", utc, "manual")


def test_dagrun_name_of_a_long_or_dotted_dag_is_shortened_and_distinct() -> None:
    when = datetime(2020, 2, 9, tzinfo=UTC)
    long_a = names.dagrun_name("a" * 63, when, "backfill")
    long_b = names.dagrun_name("a" * 62 + "b", when, "backfill")
    dotted = names.dagrun_name("my.dag", when, "manual")
    dashed = names.dagrun_name("my-dag", when, "manual")
    for name in (long_a, long_b, dotted, dashed):
        assert_dns_label(name)
    assert long_a != long_b
    assert dotted != dashed
    assert long_a.endswith("-backfill-20200209t000000")


def test_lossy_task_ids_get_distinct_pod_names() -> None:
    variants = ["a_b", "a-b", "a.b", "A-b", "A_B"]
    pods = {names.pod_name(RUN, task, 1) for task in variants}
    assert len(pods) == len(variants)
    assert names.pod_name(RUN, "a-b", 1) == f"{RUN}-a-b-1"
    for pod in pods:
        assert_dns_label(pod)


def test_try_number_always_ends_the_pod_name() -> None:
    assert names.pod_name(RUN, "a" * 200, 12).endswith("-12")
    assert names.pod_name(RUN, "a-1", 1) != names.pod_name(RUN, "a", 11)


@given(task=task_ids, try_number=st.integers(min_value=1, max_value=1000))
def test_pod_names_are_valid(task: str, try_number: int) -> None:
    assert_dns_label(names.pod_name(RUN, task, try_number))


@given(run=run_names, task=any_text, try_number=st.integers(min_value=0, max_value=10**6))
def test_pod_names_are_valid_for_any_input(run: str, task: str, try_number: int) -> None:
    assert_dns_label(names.pod_name(run, task, try_number))
    assert names.pod_name(run, task, try_number) == names.pod_name(run, task, try_number)


@given(
    first=task_ids,
    second=task_ids,
    try_a=st.integers(min_value=1, max_value=50),
    try_b=st.integers(min_value=1, max_value=50),
)
def test_pod_names_are_injective(first: str, second: str, try_a: int, try_b: int) -> None:
    if (first, try_a) != (second, try_b):
        assert names.pod_name(RUN, first, try_a) != names.pod_name(RUN, second, try_b)


@given(st.lists(task_ids, min_size=2, max_size=30, unique=True))
def test_pod_names_of_one_dag_never_collide(tasks: list[str]) -> None:
    assert len({names.pod_name(RUN, t, 1) for t in tasks}) == len(tasks)


@given(text=any_text)
def test_label_values_are_valid(text: str) -> None:
    value = names.label_value(text)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value), value


@given(first=any_text, second=any_text)
def test_label_values_are_injective(first: str, second: str) -> None:
    if first != second:
        assert names.label_value(first) != names.label_value(second)


@given(run=run_names)
def test_xcom_configmap_names_are_valid_and_injective(run: str) -> None:
    assert_dns_label(names.xcom_configmap_name(run))
    assert names.xcom_configmap_name(run) != names.xcom_configmap_name(run + "x")


@given(dag=run_names, seconds=st.integers(min_value=0, max_value=4 * 10**9), kind=st.sampled_from(RunType))
def test_dagrun_names_are_valid_and_injective_in_the_date(dag: str, seconds: int, kind: RunType) -> None:
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    name = names.dagrun_name(dag, when, kind)
    assert_dns_label(name)
    assert name != names.dagrun_name(dag, when + timedelta(seconds=1), kind)


def test_task_labels_carry_identity_and_standard_labels() -> None:
    labels = names.task_labels(dag="tutorial", run_name=RUN, task="print_date", try_number=3)
    assert labels[names.LABEL_DAG] == "tutorial"
    assert labels[names.LABEL_RUN] == RUN
    assert labels[names.LABEL_TASK] == "print_date"
    assert labels[names.LABEL_TRY] == "3"
    assert labels["app.kubernetes.io/name"] == "kubeflowlite"
    assert labels["app.kubernetes.io/managed-by"] == "kubeflowlite-operator"
    assert labels["app.kubernetes.io/component"] == "task"
    assert names.run_selector(RUN) == f"kubeflowlite.io/run={RUN}"
