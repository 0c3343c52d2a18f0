"""XCom values: the file format, the 4 KiB limit, bash's last line, and what branch/short-circuit read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeflowlite.core import engine
from kubeflowlite.core.xcom import (
    NO_XCOM,
    XCOM_LIMIT_BYTES,
    XComError,
    branch_targets,
    encode_xcom,
    is_falsy,
    last_line_xcom,
    parse_xcom_file,
)


def test_the_engine_and_xcom_share_one_no_value_marker() -> None:
    assert engine.NO_XCOM is NO_XCOM


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        (b"42\n", 42),
        ("null", None),
        ('"text"', "text"),
        ("[]", []),
        ("false", False),
    ],
)
def test_a_file_holds_json(data: bytes | str, expected: Any) -> None:
    assert parse_xcom_file(data) == expected


@pytest.mark.parametrize("data", ["", b"", "  \n\t", b"\n"])
def test_an_empty_file_is_no_return_value_not_null(data: bytes | str) -> None:
    assert parse_xcom_file(data) is NO_XCOM


def test_invalid_json_names_the_problem_and_shows_an_excerpt() -> None:
    with pytest.raises(XComError) as caught:
        parse_xcom_file("hello world, this is not json")
    message = str(caught.value)
    assert message.startswith("return value is not valid JSON (Expecting value at line 1 column 1)")
    assert "'hello world, this is not json'" in message


def test_the_excerpt_of_a_long_invalid_value_is_short() -> None:
    with pytest.raises(XComError) as caught:
        parse_xcom_file("{" + "x" * 1000)
    assert len(str(caught.value)) < 200
    assert "..." in str(caught.value)


def test_a_value_over_the_limit_is_a_clear_failure() -> None:
    data = json.dumps("x" * XCOM_LIMIT_BYTES)
    with pytest.raises(XComError) as caught:
        parse_xcom_file(data)
    assert str(caught.value) == (
        f"return value is {XCOM_LIMIT_BYTES + 2} bytes, over the 4096-byte limit of a Pod termination message"
    )


def test_the_limit_counts_bytes_not_characters() -> None:
    exactly = json.dumps("é" * ((XCOM_LIMIT_BYTES - 2) // 2), ensure_ascii=False)
    assert len(exactly.encode()) == XCOM_LIMIT_BYTES
    assert parse_xcom_file(exactly) == "é" * ((XCOM_LIMIT_BYTES - 2) // 2)
    with pytest.raises(XComError):
        parse_xcom_file(exactly[:-1] + 'é"')


def test_bytes_that_are_not_utf8_are_rejected() -> None:
    with pytest.raises(XComError, match="not UTF-8"):
        parse_xcom_file(b'"\xff"')


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("one\ntwo\n", "two"),
        ("one\ntwo", "two"),
        ("one\ntwo  \n\n   \n", "two"),
        ("  indented\r\n", "  indented"),
        ('{"a": 1}\n', '{"a": 1}'),
    ],
)
def test_bash_pushes_its_last_non_empty_line_as_a_string(stdout: str, expected: str) -> None:
    assert last_line_xcom(stdout) == expected


@pytest.mark.parametrize("stdout", ["", "\n\n", "   \n"])
def test_bash_without_output_pushes_nothing(stdout: str) -> None:
    assert last_line_xcom(stdout) is NO_XCOM


def test_an_overlong_last_line_is_rejected_like_a_file() -> None:
    with pytest.raises(XComError, match=r"last line of stdout \(5000 bytes\) is over the 4096-byte limit"):
        last_line_xcom("ok\n" + "y" * 5000 + "\n")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_encode_then_parse_gives_the_value_back(value: Any) -> None:
    assert parse_xcom_file(encode_xcom(value)) == value


def test_no_value_encodes_as_an_empty_file() -> None:
    assert encode_xcom(NO_XCOM) == ""
    assert parse_xcom_file(encode_xcom(NO_XCOM)) is NO_XCOM


def test_encode_refuses_what_cannot_be_stored() -> None:
    with pytest.raises(XComError, match="not JSON-serializable"):
        encode_xcom({1, 2})
    with pytest.raises(XComError, match="not JSON-serializable"):
        encode_xcom(float("nan"))
    with pytest.raises(XComError, match="over the 4096-byte limit"):
        encode_xcom(list(range(2000)))


@pytest.mark.parametrize(
    "value",
    [
        NO_XCOM,
        None,
        False,
        0,
        0.0,
        "",
        [],
        {},
        "0",
        "false",
        "False",
        "FALSE",
        " false\n",
        "None",
        "null",
        "  ",
    ],
)
def test_falsy_values_short_circuit(value: Any) -> None:
    assert is_falsy(value)


@pytest.mark.parametrize("value", [True, 1, -1, "true", "yes", "1", "no", [0], {"a": None}, "anything"])
def test_truthy_values_do_not(value: Any) -> None:
    assert not is_falsy(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a", ("a",)),
        (" a \n", ("a",)),
        (["a", "b"], ("a", "b")),
        (["a", "a"], ("a",)),
        ('["a", "b"]', ("a", "b")),
        ([], ()),
        (None, ()),
        (NO_XCOM, ()),
        ("", ()),
    ],
)
def test_branch_targets(value: Any, expected: tuple[str, ...]) -> None:
    assert branch_targets(value) == expected


@pytest.mark.parametrize("value", [3, {"a": 1}, ["a", 2], "[not json", True])
def test_branch_targets_of_the_wrong_shape_are_an_error(value: Any) -> None:
    with pytest.raises(XComError, match="branch return value"):
        branch_targets(value)
