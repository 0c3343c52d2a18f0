"""Durations as DAG authors write them: 30s, 5m, 1h30m, 1d, 250ms, 1w, or bare seconds.

Every duration field of the API (retryDelay, executionTimeout, sensor pokeInterval,
...) is a string so that a DAG file reads like the Airflow code it replaces. This
module is the one parser and printer of that syntax; validation, the engine's shells
and the CLI all go through it so that a value accepted in one place is accepted
everywhere with the same meaning.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = [
    "DURATION_PATTERN",
    "SIGNED_DURATION_PATTERN",
    "format_duration",
    "format_elapsed",
    "parse_duration",
    "parse_signed_duration",
]

_UNIT_SECONDS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
_NUMBER = r"\d+(\.\d+)?"
# "ms" must come before "m" so that 250ms is not read as 250 minutes and a stray "s".
_UNIT = "(ms|s|m|h|d|w)"
_BARE_FORM = rf"\s*{_NUMBER}\s*"
_PARTS_FORM = rf"\s*({_NUMBER}\s*{_UNIT}\s*)+"
DURATION_PATTERN = rf"^{_BARE_FORM}$|^{_PARTS_FORM}$"
"""The syntax, for the API types (and so the CRDs): what parse_duration accepts, exactly."""
SIGNED_DURATION_PATTERN = rf"^\s*[-+]?{_BARE_FORM}$|^\s*[-+]?{_PARTS_FORM}$"
"""The same with an optional sign (sensor offsets such as -1d): what parse_signed_duration accepts."""

_DURATION = re.compile(DURATION_PATTERN)
_PART = re.compile(rf"({_NUMBER})\s*{_UNIT}")
_HINT = "expected e.g. 30s, 5m, 1h30m, 1d, 250ms, 1w, or a number of seconds"


def parse_duration(text: str) -> timedelta:
    """The non-negative duration `text` denotes; ValueError with the accepted forms otherwise."""
    if not isinstance(text, str) or _DURATION.fullmatch(text) is None:
        raise ValueError(f"not a duration: {text!r} ({_HINT})")
    try:
        stripped = text.strip()
        if _PART.search(stripped) is None:
            return timedelta(seconds=float(stripped))
        total_ms = sum(
            float(part.group(1)) * _UNIT_SECONDS[part.group(3)] * 1000 for part in _PART.finditer(stripped)
        )
        return timedelta(milliseconds=total_ms)
    except OverflowError as error:
        raise ValueError(f"duration out of range: {text!r}") from error


def parse_signed_duration(text: str) -> timedelta:
    """Like parse_duration, but a leading '-' makes it negative (sensor offsets such as -1d)."""
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r} ({_HINT})")
    stripped = text.lstrip()
    if stripped.startswith("-"):
        return -parse_duration(stripped[1:])
    if stripped.startswith("+"):
        return parse_duration(stripped[1:])
    return parse_duration(text)


def format_duration(td: timedelta) -> str:
    """Compact form of `td` in the same syntax: '1h30m', '250ms', '2d3h', '0s', '-5m'.

    Weeks are not used (7d reads better than 1w next to other days); sub-millisecond
    precision is rounded to the millisecond.
    """
    total_ms = round(td / timedelta(milliseconds=1))
    if total_ms == 0:
        return "0s"
    sign = "-" if total_ms < 0 else ""
    remaining = abs(total_ms)
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def format_elapsed(seconds: float) -> str:
    """How long something took, as a run's status.duration and every table show it: whole seconds
    (milliseconds below one second), e.g. 1h2m5s, 42s, 250ms."""
    if seconds < 1:
        return format_duration(timedelta(milliseconds=round(max(seconds, 0) * 1000)))
    return format_duration(timedelta(seconds=int(seconds)))
