"""Reading DAG files: YAML to validated DAG objects, or every problem with its path.

A DAG file is what users edit by hand, so a broken one must explain itself in the
file's own terms: wire (camelCase) paths such as `spec.tasks[2].retries`, the valid
values of an enum, "unknown field" for a typo, the line of a YAML syntax error. The
structural errors (pydantic) and the whole-DAG errors (core.validation) come out the
same way, as `InvalidDAGError` with a list of `Issue`s.

This is the one module of core that reads files.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from kubeflowlite.api.dag import DAG
from kubeflowlite.api.names import DAG_NAME_RULE, TASK_NAME_RULE
from kubeflowlite.core.validation import InvalidDAGError, Issue, validate_dag

__all__ = ["DAG_FILE_SUFFIXES", "issues_from", "load_dag_file", "load_dags", "parse_dag"]

DAG_FILE_SUFFIXES = (".yaml", ".yml")

_FAST_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""PyYAML's safe loader on libyaml (its C extension, in every PyYAML wheel) where there is one:
the same documents, about 10 times faster than the pure-Python parser (2 ms against 20 ms for a
100-task file)."""


def parse_dag(obj: Mapping[str, Any], *, source: str = "<input>") -> DAG:
    """`obj` (a decoded DAG document) as a DAG; InvalidDAGError with every structural or DAG-level issue."""
    if not isinstance(obj, Mapping):
        raise InvalidDAGError([Issue("", f"a DAG document must be a mapping, not {_kind_of(obj)}")], source)
    kind = obj.get("kind")
    if kind != "DAG":
        message = "missing kind (expected kind: DAG)" if kind is None else f"kind is {kind!r}, expected 'DAG'"
        raise InvalidDAGError([Issue("kind", message)], source)
    try:
        dag = DAG.model_validate(dict(obj))
    except ValidationError as error:
        issues = issues_from(error)
        salvaged = _salvage(obj, error)
        if salvaged is not None:
            reported = {issue.path for issue in issues}
            issues += [issue for issue in validate_dag(salvaged) if issue.path not in reported]
        raise InvalidDAGError(issues, source) from None
    issues = validate_dag(dag)
    if issues:
        raise InvalidDAGError(issues, source)
    return dag


_SALVAGE_ROUNDS = 4


def _salvage(obj: Mapping[str, Any], error: ValidationError) -> DAG | None:
    """A best-effort DAG despite structural errors, so DAG-level problems are reported in the same pass.

    Each offending value is dropped (its default applies); a DAG or task name that only
    fails its pattern is parsed under a placeholder and put back afterwards, so
    dependencies on it still resolve. None when the document cannot be repaired this way
    (a required field is missing, a list item has the wrong type).
    """
    data: dict[str, Any] = copy.deepcopy(dict(obj))
    names: dict[tuple[str | int, ...], Any] = {}
    for _ in range(_SALVAGE_ROUNDS):
        for detail in error.errors(include_url=False):
            loc = tuple(part for part in detail["loc"] if not _is_union_tag(part))
            if not _repair(data, loc, detail["type"], names):
                return None
        try:
            dag = DAG.model_validate(data)
        except ValidationError as again:
            error = again
            continue
        return _restore_names(dag, names)
    return None


def _repair(
    data: dict[str, Any], loc: tuple[str | int, ...], kind: str, names: dict[tuple[str | int, ...], Any]
) -> bool:
    if not loc or kind == "missing" or isinstance(loc[-1], int):
        return False
    parent: Any = data
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return True  # already removed with an enclosing value
    if not isinstance(parent, dict) or loc[-1] not in parent:
        return True
    is_task_name = len(loc) == 4 and loc[:2] == ("spec", "tasks") and loc[3] == "name"
    if loc == ("metadata", "name") or is_task_name:
        if loc in names or not isinstance(parent[loc[-1]], str):
            return False
        names[loc] = parent[loc[-1]]
        parent[loc[-1]] = f"kfl-placeholder-{len(names)}"
        return True
    del parent[loc[-1]]
    return True


def _restore_names(dag: DAG, names: dict[tuple[str | int, ...], Any]) -> DAG:
    if not names:
        return dag
    tasks = list(dag.spec.tasks)
    metadata = dag.metadata
    for loc, original in names.items():
        if loc == ("metadata", "name"):
            metadata = metadata.model_copy(update={"name": original})
        else:
            index = int(loc[2])
            tasks[index] = tasks[index].model_copy(update={"name": original})
    spec = dag.spec.model_copy(update={"tasks": tasks})
    return dag.model_copy(update={"metadata": metadata, "spec": spec})


