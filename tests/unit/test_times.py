"""api.times: the one parser, the one formatter and the Time field every API model uses for times."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kubeflowlite.api.dag import DAG
from kubeflowlite.api.dagrun import DAGRun, DAGRunStatus, TaskInstanceStatus, TaskState
from kubeflowlite.api.times import as_utc, format_time, parse_time


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-02-09", utc(2020, 2, 9)),
        ("2020-02-09T00:00:00Z", utc(2020, 2, 9)),
        ("2020-02-09T01:30:00+01:00", utc(2020, 2, 9, 0, 30)),
        ("2020-02-09T14:55:00", utc(2020, 2, 9, 14, 55)),
        ("2020-02-09T14:55:00.250Z", utc(2020, 2, 9, 14, 55, 0, 250_000)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected and parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["", "yesterday", "2020-13-01", "20200209", "2020-02-09T25:00:00Z", "12:00"])
def test_parse_time_rejects_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD or RFC 3339"):
        parse_time(text)


moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.none() | st.timezones()
)


@given(moments)
def test_format_then_parse_is_the_same_instant_in_utc(moment: datetime) -> None:
    text = format_time(moment)
    assert text.endswith("Z") and "+" not in text
    parsed = parse_time(text)
    assert parsed == as_utc(moment) and parsed.tzinfo is UTC
    assert format_time(parsed) == text


@given(st.datetimes(timezones=st.just(UTC)), st.integers(-14 * 60, 14 * 60))
def test_an_offset_is_the_same_instant(moment: datetime, minutes: int) -> None:
    shifted = moment.astimezone(timezone(timedelta(minutes=minutes)))
    assert parse_time(shifted.isoformat()) == moment
    assert format_time(shifted) == format_time(moment)


def test_the_wire_form_is_kubernetes_own() -> None:
    assert format_time(datetime(2020, 2, 9, tzinfo=UTC)) == "2020-02-09T00:00:00Z"
    assert format_time(datetime(2020, 2, 9, 0, 0, 0, 250_000, tzinfo=UTC)) == "2020-02-09T00:00:00.250000Z"
    assert format_time(datetime(2020, 2, 9, 9, tzinfo=timezone(timedelta(hours=9)))) == "2020-02-09T00:00:00Z"
    assert format_time(datetime(2020, 2, 9, 9)) == "2020-02-09T09:00:00Z"  # naive: already UTC


@given(moments, moments)
def test_a_status_keeps_its_times_through_the_wire(start: datetime, end: datetime) -> None:
    instance = TaskInstanceStatus(state=TaskState.failed, try_number=1, start_time=start, end_time=end)
    status = DAGRunStatus(start_time=start, end_time=end, tasks={"t": instance})
    wire = status.to_wire()
    assert wire["startTime"] == format_time(start) and wire["tasks"]["t"]["endTime"] == format_time(end)
    again = DAGRunStatus.model_validate(wire)
    assert again.start_time == as_utc(start) and again.tasks["t"].end_time == as_utc(end)
    assert again.to_wire() == wire


def test_a_model_accepts_what_users_write_and_holds_utc_datetimes() -> None:
    dag = DAG.model_validate(
        {
            "metadata": {"name": "d"},
            "spec": {"tasks": [{"name": "t", "bash": "true"}], "startDate": "2020-02-09"},
        }
    )
    assert dag.spec.start_date == datetime(2020, 2, 9, tzinfo=UTC)
    for written in (
        "2020-02-09T09:00:00+09:00",
        "2020-02-09T00:00:00",
        datetime(2020, 2, 9),
        date(2020, 2, 9),
    ):
        run = DAGRun.model_validate(
            {"metadata": {"name": "r"}, "spec": {"dagName": "d", "logicalDate": written}}
        )
        assert run.spec.logical_date == datetime(2020, 2, 9, tzinfo=UTC), written
        assert run.to_wire()["spec"]["logicalDate"] == "2020-02-09T00:00:00Z"


@pytest.mark.parametrize("bad", ["1700000000", "tomorrow", "", 12, None])
def test_a_bad_time_names_its_field_and_the_forms_accepted(bad: object) -> None:
    # pydantic's own datetime would take "1700000000" as a Unix time; ours does not.
    with pytest.raises(ValidationError) as raised:
        DAGRun.model_validate({"metadata": {"name": "r"}, "spec": {"dagName": "d", "logicalDate": bad}})
    (error,) = raised.value.errors()
    assert error["loc"] == ("spec", "logicalDate")
    assert "YYYY-MM-DD or RFC 3339" in error["msg"]
