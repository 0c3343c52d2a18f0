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

__all__ = ["format_duration", "parse_duration", "parse_signed_duration"]

_UNIT_SECONDS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
_NUMBER = r"\d+(?:\.\d+)?"
_BARE = re.compile(rf"\s*({_NUMBER})\s*")
# "ms" must be tried before "m" so that 250ms is not read as 250 minutes and a stray "s".
_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|s|m|h|d|w)\s*")

_HINT = "expected e.g. 30s, 5m, 1h30m, 1d, 250ms, 1w, or a number of seconds"


def parse_duration(text: str) -> timedelta:
    """The non-negative duration `text` denotes; ValueError with the accepted forms otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r} ({_HINT})")
    bare = _BARE.fullmatch(text)
    if bare is not None:
        return timedelta(seconds=float(bare.group(1)))
    total_ms = 0.0
    position = 0
    while position < len(text):
        part = _PART.match(text, position)
        if part is None:
            raise ValueError(f"not a duration: {text!r} ({_HINT})")
        total_ms += float(part.group(1)) * _UNIT_SECONDS[part.group(2)] * 1000
        position = part.end()
    if position == 0:
        raise ValueError(f"not a duration: {text!r} ({_HINT})")
    try:
        return timedelta(milliseconds=total_ms)
    except OverflowError as error:
        raise ValueError(f"duration out of range: {text!r}") from error


def parse_signed_duration(text: str) -> timedelta:
    """Like parse_duration, but a leading '-' makes it negative (sensor offsets such as -1d)."""
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r} ({_HINT})")
    stripped = text.strip()
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