def load_dag_file(path: str | Path) -> list[DAG]:
    """Every DAG of a (multi-document) YAML file; empty documents are skipped, others must be kind DAG.

    InvalidDAGError lists the problems of every document, each prefixed with its
    document number when the file holds several; OSError if the file cannot be read.
    """
    file = Path(path)
    source = str(path)
    text = file.read_text(encoding="utf-8")
    try:
        documents = _yaml_documents(text)
    except yaml.YAMLError as error:
        raise InvalidDAGError([_yaml_issue(error)], source) from None
    non_empty = [(index, document) for index, document in enumerate(documents) if document is not None]
    if not non_empty:
        raise InvalidDAGError([Issue("", "no DAG in file (it is empty)")], source)
    dags: list[DAG] = []
    issues: list[Issue] = []
    several = len(documents) > 1
    names: dict[str, int] = {}
    for index, document in non_empty:
        prefix = f"document {index + 1}: " if several else ""
        try:
            dag = parse_dag(document, source=source)
        except InvalidDAGError as error:
            issues += [
                Issue(prefix + issue.path if issue.path else prefix.rstrip(": "), issue.message)
                for issue in error.issues
            ]
            continue
        if dag.dag_id in names:
            issues.append(
                Issue(
                    f"{prefix}metadata.name",
                    f"DAG {dag.dag_id!r} is defined twice in this file (also document {names[dag.dag_id] + 1})",
                )
            )
            continue
        names[dag.dag_id] = index
        dags.append(dag)
    if issues:
        raise InvalidDAGError(issues, source)
    return dags


def _yaml_documents(text: str) -> list[Any]:
    """The documents of a YAML text, parsed by libyaml; a text it refuses is parsed again by
    PyYAML's own parser, whose errors say more (and point at the line itself, not past it)."""
    try:
        return list(yaml.load_all(text, Loader=_FAST_YAML_LOADER))
    except yaml.YAMLError:
        return list(yaml.safe_load_all(text))


def load_dags(path: str | Path) -> list[DAG]:
    """The DAGs of a file, or of every *.yaml/*.yml file under a directory (recursively, sorted).

    Problems of all files are collected into one InvalidDAGError (source: the path
    given), each issue's path prefixed with its file.
    """
    root = Path(path)
    if not root.is_dir():
        return load_dag_file(root)
    files = sorted(p for p in root.rglob("*") if p.suffix in DAG_FILE_SUFFIXES and p.is_file())
    dags: list[DAG] = []
    issues: list[Issue] = []
    for file in files:
        try:
            dags += load_dag_file(file)
        except InvalidDAGError as error:
            issues += [
                Issue(f"{file}: {issue.path}" if issue.path else str(file), issue.message)
                for issue in error.issues
            ]
        except (OSError, UnicodeDecodeError) as error:
            issues.append(Issue(str(file), f"cannot read: {error}"))
    if issues:
        raise InvalidDAGError(issues, str(path))
    return dags


# -- error conversion -------------------------------------------------------------------


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _yaml_issue(error: yaml.YAMLError) -> Issue:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    message = f"YAML syntax error: {problem}"
    if context:
        message += f" ({context})"
    if mark is not None:
        return Issue(f"line {mark.line + 1}, column {mark.column + 1}", message)
    return Issue("", message)


def _wire_path(loc: Sequence[int | str], model: type[BaseModel] = DAG) -> str:
    """A pydantic error location as a wire path: ('spec', 'tasks', 2, 'retries') -> spec.tasks[2].retries.

    Locations are reported with aliases (pydantic validates by alias first), but a
    snake_case key would appear as written; model field names are mapped to their aliases.
    """
    text = ""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            current = _item_model(current)
            continue
        name = str(part)
        current, name = _descend(current, name)
        if current is _MAPPING_KEYS:
            text += f"[{name}]"
            current = None
            continue
        if not _PLAIN_KEY.match(name):  # an empty or odd key (`""`, `a.b`) is quoted, so it shows
            text += f"[{json.dumps(name, ensure_ascii=False)}]"
            continue
        text += f".{name}" if text else name
    return text


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


_MAPPING_KEYS = object()


def _descend(model: Any, key: str) -> tuple[Any, str]:
    """The model class reached through `key` and the key's wire spelling."""
    if model is _MAPPING_VALUES:
        return _MAPPING_KEYS, key
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None, key
    for field_name, info in model.model_fields.items():
        alias = info.alias or field_name
        if key in (alias, field_name):
            return _annotation_model(info.annotation), alias
    return None, key


