"""core.loading: DAG files to DAG objects, or every problem with its wire path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kubeflowlite.core import loading
from kubeflowlite.core.loading import load_dag_file, load_dags, parse_dag
from kubeflowlite.core.validation import InvalidDAGError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def doc(name: str = "demo", tasks: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": name},
        "spec": {"tasks": tasks if tasks is not None else [{"name": "t", "bash": "true"}], **spec},
    }


def problems(obj: Any) -> list[str]:
    with pytest.raises(InvalidDAGError) as caught:
        parse_dag(obj, source="f.yaml")
    assert caught.value.source == "f.yaml"
    return [str(issue) for issue in caught.value.issues]


def test_every_example_loads() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        assert load_dag_file(path), path


def test_parse_dag() -> None:
    dag = parse_dag(doc(schedule="@daily", defaults={"retryDelay": "5m"}))
    assert dag.dag_id == "demo" and dag.spec.defaults.retry_delay == "5m"


def test_wire_paths_and_readable_messages() -> None:
    found = problems(
        doc(
            tasks=[
                {"name": "a", "bash": "x"},
                {"name": "b", "bash": "x"},
                {
                    "name": "c",
                    "bash": "x",
                    "retries": -1,
                    "triggerRule": "sometimes",
                    "retryDelay": "5 mins",
                    "colour": 1,
                },
            ],
            maxActiveRuns="many",
        )
    )
    assert "spec.tasks[2].retries: must be >= 0 (got -1)" in found
    rule = next(m for m in found if m.startswith("spec.tasks[2].triggerRule: "))
    assert "invalid value 'sometimes'; valid values: all_success, all_failed" in rule and "always" in rule
    assert any(m.startswith("spec.tasks[2].retryDelay: not a duration: '5 mins'") for m in found)
    assert "spec.tasks[2].colour: unknown field" in found
    assert any(m.startswith("spec.maxActiveRuns: ") and "'many'" in m for m in found)


def test_snake_case_keys_are_reported_with_their_wire_path() -> None:
    found = problems(doc(tasks=[{"name": "a", "bash": "x", "trigger_rule": "never"}]))
    assert any(m.startswith("spec.tasks[0].triggerRule: invalid value 'never'") for m in found)


def test_missing_fields_and_wrong_kind() -> None:
    assert "spec.tasks[0].name: required field is missing" in problems(doc(tasks=[{"bash": "x"}]))
    assert problems({**doc(), "kind": "DAGRun"}) == ["kind: kind is 'DAGRun', expected 'DAG'"]
    assert problems(["not", "a", "mapping"]) == ["a DAG document must be a mapping, not a list"]
    assert "spec.tasks: a DAG needs at least one task" in problems(doc(tasks=[]))


def test_structural_and_dag_level_problems_are_reported_together() -> None:
    found = problems(
        doc(
            tasks=[
                {"name": "a", "bash": "x", "retries": "lots", "dependsOn": ["ghost"]},
                {"name": "-bad", "bash": "x"},
                {"name": "c", "bash": "x", "dependsOn": ["-bad"]},
                {"name": "a", "bash": "x"},
            ]
        )
    )
    assert any(m.startswith("spec.tasks[0].retries: ") for m in found)
    assert any(m.startswith("spec.tasks[1].name: invalid task name '-bad'") for m in found)
    assert "spec.tasks[0].dependsOn[0]: unknown upstream task 'ghost'" in found
    assert "spec.tasks[3].name: duplicate task name 'a' (also spec.tasks[0])" in found
    assert not any("'-bad'" in m and "upstream" in m for m in found)  # the badly named task still resolves


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("kind: DAG\nmetadata:\n  name: x\nspec:\n  tasks: [\n    {name: a\n")
    with pytest.raises(InvalidDAGError) as caught:
        load_dag_file(path)
    (issue,) = caught.value.issues
    assert issue.path.startswith("line ") and issue.message.startswith("YAML syntax error")
    assert str(caught.value).startswith(f"{path}: line ")


def test_multi_document_file(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([doc("first"), None, doc("second")]))
    assert [d.dag_id for d in load_dag_file(path)] == ["first", "second"]


def test_multi_document_problems_name_their_document(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        yaml.safe_dump_all([doc("first"), {"kind": "ConfigMap"}, doc("first"), doc("x", timezone="Nowhere")])
    )
    with pytest.raises(InvalidDAGError) as caught:
        load_dag_file(path)
    assert [str(i) for i in caught.value.issues] == [
        "document 2: kind: kind is 'ConfigMap', expected 'DAG'",
        "document 3: metadata.name: DAG 'first' is defined twice in this file (also document 1)",
        "document 4: spec.timezone: unknown time zone 'Nowhere' (expected an IANA name such as UTC or Europe/Berlin)",
    ]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n---\n")
    with pytest.raises(InvalidDAGError, match="no DAG in file"):
        load_dag_file(path)


def test_load_dags_from_a_directory_collects_every_file(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(doc("a")))
    (tmp_path / "nested" / "b.yml").write_text(yaml.safe_dump(doc("b")))
    (tmp_path / "notes.txt").write_text("not a DAG")
    assert sorted(d.dag_id for d in load_dags(tmp_path)) == ["a", "b"]
    assert [d.dag_id for d in load_dags(tmp_path / "a.yaml")] == ["a"]
    (tmp_path / "bad1.yaml").write_text(yaml.safe_dump(doc("c", timezone="Nowhere")))
    (tmp_path / "nested" / "bad2.yaml").write_text("{{{")
    with pytest.raises(InvalidDAGError) as caught:
        load_dags(tmp_path)
    paths = [issue.path for issue in caught.value.issues]
    assert paths[0] == f"{tmp_path / 'bad1.yaml'}: spec.timezone"
    assert paths[1].startswith(f"{tmp_path / 'nested' / 'bad2.yaml'}: line 1")


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(documents=st.lists(YAML_VALUES, min_size=1, max_size=3), flow=st.sampled_from([None, True, False]))
def test_libyaml_reads_the_documents_pyyaml_reads(documents: list[Any], flow: bool | None) -> None:
    """The fast (libyaml) path gives exactly what PyYAML's own safe loader gives."""
    text = yaml.safe_dump_all(documents, default_flow_style=flow, allow_unicode=True)
    assert loading._yaml_documents(text) == list(yaml.safe_load_all(text))


def test_the_fast_path_is_libyaml_where_pyyaml_has_it() -> None:
    assert yaml.__with_libyaml__  # the PyYAML wheels we install carry it
    assert loading._FAST_YAML_LOADER.__name__ == "CSafeLoader"
