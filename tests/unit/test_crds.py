"""The committed CRDs are exactly what the API models generate, and they are structural."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeflowlite.k8s import crdgen

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
CHART_CRDS = ROOT / "helm" / "kubeflowlite" / "crds"
RENDERED = crdgen.render_crds()


def schema_of(filename: str) -> dict[str, Any]:
    crd = yaml.safe_load(RENDERED[filename])
    [version] = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")


def test_committed_crds_match_the_models() -> None:
    committed = {p.name: p.read_text(encoding="utf-8") for p in sorted(CRDS.glob("*.yaml"))}
    assert committed.keys() == RENDERED.keys(), "crds/ has other files than `make crds` generates"
    for name, text in RENDERED.items():
        assert committed[name] == text, f"crds/{name} is stale: run `make crds` and commit the result"


def test_chart_ships_the_same_crds() -> None:
    for name, text in RENDERED.items():
        chart_copy = CHART_CRDS / name
        assert chart_copy.exists(), f"{chart_copy} is missing: copy crds/{name} into the chart"
        assert chart_copy.read_text(encoding="utf-8") == text, f"{chart_copy} differs from crds/{name}"


def test_rendering_is_deterministic() -> None:
    assert crdgen.render_crds() == RENDERED


def test_yaml_has_no_anchors() -> None:
    for name, text in RENDERED.items():
        assert "&id" not in text and "*id" not in text, f"{name} uses YAML anchors; write plain copies"


def test_write_crds_writes_every_file(tmp_path: Path) -> None:
    written = crdgen.write_crds(tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(RENDERED)
    for path in written:
        assert path.read_text(encoding="utf-8") == RENDERED[path.name]


@pytest.mark.parametrize("filename", sorted(RENDERED))
def test_schemas_are_structural(filename: str) -> None:
    for path, node in walk(schema_of(filename)):
        assert node.get("type") or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        for forbidden in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const"):
            assert forbidden not in node, f"{path} still has {forbidden}"
        assert node.get("additionalProperties") is not False, f"{path}: additionalProperties false"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("default", 0) is not None, f"{path}: null default"
        if "enum" in node:
            assert node["type"] == "string", path


def test_dag_schema_carries_validation_and_docs() -> None:
    spec = schema_of("kubeflowlite.io_dags.yaml")["properties"]["spec"]
    assert spec["required"] == ["tasks"]
    tasks = spec["properties"]["tasks"]
    assert tasks["description"] == "The tasks of the DAG."
    assert tasks["minItems"] == 1
    task = tasks["items"]["properties"]
    assert task["retries"]["minimum"] == 0
    assert "all_success" in task["triggerRule"]["enum"]
    assert task["triggerRule"]["nullable"] is True
    assert task["name"]["pattern"].startswith("^")
    assert task["pod"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "container" in task["pod"]["description"]
    assert spec["properties"]["params"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["properties"]["podCleanup"]["enum"] == ["keep", "onSuccess", "onRunEnd"]
    assert spec["properties"]["paused"]["default"] is False
    assert "default" not in task["retries"], "unset task fields must stay unset so DAG defaults apply"
    assert tasks["x-kubernetes-list-type"] == "map" and tasks["x-kubernetes-list-map-keys"] == ["name"]


def test_status_schemas() -> None:
    dag_status = schema_of("kubeflowlite.io_dags.yaml")["properties"]["status"]["properties"]
    assert {"conditions", "nextRun", "lastRun", "lastRunState", "observedGeneration"} <= dag_status.keys()
    assert dag_status["conditions"]["x-kubernetes-list-type"] == "map"
    run = schema_of("kubeflowlite.io_dagruns.yaml")["properties"]
    assert run["spec"]["properties"]["conf"]["x-kubernetes-preserve-unknown-fields"] is True
    assert run["spec"]["properties"]["runType"]["enum"] == ["scheduled", "manual", "backfill"]
    status = run["status"]["properties"]
    assert {
        "state",
        "tasks",
        "tasksSummary",
        "startTime",
        "duration",
        "dagSpec",
        "conditions",
    } <= status.keys()
    instance = status["tasks"]["additionalProperties"]["properties"]
    assert {"state", "tryNumber", "podName", "startTime", "endTime", "exitCode", "message"} <= instance.keys()


def test_names_and_printer_columns() -> None:
    dags = yaml.safe_load(RENDERED["kubeflowlite.io_dags.yaml"])
    runs = yaml.safe_load(RENDERED["kubeflowlite.io_dagruns.yaml"])
    assert dags["metadata"]["name"] == "dags.kubeflowlite.io"
    assert dags["spec"]["names"] | {} == {
        "kind": "DAG",
        "listKind": "DAGList",
        "plural": "dags",
        "singular": "dag",
        "shortNames": ["dag"],
        "categories": ["kubeflowlite"],
    }
    assert runs["spec"]["names"]["shortNames"] == ["dr"]
    assert runs["spec"]["names"]["categories"] == ["kubeflowlite"]
    for crd in (dags, runs):
        [version] = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1"
        assert version["subresources"] == {"status": {}}
    [dag_version] = dags["spec"]["versions"]
    [run_version] = runs["spec"]["versions"]
    assert [c["name"] for c in dag_version["additionalPrinterColumns"]] == [
        "Schedule",
        "Paused",
        "Last Run State",
        "Next Run",
        "Age",
    ]
    assert [(c["name"], c["jsonPath"]) for c in run_version["additionalPrinterColumns"]] == [
        ("DAG", ".spec.dagName"),
        ("Logical Date", ".spec.logicalDate"),
        ("State", ".status.state"),
        ("Tasks", ".status.tasksSummary"),
        ("Started", ".status.startTime"),
        ("Duration", ".status.duration"),
        ("Age", ".metadata.creationTimestamp"),
    ]
