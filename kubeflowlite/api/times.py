"""Times in the API: one parser, one formatter, one field type.

Every time a DAG or a DAGRun holds (a DAG's startDate, a run's logical date, a
task's start and end, a condition's lastTransitionTime) is a `Time` field: an aware
datetime in UTC in Python, RFC 3339 with a Z on the wire ("2020-02-09T00:00:00Z",
microseconds only when there are some), as Kubernetes writes its own times. Users may
write a date alone ("2020-02-09": its midnight, UTC), an offset ("+09:00": converted
to UTC) or a naive time (taken as UTC). A value that is none of these is an error that
says what was expected; it names no field, since the model's error does.

The local runner, the operator, the CLI and the UI all read and write times through
this module, so a run's times look the same whichever shell wrote them.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

__all__ = ["TIME_HINT", "Time", "as_utc", "format_time", "parse_time"]

TIME_HINT = "expected YYYY-MM-DD or RFC 3339, e.g. 2020-02-09T00:00:00Z"
"""What a time may look like, for error messages and help texts."""

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z: how DAGRun objects, Kubernetes and KFL_LOGICAL_DATE write times."""
    moment = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def parse_time(text: str) -> datetime:
    """`text` as an aware UTC datetime: RFC 3339 (Z or an offset) or YYYY-MM-DD; naive means UTC."""
    if not isinstance(text, str):
        raise ValueError(f"not a date or time: {text!r} ({TIME_HINT})")
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"empty date ({TIME_HINT})")
    candidate = stripped
    if candidate[-1:] in ("z", "Z"):
        candidate = candidate[:-1] + "+00:00"
    if not _DATE_ONLY.match(candidate) and "T" not in candidate.upper() and " " not in candidate:
        raise ValueError(f"not a date or time: {text!r} ({TIME_HINT})")
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(f"not a date or time: {text!r} ({TIME_HINT})") from None
    return as_utc(moment)


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken as UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def _validate(value: Any) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return parse_time(value)


Time = Annotated[
    datetime,
    PlainValidator(_validate, json_schema_input_type=str),
    PlainSerializer(format_time, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string"}),
]
"""A point in time: an aware UTC datetime in Python, RFC 3339 with a Z on the wire."""
