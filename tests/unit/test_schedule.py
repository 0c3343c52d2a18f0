"""core.schedule: cron and presets, Airflow data intervals, catchup, dates, time zones with DST."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeflowlite.api.dag import DAGSpec, Task
from kubeflowlite.core.schedule import RunInterval, Schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def sched(schedule: str | None, **kwargs: object) -> Schedule:
    start = kwargs.pop("start", "2020-01-01T00:00:00Z")
    end = kwargs.pop("end", None)
    spec = DAGSpec(
        schedule=schedule,
        start_date=start,  # type: ignore[arg-type]
        end_date=end,  # type: ignore[arg-type]
        tasks=[Task(name="t", bash="true")],
        **kwargs,  # type: ignore[arg-type]
    )
    return Schedule.from_spec(spec)


# -- parse_time -------------------------------------------------------------------------


# -- cron and data intervals --------------------------------------------------------------


def test_cron_interval_is_from_one_fire_time_to_the_next() -> None:
    schedule = sched("55 14 * * *", start="2020-02-09T00:00:00Z")
    first = schedule.interval_after(None)
    assert first == RunInterval(utc(2020, 2, 9, 14, 55), utc(2020, 2, 9, 14, 55), utc(2020, 2, 10, 14, 55))
    assert schedule.interval_after(first.logical_date) == RunInterval(
        utc(2020, 2, 10, 14, 55), utc(2020, 2, 10, 14, 55), utc(2020, 2, 11, 14, 55)
    )


def test_start_date_on_the_schedule_is_the_first_logical_date() -> None:
    first = sched("@daily", start="2020-02-09").interval_after(None)
    assert first is not None and first.logical_date == utc(2020, 2, 9)


@pytest.mark.parametrize(
    ("preset", "second"),
    [
        ("@hourly", utc(2020, 1, 1, 1)),
        ("@daily", utc(2020, 1, 2)),
        ("@weekly", utc(2020, 1, 12)),  # 2020-01-05 is the first Sunday
        ("@monthly", utc(2020, 2, 1)),
        ("@yearly", utc(2021, 1, 1)),
    ],
)
def test_presets(preset: str, second: datetime) -> None:
    schedule = sched(preset, start="2020-01-01")
    first = schedule.interval_after(None)
    assert first is not None
    if preset == "@weekly":
        assert first.logical_date == utc(2020, 1, 5)
        assert first.data_interval_end == second
    else:
        assert first.logical_date == utc(2020, 1, 1)
        assert first.data_interval_end == second


def test_a_run_is_due_only_once_its_interval_has_ended() -> None:
    schedule = sched("@daily", start="2020-02-09", catchup=True)
    assert schedule.due_runs(None, utc(2020, 2, 9, 23, 59)) == []
    due = schedule.due_runs(None, utc(2020, 2, 10))
    assert [r.logical_date for r in due] == [utc(2020, 2, 9)]


def test_catchup_creates_every_missed_interval() -> None:
    schedule = sched("@daily", start="2020-02-09", catchup=True)
    due = schedule.due_runs(None, utc(2020, 2, 13, 6))
    assert [r.logical_date for r in due] == [utc(2020, 2, d) for d in (9, 10, 11, 12)]
    later = schedule.due_runs(utc(2020, 2, 11), utc(2020, 2, 13, 6))
    assert [r.logical_date for r in later] == [utc(2020, 2, 12)]


def test_due_runs_limit_keeps_the_oldest() -> None:
    schedule = sched("* * * * *", start="2020-01-01", catchup=True)
    due = schedule.due_runs(None, utc(2021, 1, 1), limit=3)
    assert [r.logical_date for r in due] == [utc(2020, 1, 1, 0, m) for m in range(3)]


def test_without_catchup_only_the_latest_interval_runs() -> None:
    schedule = sched("@daily", start="2020-02-09", catchup=False)
    due = schedule.due_runs(None, utc(2020, 2, 13, 6))
    assert due == [RunInterval(utc(2020, 2, 12), utc(2020, 2, 12), utc(2020, 2, 13))]
    assert schedule.due_runs(utc(2020, 2, 12), utc(2020, 2, 13, 6)) == []
    assert schedule.due_runs(utc(2020, 2, 10), utc(2020, 2, 13, 6)) == due


def test_nothing_is_due_before_the_first_interval_ends() -> None:
    schedule = sched("@daily", start="2020-02-09T12:00:00Z", catchup=False)
    assert schedule.due_runs(None, utc(2020, 2, 10, 12)) == []
    assert schedule.next_wakeup(None, utc(2020, 2, 10, 12)) == utc(2020, 2, 11)


def test_end_date_bounds_the_logical_dates() -> None:
    schedule = sched("@daily", start="2020-02-09", end="2020-02-11", catchup=True)
    due = schedule.due_runs(None, utc(2020, 3, 1))
    assert [r.logical_date for r in due] == [utc(2020, 2, 9), utc(2020, 2, 10), utc(2020, 2, 11)]
    assert schedule.interval_after(utc(2020, 2, 11)) is None
    assert schedule.next_wakeup(utc(2020, 2, 11), utc(2020, 3, 1)) is None
    no_catchup = sched("@daily", start="2020-02-09", end="2020-02-11", catchup=False)
    assert [r.logical_date for r in no_catchup.due_runs(None, utc(2020, 3, 1))] == [utc(2020, 2, 11)]
    assert no_catchup.due_runs(utc(2020, 2, 11), utc(2020, 3, 1)) == []


def test_next_wakeup() -> None:
    schedule = sched("@daily", start="2020-02-09", catchup=False)
    now = utc(2020, 2, 12, 6)
    assert schedule.next_wakeup(None, now) == now  # a run is due right away
    assert schedule.next_wakeup(utc(2020, 2, 11), now) == utc(2020, 2, 13)
    catchup = sched("@daily", start="2020-02-09", catchup=True)
    assert catchup.next_wakeup(utc(2020, 2, 9), now) == now
    assert catchup.next_wakeup(utc(2020, 2, 11), now) == utc(2020, 2, 13)


def test_runs_between_for_backfill() -> None:
    schedule = sched("0 6 * * *", start="2020-01-01")
    runs = schedule.runs_between(utc(2020, 2, 9), utc(2020, 2, 11, 6))
    assert [r.logical_date for r in runs] == [utc(2020, 2, 9, 6), utc(2020, 2, 10, 6), utc(2020, 2, 11, 6)]
    assert runs[-1].data_interval_end == utc(2020, 2, 12, 6)
    assert schedule.runs_between(utc(2020, 2, 11), utc(2020, 2, 9)) == []


def test_once() -> None:
    schedule = sched("@once", start="2020-02-09T10:00:00Z")
    once = RunInterval(utc(2020, 2, 9, 10), utc(2020, 2, 9, 10), utc(2020, 2, 9, 10))
    assert schedule.interval_after(None) == once
    assert schedule.due_runs(None, utc(2020, 2, 9, 9)) == []
    assert schedule.next_wakeup(None, utc(2020, 2, 9, 9)) == utc(2020, 2, 9, 10)
    assert schedule.due_runs(None, utc(2020, 2, 9, 10)) == [once]
    assert schedule.due_runs(utc(2020, 2, 9, 10), utc(2021, 1, 1)) == []
    assert schedule.interval_after(utc(2020, 2, 9, 10)) is None
    assert schedule.next_wakeup(utc(2020, 2, 9, 10), utc(2021, 1, 1)) is None
    assert schedule.runs_between(utc(2020, 1, 1), utc(2020, 12, 31)) == [once]


def test_manual_dag_never_schedules() -> None:
    schedule = sched(None)
    assert schedule.is_manual
    assert schedule.interval_after(None) is None
    assert schedule.due_runs(None, utc(2030, 1, 1)) == []
    assert schedule.next_wakeup(None, utc(2030, 1, 1)) is None
    assert schedule.runs_between(utc(2020, 1, 1), utc(2030, 1, 1)) == []
    assert not sched("@daily").is_manual


def test_interval_for_a_manual_run() -> None:
    daily = sched("@daily")
    assert daily.interval_for(utc(2020, 2, 9)) == RunInterval(
        utc(2020, 2, 9), utc(2020, 2, 9), utc(2020, 2, 10)
    )
    off = utc(2020, 2, 9, 13, 7)
    assert daily.interval_for(off) == RunInterval(off, off, off)
    assert sched(None).interval_for(off) == RunInterval(off, off, off)
    naive = datetime(2020, 2, 9)
    assert sched(None).interval_for(naive).logical_date == utc(2020, 2, 9)


def test_no_start_date_without_catchup_still_schedules_the_latest_interval() -> None:
    schedule = sched("@hourly", start=None)
    assert schedule.interval_after(None) is None
    assert [r.logical_date for r in schedule.due_runs(None, utc(2020, 2, 9, 10, 30))] == [utc(2020, 2, 9, 9)]
    assert schedule.next_wakeup(utc(2020, 2, 9, 9), utc(2020, 2, 9, 10, 30)) == utc(2020, 2, 9, 11)


def test_invalid_schedule_raises() -> None:
    with pytest.raises(ValueError, match="invalid cron expression"):
        Schedule(schedule="* * *")
    with pytest.raises(ValueError, match="unknown preset"):
        Schedule(schedule="@fortnightly")
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere/City'"):
        Schedule(schedule="@daily", timezone="Nowhere/City")


# -- time zones and DST -----------------------------------------------------------------

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def test_daily_in_berlin_follows_local_midnight_across_dst() -> None:
    schedule = sched("@daily", timezone="Europe/Berlin", start="2024-03-29T00:00:00+01:00")
    runs = schedule.runs_between(utc(2024, 3, 29), utc(2024, 4, 2))
    local = [r.logical_date.astimezone(BERLIN) for r in runs]
    assert all((d.hour, d.minute) == (0, 0) for d in local)
    lengths = {
        r.logical_date.astimezone(BERLIN).date().isoformat(): r.data_interval_end - r.data_interval_start
        for r in runs
    }
    assert lengths["2024-03-30"] == timedelta(hours=24)
    assert lengths["2024-03-31"] == timedelta(hours=23)  # clocks go forward on 31 March
    assert runs[0].logical_date == utc(2024, 3, 29, 23)  # first local midnight after the range start


def test_new_york_fall_back_fixed_hour_fires_once_and_hourly_fires_in_both_hours() -> None:
    daily = sched("30 1 * * *", timezone="America/New_York", start="2024-11-01")
    runs = daily.runs_between(utc(2024, 11, 2), utc(2024, 11, 5))
    local = [r.logical_date.astimezone(NY) for r in runs]
    assert [d.day for d in local] == [2, 3, 4]
    assert all((d.hour, d.minute) == (1, 30) for d in local)
    assert runs[1].data_interval_end - runs[1].data_interval_start == timedelta(hours=25)

    hourly = sched("@hourly", timezone="America/New_York", start="2024-11-01")
    runs = hourly.runs_between(utc(2024, 11, 3, 4), utc(2024, 11, 3, 8))  # 00:00 EDT .. 03:00 EST
    assert [r.data_interval_end - r.data_interval_start for r in runs] == [timedelta(hours=1)] * 5


def test_new_york_spring_forward_gap() -> None:
    schedule = sched("30 2 * * *", timezone="America/New_York", start="2024-03-08")
    runs = schedule.runs_between(utc(2024, 3, 9), utc(2024, 3, 12))
    local = [r.logical_date.astimezone(NY) for r in runs]
    assert [d.day for d in local] == [9, 10, 11]
    assert local[1].hour == 3  # 02:30 does not exist on 10 March: the run moves past the gap
    assert local[2].hour == 2 and local[2].minute == 30


# -- properties -------------------------------------------------------------------------

EXPRESSIONS = st.sampled_from(
    ["@hourly", "@daily", "@weekly", "@monthly", "*/15 * * * *", "30 1 * * *", "0 9 * * 1-5", "0 */6 * * *"]
)
ZONES = st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"])
MOMENTS = st.datetimes(min_value=datetime(2019, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC))


@settings(max_examples=60, deadline=None)
@given(EXPRESSIONS, ZONES, MOMENTS, st.integers(1, 30))
def test_intervals_are_contiguous_and_increasing(
    expression: str, zone: str, start: datetime, count: int
) -> None:
    schedule = Schedule(schedule=expression, timezone=zone, start_date=start)
    interval = schedule.interval_after(None)
    assert interval is not None and interval.logical_date >= start
    for _ in range(count):
        assert interval.data_interval_start == interval.logical_date
        assert interval.data_interval_end > interval.data_interval_start
        following = schedule.interval_after(interval.logical_date)
        assert following is not None
        assert following.data_interval_start == interval.data_interval_end
        interval = following


@settings(max_examples=60, deadline=None)
@given(EXPRESSIONS, ZONES, MOMENTS, st.integers(0, 24 * 40))
def test_runs_between_stay_in_range(expression: str, zone: str, start: datetime, hours: int) -> None:
    schedule = Schedule(schedule=expression, timezone=zone)
    end = start + timedelta(hours=hours)
    runs = schedule.runs_between(start, end)
    assert all(start <= r.logical_date <= end for r in runs)
    assert all(a.data_interval_end == b.logical_date for a, b in itertools.pairwise(runs))


@settings(max_examples=80, deadline=None)
@given(EXPRESSIONS, ZONES, MOMENTS, st.integers(0, 24 * 20), st.booleans(), st.integers(0, 24 * 10))
def test_due_runs_have_ended_and_follow_the_last_run(
    expression: str, zone: str, start: datetime, hours: int, catchup: bool, last_offset: int
) -> None:
    schedule = Schedule(schedule=expression, timezone=zone, start_date=start, catchup=catchup)
    now = start + timedelta(hours=hours)
    last = start + timedelta(hours=last_offset) if last_offset % 2 else None
    due = schedule.due_runs(last, now)
    for run in due:
        assert run.data_interval_end <= now
        assert run.logical_date >= start
        assert last is None or run.logical_date > last
    if not catchup:
        assert len(due) <= 1
    wakeup = schedule.next_wakeup(last, now)
    if due:
        assert wakeup == now
    elif wakeup is not None:
        assert wakeup > now
        assert schedule.due_runs(last, wakeup), "at the wake-up time a run is due"
