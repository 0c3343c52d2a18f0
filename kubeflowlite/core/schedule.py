"""When a DAG runs: cron schedules and Airflow's data intervals, time-zone aware.

Airflow users think in data intervals: a scheduled run covers [start, end) of its
interval, its logical date ({{ ds }}) is the interval's *start*, and it is created
only once the interval has *ended*. A daily DAG's run for 2020-02-09 therefore
starts just after midnight on 2020-02-10. This module is the single place that
arithmetic lives, shared by the operator (which creates scheduled runs), the local
runner (which needs the interval of a manual run) and the `schedule` command.

Cron expressions are evaluated in the DAG's `timezone` (an IANA name) with its
daylight-saving rules: `0 0 * * *` in Europe/Berlin fires at local midnight, 23 or 25
hours apart across a transition. A fire time inside a spring-forward gap moves to
the first existing time after it; in a fall-back fold, an expression with fixed hours
(`30 1 * * *`) fires once (at the first occurrence), while an every-hour expression
(`0 * * * *`) fires in both occurrences, so hourly intervals stay one hour long.

Everything returned is an aware datetime in UTC; naive inputs are taken as UTC.
Pure: no clock is read, `now` is always a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.times import as_utc

__all__ = [
    "PRESETS",
    "RunInterval",
    "Schedule",
    "load_timezone",
    "validate_cron",
]

PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
"""The @-presets and the cron expression each stands for (as in Airflow)."""

ONCE = "@once"

_SEARCH_LIMIT = 100_000
"""Fire times skipped at most while looking for one (guards against expressions that never fire)."""


@dataclass(frozen=True)
class RunInterval:
    """The data interval of one DAG run. Its logical date is the interval start (Airflow's rule)."""

    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime


def load_timezone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError naming it if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a name too long for a file
        raise ValueError(
            f"unknown time zone {name!r} (expected an IANA name such as UTC or Europe/Berlin)"
        ) from None


def validate_cron(schedule: str) -> str:
    """The five-field cron expression `schedule` stands for (presets expanded); ValueError if invalid."""
    expression = PRESETS.get(schedule.strip(), schedule.strip())
    if expression.startswith("@"):
        valid = ", ".join([ONCE, *PRESETS])
        raise ValueError(f"unknown preset {schedule!r} (valid: {valid})")
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"invalid cron expression {schedule!r}: expected 5 fields (minute hour day-of-month month "
            f"day-of-week), got {len(fields)}"
        )
    from croniter import croniter  # (imported when a cron schedule is met: not every command needs it)

    try:
        croniter(expression)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"invalid cron expression {schedule!r}: {error}") from None
    return expression


