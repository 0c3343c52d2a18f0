"""XCom return values: how they are read, how big they may be, and what they mean to the engine.

A task returns a value by writing JSON to the file named by `KFL_XCOM_FILE`. In a
Pod that file is the container's terminationMessagePath, which the kubelet cuts at
4096 bytes, so the same limit holds everywhere (locally too): a run behaves the
same wherever it runs, and an oversized value is a clear task failure instead of
a truncated, unparsable one. A bash task that writes no file returns the last
non-empty line of its stdout as a string, as Airflow's BashOperator does.

The engine reads two kinds of meaning from a value: the task ids a branch task
chose (`branch_targets`) and whether a short-circuit task said stop (`is_falsy`).

Keys other than `return_value` (a Python task's `ti.xcom_push(key=..., value=...)`)
travel in the same single value: `{"__kfl_xcoms__": {key: value, ...}}`, the
return value under `return_value` (`pack`); `select` reads one key back, for
`ti.xcom_pull(key=...)` in templates and Python tasks alike. A key of a plain dict
return value is found too (Airflow's `multiple_outputs`).
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any


class _Missing(Enum):
    MISSING = "MISSING"


NO_XCOM = _Missing.MISSING
"""Marker: the try pushed no return value (distinct from pushing null). Re-exported by core.engine."""

XCOM_LIMIT_BYTES = 4096
"""A Pod's termination message limit; every return value must fit in it as JSON."""

_EXCERPT = 60
_FALSY_STRINGS = frozenset({"", "0", "false", "none", "null"})


KEYED_MARKER = "__kfl_xcoms__"
"""The one key of a stored value that holds several XCom keys (see `pack`)."""

RETURN_VALUE = "return_value"

XCOM_REF_KEY = "__kfl_xcom__"
"""In a Python task's arguments, {"__kfl_xcom__": {"task": T, "key": K}} stands for task T's XCom K."""


def pack(return_value: Any, pushed: dict[str, Any]) -> Any:
    """The value to store for a try that returned `return_value` and pushed `pushed` (key -> value)."""
    extra = {key: value for key, value in pushed.items() if key != RETURN_VALUE}
    if RETURN_VALUE in pushed and return_value is NO_XCOM:
        return_value = pushed[RETURN_VALUE]
    if not extra:
        return return_value
    if return_value is not NO_XCOM:
        extra[RETURN_VALUE] = return_value
    return {KEYED_MARKER: extra}


def select(value: Any, key: str | None = RETURN_VALUE) -> Any:
    """XCom `key` of a stored value (None if absent): the return value, a pushed key, or a dict key."""
    if value is NO_XCOM:
        return None
    if isinstance(value, dict) and set(value) == {KEYED_MARKER} and isinstance(value[KEYED_MARKER], dict):
        return value[KEYED_MARKER].get(key or RETURN_VALUE)
    if key in (None, RETURN_VALUE):
        return value
    if isinstance(value, dict):
        return value.get(key)
    return None


def _return_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {KEYED_MARKER} and isinstance(value[KEYED_MARKER], dict):
        return value[KEYED_MARKER].get(RETURN_VALUE, NO_XCOM)
    return value


class XComError(ValueError):
    """A return value that cannot be stored; the message is shown to the user as the task's failure."""


def _check_size(size: int, *, what: str = "return value") -> None:
    if size > XCOM_LIMIT_BYTES:
        raise XComError(
            f"{what} is {size} bytes, over the {XCOM_LIMIT_BYTES}-byte limit of a Pod termination message"
        )


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= _EXCERPT else flat[: _EXCERPT - 3] + "...")


def parse_xcom_file(data: bytes | str) -> Any:
    """The value in an XCom file: parsed JSON, or NO_XCOM if the file is empty (or only whitespace)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    _check_size(len(raw))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise XComError(f"return value is not UTF-8 text (byte {error.start})") from None
    if not text.strip():
        return NO_XCOM
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise XComError(
            f"return value is not valid JSON ({error.msg} at line {error.lineno} column {error.colno}): "
            f"{_excerpt(text)}"
        ) from None


def last_line_xcom(stdout: str) -> Any:
    """A bash task's implicit return value: its last non-empty stdout line (right-stripped), else NO_XCOM."""
    for line in reversed(stdout.splitlines()):
        value = line.rstrip()
        if value.strip():
            if len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > XCOM_LIMIT_BYTES:
                raise XComError(last_line_too_long(len(value.encode("utf-8"))))
            return value
    return NO_XCOM


def last_line_too_long(line_bytes: int | None) -> str:
    """Why a last output line cannot be a return value (`line_bytes`: its length, if known)."""
    size = f" ({line_bytes} bytes)" if line_bytes is not None else ""
    return (
        f"last line of stdout{size} is over the {XCOM_LIMIT_BYTES}-byte limit of a Pod termination "
        "message as a JSON string"
    )


def encode_xcom(value: Any) -> str:
    """The JSON text stored for `value` (NO_XCOM encodes as ''); XComError if it cannot be stored."""
    if value is NO_XCOM:
        return ""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise XComError(f"return value is not JSON-serializable: {error}") from None
    _check_size(len(text.encode("utf-8")))
    return text


def is_falsy(value: Any) -> bool:
    """Does a short-circuit task's return value say "skip everything downstream"?

    Python falsiness (None, False, 0, "", [], {}) plus the strings a shell prints for
    it: "0", "false", "none", "null" in any case, and blank strings, because a bash
    task's value is its last stdout line as a string. No return value at all counts
    as None, as a Python callable that returns nothing does.
    """
    value = _return_value(value)
    if value is NO_XCOM:
        return True
    if isinstance(value, str):
        return value.strip().lower() in _FALSY_STRINGS
    return not value


def branch_targets(value: Any) -> tuple[str, ...]:
    """The task ids a branch task chose: a task id, a list of task ids, or none at all.

    None or no return value chooses nothing (every direct downstream task is
    skipped). A string that holds a JSON list (a bash task echoing `["a", "b"]`) is
    read as that list. Raises XComError for any other shape.
    """
    value = _return_value(value)
    if value is NO_XCOM or value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise XComError(f"branch return value is not a valid JSON list: {_excerpt(text)}") from None
        else:
            return (text,) if text else ()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(dict.fromkeys(item.strip() for item in value))
    raise XComError(
        f"branch return value must be a task id or a list of task ids, got {type(value).__name__}: "
        f"{_excerpt(json.dumps(value, default=str))}"
    )
