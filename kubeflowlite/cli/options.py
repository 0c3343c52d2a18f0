"""The options and arguments every command reads alike: dates, run conf, the DAG file.

click ParamTypes parse a value once for every command that takes it (a malformed
value is a usage error: exit 2, with the option named), and `load_dag` is the one
way a command gets its DAG from a file, with one error path.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from kubeflowlite.core.runconf import parse_conf_json

if TYPE_CHECKING:
    from kubeflowlite.api.dag import DAG

# The DAG types and the loader are imported where they are used: `kubeflowlite --help`
# imports this module (for the option types) and nothing it does not need.

EXIT_INVALID = 2

F = TypeVar("F", bound=Callable[..., Any])


class DateType(click.ParamType[datetime]):
    """A logical date: YYYY-MM-DD or RFC 3339 (UTC unless it says otherwise)."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        from kubeflowlite.api.times import parse_time

        try:
            return parse_time(str(value))
        except ValueError as error:
            self.fail(f"invalid date {value!r}: {error}", param, ctx)


class ConfType(click.ParamType[dict[str, Any]]):
    """--conf: a JSON object."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        try:
            return parse_conf_json(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


class KeyValueType(click.ParamType[tuple[str, Any]]):
    """-p key=value: the value is read as JSON when it is JSON (3, true, [1]), else kept as a string."""

    name = "key=value"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, Any]:
        if isinstance(value, tuple):
            return value
        key, sep, raw = str(value).partition("=")
        if not sep or not key:
            self.fail(f"-p expects key=value, got {value!r}", param, ctx)
        try:
            return key, json.loads(raw)
        except json.JSONDecodeError:
            return key, raw


DATE = DateType()
CONF = ConfType()
KEY_VALUE = KeyValueType()


def conf_options(command: F) -> F:
    """--conf JSON and repeatable -p key=value; the command gets both (see `run_conf`)."""
    command = click.option(
        "-p",
        "--param",
        "params",
        multiple=True,
        type=KEY_VALUE,
        metavar="KEY=VALUE",
        help="One conf entry; repeatable.",
    )(command)
    return click.option("--conf", "conf", type=CONF, help="Run conf as a JSON object (overrides params).")(
        command
    )


def run_conf(conf: dict[str, Any] | None, params: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The run conf: --conf, then each -p on top."""
    return {**(conf or {}), **dict(params)}


def now_if_none(date: datetime | None) -> datetime:
    """A date option's value, or now (to the second) as for a manual trigger."""
    return date if date is not None else datetime.now(UTC).replace(microsecond=0)


def fail_invalid(message: str) -> NoReturn:
    """Print `message` to stderr and exit 2 (invalid input)."""
    click.echo(message, err=True)
    sys.exit(EXIT_INVALID)


def load_dag(path: Path, dag_name: str | None) -> DAG:
    """The DAG to act on: the only one in `path` (YAML, Python, or a folder of them), or the one named
    with --dag. Exit 2 if invalid."""
    from kubeflowlite import dagfiles
    from kubeflowlite.core.validation import InvalidDAGError

    try:
        dags = dagfiles.load_dags(path)
    except InvalidDAGError as error:
        fail_invalid(f"{path}: invalid DAG file\n{error}")
    except (OSError, UnicodeDecodeError) as error:
        fail_invalid(f"{path}: cannot read: {error}")
    if dag_name is not None:
        for dag in dags:
            if dag.dag_id == dag_name:
                return dag
        found = ", ".join(d.dag_id for d in dags) or "none"
        fail_invalid(f"{path}: no DAG named {dag_name!r} (found: {found})")
    if len(dags) != 1:
        found = ", ".join(d.dag_id for d in dags) or "none"
        fail_invalid(f"{path} defines {len(dags)} DAGs ({found}): choose one with --dag")
    return dags[0]
