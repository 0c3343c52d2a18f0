"""core.durations: the duration syntax of every duration field, parsed and printed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeflowlite.core.durations import format_duration, parse_duration, parse_signed_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("250ms", timedelta(milliseconds=250)),
        ("1w", timedelta(weeks=1)),
        ("1m250ms", timedelta(minutes=1, milliseconds=250)),
        ("90", timedelta(seconds=90)),
        ("1.5", timedelta(seconds=1.5)),
        ("0.5h", timedelta(minutes=30)),
        (" 2h 5s ", timedelta(hours=2, seconds=5)),
        ("0s", timedelta(0)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", [" ", "abc", "5 mins", "1y", "-5m", "m", "1h-2m", "5m!", "1.h"])
def test_invalid_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration: .*expected e\.g\. 30s, 5m, 1h30m"):
        parse_duration(text)


def test_empty_is_invalid() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("")


def test_signed() -> None:
    assert parse_signed_duration("-1d") == -timedelta(days=1)
    assert parse_signed_duration(" - 2h") == -timedelta(hours=2)
    assert parse_signed_duration("+5m") == timedelta(minutes=5)
    assert parse_signed_duration("0s") == timedelta(0)
    with pytest.raises(ValueError):
        parse_signed_duration("--1d")


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(days=2, hours=3), "2d3h"),
        (timedelta(weeks=1), "7d"),
        (timedelta(seconds=61), "1m1s"),
        (-timedelta(minutes=5), "-5m"),
    ],
)
def test_format(td: timedelta, text: str) -> None:
    assert format_duration(td) == text


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_format_then_parse_round_trips_to_the_millisecond(ms: int) -> None:
    td = timedelta(milliseconds=ms)
    assert parse_signed_duration(format_duration(td)) == td


@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["ms", "s", "m", "h", "d", "w"])), min_size=1)
)
def test_a_sum_of_parts_is_the_sum_of_their_values(parts: list[tuple[int, str]]) -> None:
    unit = {
        "ms": timedelta(milliseconds=1),
        "s": timedelta(seconds=1),
        "m": timedelta(minutes=1),
        "h": timedelta(hours=1),
        "d": timedelta(days=1),
        "w": timedelta(weeks=1),
    }
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_duration(text) == sum((n * unit[u] for n, u in parts), timedelta(0))