_MAPPING_VALUES = object()


def _annotation_model(annotation: Any) -> Any:
    """The BaseModel (or list/dict marker) a field's annotation leads to, for walking paths."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is not type(None):
                return _annotation_model(arg)
        return None
    if origin is list:
        return ("list", _annotation_model(args[0]) if args else None)
    if origin is dict:
        return _MAPPING_VALUES
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _item_model(current: Any) -> Any:
    if isinstance(current, tuple) and current and current[0] == "list":
        return current[1]
    return None


def _enum_values(model: Any, loc: Sequence[int | str]) -> list[str] | None:
    """The valid values of the enum field at `loc`, if it is one."""
    import types
    import typing

    current: Any = model
    annotation: Any = None
    for part in loc:
        if isinstance(part, int):
            current = _item_model(current)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        for field_name, info in current.model_fields.items():
            if part in (info.alias or field_name, field_name):
                annotation = info.annotation
                current = _annotation_model(annotation)
                break
        else:
            return None
    candidates = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return [str(member.value) for member in candidate]
    return None


def _message(error: ErrorDetails, model: type[BaseModel] = DAG) -> str:
    kind = error["type"]
    loc = error["loc"]
    value = error.get("input")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error" and isinstance((error.get("ctx") or {}).get("error"), ValueError):
        return str((error.get("ctx") or {})["error"])  # our own validator's words, without pydantic's prefix
    if kind == "enum":
        valid = _enum_values(model, loc)
        if valid:
            return f"invalid value {value!r}; valid values: {', '.join(valid)}"
    if kind == "literal_error":
        expected = (error.get("ctx") or {}).get("expected")
        return f"invalid value {value!r}; expected {expected}"
    if kind == "string_pattern_mismatch" and loc and str(loc[-1]) in _DURATION_KEYS:
        return f"not a duration: {value!r} (expected e.g. 30s, 5m, 1h30m, 1d, 250ms, or a number of seconds)"
    if kind in ("string_pattern_mismatch", "string_too_long") and tuple(loc) == ("metadata", "name"):
        return f"invalid DAG name {value!r}: {DAG_NAME_RULE}"
    if kind in ("string_pattern_mismatch", "string_too_long") and len(loc) == 4 and loc[3] == "name":
        return f"invalid task name {value!r}: {TASK_NAME_RULE}"
    ctx = error.get("ctx") or {}
    if kind == "too_short" and tuple(loc) == ("spec", "tasks"):
        return "a DAG needs at least one task"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bound = next(iter(ctx.values()), None)
        symbol = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}[
            kind
        ]
        return f"must be {symbol} {bound} (got {value!r})"
    for prefix, expected in _EXPECTED.items():
        if kind.startswith(prefix) and (kind.endswith("_type") or kind.endswith("_parsing")):
            return f"expected {expected}, got {_describe(value)}"
    return error["msg"]


_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "dict": "a mapping",
    "list": "a list",
    "model": "a mapping",
}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return _kind_of(value)
    return f"{_kind_of(value)} {value!r}"


_DURATION_KEYS = {
    "retryDelay",
    "retry_delay",
    "maxRetryDelay",
    "max_retry_delay",
    "executionTimeout",
    "execution_timeout",
    "pokeInterval",
    "poke_interval",
    "timeout",
    "offset",
}


def issues_from(error: ValidationError, model: type[BaseModel] = DAG, prefix: str = "") -> list[Issue]:
    """Each of `error`'s problems as an Issue naming its wire path (under `prefix`, within `model`)."""
    issues: list[Issue] = []
    seen: set[tuple[str, str]] = set()
    for detail in error.errors(include_url=False):
        loc = [part for part in detail["loc"][:-1] if not _is_union_tag(part)]
        last = detail["loc"][-1:]
        # An unknown key is the user's, whatever it looks like (even "str" or "a[0]").
        if last and (detail["type"] == "extra_forbidden" or not _is_union_tag(last[0])):
            loc.append(last[0])
        issue = Issue(prefix + _wire_path(loc, model), _message({**detail, "loc": tuple(loc)}, model))
        key = (issue.path, issue.message)
        if key not in seen:
            seen.add(key)
            issues.append(issue)
    return issues


def _is_union_tag(part: int | str) -> bool:
    """pydantic adds the union member's type name (e.g. 'str', 'function-after[...]') to a location."""
    return isinstance(part, str) and (
        part in ("str", "int", "float", "bool", "list", "dict", "none") or "[" in part
    )
