"""The CRD and validation accept exactly the same DAG and task names.

The CRD side is read from the committed crds/kubeflowlite.io_dags.yaml (which test_crds keeps equal
to what crdgen generates) and evaluated as the apiserver does: the `pattern` with RE2
(the syntax and semantics of Go's regexp, which the apiserver uses), `minLength` and
`maxLength` counted in characters, and, for metadata.name, Kubernetes' own object
name rule plus the CRD's CEL length rule. The validation side is the whole loader
(`parse_dag`: the pydantic models, then validate_dag), as `kubeflowlite validate` and
the operator run it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import re2
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kubeflowlite.api import names
from kubeflowlite.core.loading import parse_dag
from kubeflowlite.core.validation import InvalidDAGError

CRD = yaml.safe_load((Path(__file__).parents[2] / "crds" / "kubeflowlite.io_dags.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
TASK_NAME_SCHEMA = SCHEMA["properties"]["spec"]["properties"]["tasks"]["items"]["properties"]["name"]

K8S_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""k8s.io/apimachinery/pkg/util/validation dns1123SubdomainFmt, at most 253 characters: every object name."""

_CEL_SIZE = re.compile(r"^self\.metadata\.name\.size\(\) <= (\d+)$")


def crd_accepts_string(schema: dict[str, Any], text: str) -> bool:
    if len(text) < schema.get("minLength", 0) or len(text) > schema.get("maxLength", len(text)):
        return False
    return "pattern" not in schema or re2.search(schema["pattern"], text) is not None


def cluster_accepts_dag_name(text: str) -> bool:
    """The apiserver's object name rule, then each of the CRD's CEL rules on metadata.name."""
    if not (len(text) <= 253 and re2.search(K8S_SUBDOMAIN, text)):
        return False
    for rule in SCHEMA.get("x-kubernetes-validations", []):
        limit = _CEL_SIZE.match(rule["rule"])
        assert limit is not None, f"a CEL rule this test does not know how to evaluate: {rule['rule']}"
        if len(text) > int(limit.group(1)):
            return False
    return True


def dag(name: str = "names", task: str = "t") -> dict[str, Any]:
    return {
        "apiVersion": "kubeflowlite.io/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": name},
        "spec": {"tasks": [{"name": task, "bash": "true"}]},
    }


def problems_at(obj: dict[str, Any], path: str) -> list[str]:
    try:
        parse_dag(obj)
    except InvalidDAGError as error:
        return [issue.message for issue in error.issues if issue.path == path]
    return []


NAME_CHARS = "abcxyzABCXYZ0189-_.é/ \n:"
candidates = st.one_of(
    st.text(alphabet=NAME_CHARS, max_size=80),
    st.from_regex(names.TASK_NAME_PATTERN, fullmatch=True),
    st.from_regex(names.DAG_NAME_PATTERN, fullmatch=True),
    st.integers(min_value=58, max_value=70).map(lambda n: "a" * n),
    st.integers(min_value=58, max_value=70).map(lambda n: "a." * (n // 2) + "b"),
)


@settings(max_examples=400)
@given(candidates)
@example("a-")
@example("a" * 70)
@example("a" * 63)
@example("a" * 64)
@example("a\n")
@example("A_b.c-D")
def test_the_crd_accepts_a_task_name_exactly_when_validation_does(text: str) -> None:
    validation_accepts = not problems_at(dag(task=text), "spec.tasks[0].name")
    assert crd_accepts_string(TASK_NAME_SCHEMA, text) == validation_accepts, text
    assert names.is_task_name(text) == validation_accepts


@settings(max_examples=400)
@given(candidates)
@example("a-")
@example("a" * 63)
@example("a" * 64)
@example("a.b")
@example("a\n")
@example("A")
def test_the_cluster_accepts_a_dag_name_exactly_when_validation_does(text: str) -> None:
    validation_accepts = not problems_at(dag(name=text), "metadata.name")
    assert cluster_accepts_dag_name(text) == validation_accepts, text
    assert names.is_dag_name(text) == validation_accepts


def test_a_rejected_name_is_explained_with_the_rule() -> None:
    assert problems_at(dag(task="a-"), "spec.tasks[0].name") == [
        f"invalid task name 'a-': {names.TASK_NAME_RULE}"
    ]
    assert problems_at(dag(name="a" * 64), "metadata.name") == [
        f"invalid DAG name {'a' * 64!r}: {names.DAG_NAME_RULE}"
    ]
