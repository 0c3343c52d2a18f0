"""core.durations: the duration syntax of every duration field, parsed and printed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import re2
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kubeflowlite.core.durations import format_duration, format_elapsed, parse_duration, parse_signed_duration


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


# The CRD (and the pydantic models) check duration fields with DURATION_PATTERN, the
# apiserver with Go's regexp: RE2 here, on the pattern as the committed CRD has it.
_CRD = yaml.safe_load((Path(__file__).parents[2] / "crds" / "kubeflowlite.io_dags.yaml").read_text())
_TASK = _CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["tasks"]
CRD_DURATION = _TASK["items"]["properties"]["retryDelay"]["pattern"]
CRD_SIGNED_DURATION = _TASK["items"]["properties"]["sensor"]["properties"]["offset"]["pattern"]

duration_like = st.text(alphabet="0123456789.msdhw -+ x\n", max_size=14)


def _accepts(parse: Callable[[str], timedelta], text: str) -> bool:
    try:
        parse(text)
    except ValueError as error:
        return "out of range" in str(error)  # well-formed, only too big for a timedelta
    return True


@settings(max_examples=500)
@given(duration_like)
@example("5 m")
@example("1h\n")
@example("+5m")
@example("1.h")
def test_the_crd_accepts_a_duration_exactly_when_the_parser_does(text: str) -> None:
    assert (re2.search(CRD_DURATION, text) is not None) == _accepts(parse_duration, text), text
    assert (re2.search(CRD_SIGNED_DURATION, text) is not None) == _accepts(parse_signed_duration, text), text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (0.4204, "420ms"), (5.9, "5s"), (83.2, "1m23s"), (3725.9, "1h2m5s"), (-1, "0s")],
)
def test_elapsed_time_is_whole_seconds_in_the_duration_syntax(seconds: float, text: str) -> None:
    """status.duration (both shells) and every table: one format."""
    assert format_elapsed(seconds) == text
