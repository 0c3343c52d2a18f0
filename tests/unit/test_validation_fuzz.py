"""Generated DAG objects, valid and broken at random places: loading never crashes, errors name a path.

Each example is examples/tutorial.yaml with a few values replaced, removed or added
at random paths (wrong types, empty and huge strings, negative numbers, odd names,
nested junk), or an arbitrary JSON document. Whatever it is, `parse_dag` returns a
DAG or raises InvalidDAGError whose every issue names the field it is about, and
the DAG it returns passes validation again (idempotent). 10,000 examples.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeflowlite.core.loading import parse_dag
from kubeflowlite.core.validation import InvalidDAGError, validate_dag

BASE = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "tutorial.yaml").read_text())

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["", "a-", "-a", "A", "x" * 300, "5m", "1h30m", "-1s", "* * * * *", "@daily", "bogus cron",
                       "{{ ds", "{{ nope.x }}", "2020-02-30", "2020-02-09T00:00:00Z", "UTC", "Mars/Olympus",
                       "all_success", "one_dne", "print_date", "sleep", "é☃", "a" * 70])
)  # fmt: skip
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)  # fmt: skip


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        candidates = [p for p in paths(doc) if p]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(junk)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(junk)
        else:
            parent.append(draw(junk))
    return doc


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=mutated() | junk)
def test_generated_dags_never_crash_loading_and_errors_name_a_path(doc: Any) -> None:
    try:
        dag = parse_dag(doc, source="fuzz.yaml")
    except InvalidDAGError as error:
        assert error.issues
        top_level = not isinstance(doc, dict)
        for issue in error.issues:
            assert issue.message
            assert issue.path or top_level, f"an issue without a path: {issue}"
        return
    assert validate_dag(dag) == []