class Schedule:
    """A DAG's schedule: manual, @once, or cron, with its start/end dates and catchup flag.

    Build it with `Schedule.from_spec`; it raises ValueError for an invalid cron
    expression, time zone or date (validation reports those with their paths first).
    """

    def __init__(
        self,
        *,
        schedule: str | None,
        timezone: str = "UTC",
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = False,
    ) -> None:
        self.raw = schedule
        self.tz = load_timezone(timezone)
        self.start_date = None if start_date is None else as_utc(start_date)
        self.end_date = None if end_date is None else as_utc(end_date)
        self.catchup = catchup
        text = None if schedule is None else schedule.strip()
        self.is_once = text == ONCE
        self.expression: str | None = None
        self._fixed_hours = False
        if text is not None and not self.is_once:
            self.expression = validate_cron(text)
            self._fixed_hours = self.expression.split()[1] != "*"

    @classmethod
    def from_spec(cls, spec: DAGSpec) -> Schedule:
        return cls(
            schedule=spec.schedule,
            timezone=spec.timezone,
            start_date=spec.start_date,
            end_date=spec.end_date,
            catchup=spec.catchup,
        )

    @property
    def is_manual(self) -> bool:
        """True when the DAG has no schedule: it runs only when triggered."""
        return self.raw is None

    def __repr__(self) -> str:
        return f"Schedule({self.raw!r}, tz={self.tz.key!r}, start={self.start_date}, end={self.end_date})"

    # -- cron fire times ------------------------------------------------------------

    def _skip(self, fire_local: datetime) -> bool:
        """The second occurrence of a fixed-hour fire time in a fall-back fold: it already fired."""
        if not self._fixed_hours or fire_local.fold != 1:
            return False
        return fire_local.replace(fold=0).utcoffset() != fire_local.utcoffset()

    def _next_fire(self, after: datetime) -> datetime:
        """The first fire time strictly after `after`."""
        assert self.expression is not None
        from croniter import croniter

        iterator = croniter(self.expression, as_utc(after).astimezone(self.tz))
        for _ in range(_SEARCH_LIMIT):
            fire: datetime = iterator.get_next(datetime)
            local = fire.astimezone(self.tz)
            if not self._skip(local):
                return local.astimezone(UTC)
        raise ValueError(f"schedule {self.raw!r} never fires")  # pragma: no cover

    def _prev_fire(self, before: datetime) -> datetime:
        """The last fire time strictly before `before`."""
        assert self.expression is not None
        from croniter import croniter

        iterator = croniter(self.expression, as_utc(before).astimezone(self.tz))
        for _ in range(_SEARCH_LIMIT):
            fire: datetime = iterator.get_prev(datetime)
            local = fire.astimezone(self.tz)
            if not self._skip(local):
                return local.astimezone(UTC)
        raise ValueError(f"schedule {self.raw!r} never fires")  # pragma: no cover

    def _fire_at_or_before(self, moment: datetime) -> datetime:
        previous = self._prev_fire(moment)
        following = self._next_fire(previous)
        return following if following <= moment else previous

    def _fire_at_or_after(self, moment: datetime) -> datetime:
        return self._next_fire(moment - timedelta(microseconds=1))

    def is_on_schedule(self, moment: datetime) -> bool:
        """Whether `moment` is a fire time of the cron expression (False for manual and @once)."""
        if self.expression is None:
            return False
        moment = as_utc(moment)
        return self._fire_at_or_after(moment) == moment

    def _interval_at(self, fire: datetime) -> RunInterval:
        return RunInterval(fire, fire, self._next_fire(fire))

    def _once_interval(self) -> RunInterval | None:
        if self.start_date is None:
            return None
        if self.end_date is not None and self.start_date > self.end_date:
            return None
        return RunInterval(self.start_date, self.start_date, self.start_date)

    def _first_interval(self) -> RunInterval | None:
        if self.start_date is None:
            return None
        return self._bounded(self._interval_at(self._fire_at_or_after(self.start_date)))

    def _bounded(self, interval: RunInterval) -> RunInterval | None:
        if self.end_date is not None and interval.logical_date > self.end_date:
            return None
        return interval

    # -- the public questions -------------------------------------------------------

    def interval_after(self, logical_date: datetime | None) -> RunInterval | None:
        """The scheduled interval whose logical date comes next after `logical_date`.

        None as `logical_date` asks for the first interval (from startDate). Returns None
        when there is none: manual DAGs, @once already done, endDate passed, or a cron
        DAG without startDate asked for its first interval.
        """
        if self.is_manual:
            return None
        if self.is_once:
            once = self._once_interval()
            if once is None:
                return None
            return once if logical_date is None or as_utc(logical_date) < once.logical_date else None
        if logical_date is None:
            return self._first_interval()
        after = as_utc(logical_date)
        if self.start_date is not None and after < self.start_date:
            return self._first_interval()
        return self._bounded(self._interval_at(self._next_fire(after)))

    def interval_length(self, now: datetime) -> timedelta | None:
        """How long the cron interval that contains `now` is (None for manual and @once DAGs)."""
        if self.expression is None:
            return None
        start = self._fire_at_or_before(as_utc(now))
        return self._next_fire(start) - start

    def _latest_due(self, now: datetime) -> RunInterval | None:
        """The last interval (within start/end dates) that has ended by `now`."""
        assert self.expression is not None
        end = self._fire_at_or_before(now)
        start = self._prev_fire(end)
        if self.end_date is not None and start > self.end_date:
            start = self._fire_at_or_before(self.end_date)
            end = self._next_fire(start)
        if self.start_date is not None and start < self.start_date:
            return None
        return RunInterval(start, start, end)

    def due_runs(
        self, last_logical: datetime | None, now: datetime, *, limit: int | None = None
    ) -> list[RunInterval]:
        """The scheduled runs to create now, oldest first, given the last run's logical date.

        catchup=true: every interval after `last_logical` (or from startDate) that has
        ended by `now`. catchup=false: only the latest ended interval, and only if it is
        newer than `last_logical`. @once: its single run, once `now` reaches startDate.
        `limit` caps the list (the oldest first): a minutely DAG catching up on a year
        need not materialise half a million intervals when only a few runs may start.
        """
        now = as_utc(now)
        last = None if last_logical is None else as_utc(last_logical)
        if self.is_manual:
            return []
        if self.is_once:
            once = self.interval_after(last)
            return [once] if once is not None and once.data_interval_end <= now else []
        if not self.catchup or (last is None and self.start_date is None):
            latest = self._latest_due(now)
            if latest is None or (last is not None and latest.logical_date <= last):
                return []
            return [latest]
        runs: list[RunInterval] = []
        interval = self.interval_after(last)
        while (
            interval is not None
            and interval.data_interval_end <= now
            and (limit is None or len(runs) < limit)
        ):
            runs.append(interval)
            interval = self._bounded(self._interval_at(interval.data_interval_end))
        return runs

    def next_wakeup(self, last_logical: datetime | None, now: datetime) -> datetime | None:
        """When the next not-yet-created run becomes due: `now` if one is due already.

        None when no run will ever be due again (manual, @once done, endDate passed).
        """
        now = as_utc(now)
        if self.due_runs(last_logical, now):
            return now
        if self.is_manual:
            return None
        last = None if last_logical is None else as_utc(last_logical)
        if self.is_once:
            once = self.interval_after(last)
            return None if once is None else once.data_interval_end
        candidate = self.interval_after(last)
        if candidate is None and last is None and self.start_date is None:
            candidate = self._bounded(self._interval_at(self._fire_at_or_before(now)))
        if candidate is None:
            return None
        if not self.catchup:
            current = self._bounded(self._interval_at(self._fire_at_or_before(now)))
            if current is not None and current.logical_date > candidate.logical_date:
                candidate = current
        return candidate.data_interval_end

    def runs_between(self, start: datetime, end: datetime) -> list[RunInterval]:
        """Every scheduled interval with its logical date in [start, end], oldest first (backfill).

        Pure schedule arithmetic: the range given wins over startDate/endDate, as an
        explicit backfill does in Airflow. @once yields its run if startDate is in range.
        """
        start, end = as_utc(start), as_utc(end)
        if self.is_manual or end < start:
            return []
        if self.is_once:
            once = self._once_interval()
            return [once] if once is not None and start <= once.logical_date <= end else []
        runs: list[RunInterval] = []
        fire = self._fire_at_or_after(start)
        while fire <= end:
            interval = self._interval_at(fire)
            runs.append(interval)
            fire = interval.data_interval_end
        return runs

    def logical_date_before(self, logical_date: datetime) -> datetime | None:
        """The scheduled logical date just before `logical_date` ({{ prev_ds }}); None for manual and @once."""
        if self.expression is None:
            return None
        return self._prev_fire(as_utc(logical_date))

    def interval_for(self, logical_date: datetime) -> RunInterval:
        """The interval of a run at `logical_date` (a manual trigger or `kubeflowlite run --date`).

        The scheduled interval starting there if the date is a fire time of the cron
        expression; otherwise the empty interval [date, date], as Airflow gives a manual run.
        """
        moment = as_utc(logical_date)
        if self.expression is not None and self.is_on_schedule(moment):
            return self._interval_at(moment)
        return RunInterval(moment, moment, moment)
