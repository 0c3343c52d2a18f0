"""The rules for DAG ids and task ids, written once.

The pydantic models (and so the generated CRDs, which the apiserver enforces on
`kubectl apply`), validation, and the error messages a user reads all take the rule
from here, so a name the cluster accepts is a name validation accepts, and the
reverse (tests/unit/test_names_rule.py proves it by property).

- A task id becomes a Kubernetes label value on every Pod of the task: at most 63
  characters of letters, digits, '_', '-' and '.', starting and ending with a letter
  or digit (Airflow allows the same characters).
- A DAG id becomes the metadata.name of the DAG and a label value on its runs and
  Pods: a DNS-1123 subdomain (what the apiserver requires of any object name) of at
  most 63 characters (a label value's limit, enforced in the CRD by a CEL rule, as a
  CRD cannot put a pattern on metadata.name).

The patterns are anchored with ^ and $ and are used whole (`re.fullmatch` here; the
apiserver's Go regexp and pydantic's Rust regex match $ only at the very end).
"""

from __future__ import annotations

import re

TASK_NAME_MAX = 63
TASK_NAME_PATTERN = rf"^[A-Za-z0-9]([A-Za-z0-9_.-]{{0,{TASK_NAME_MAX - 2}}}[A-Za-z0-9])?$"
TASK_NAME_RULE = (
    f"at most {TASK_NAME_MAX} characters of letters, digits, '_', '-' and '.', starting and ending with "
    "a letter or digit (task names become Kubernetes label values)"
)

DAG_NAME_MAX = 63
DAG_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A DNS-1123 subdomain, as Kubernetes defines it (k8s.io/apimachinery validation.IsDNS1123Subdomain)."""
DAG_NAME_RULE = (
    f"at most {DAG_NAME_MAX} characters of lowercase letters, digits, '-' and '.', starting and ending "
    "with a letter or digit (a DNS-1123 name: DAG names become Kubernetes object names)"
)

_TASK_NAME = re.compile(TASK_NAME_PATTERN)
_DAG_NAME = re.compile(DAG_NAME_PATTERN)


def is_task_name(text: str) -> bool:
    """True if `text` is a valid task id."""
    return _TASK_NAME.fullmatch(text) is not None


def is_dag_name(text: str) -> bool:
    """True if `text` is a valid DAG id."""
    return len(text) <= DAG_NAME_MAX and _DAG_NAME.fullmatch(text) is not None
