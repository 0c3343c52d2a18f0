"""kubeflowlite: Airflow-style workflows, native to Kubernetes.

`from kubeflowlite import DAG, Bash, Python, task, ...` is the Python API for DAG
files (kubeflowlite.dsl). The names are loaded on first use, so `import
kubeflowlite` stays light: neither Kubernetes nor the operator is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubeflowlite.api.dag import TriggerRule
    from kubeflowlite.dsl.model import (
        DAG,
        Bash,
        Branch,
        Command,
        DagDefinitionError,
        Empty,
        Label,
        Python,
        Sensor,
        ShortCircuit,
        Trigger,
        chain,
    )
    from kubeflowlite.dsl.taskflow import XComArg, dag, task

_EXPORTS = {
    "DAG": "kubeflowlite.dsl.model",
    "Bash": "kubeflowlite.dsl.model",
    "Branch": "kubeflowlite.dsl.model",
    "Command": "kubeflowlite.dsl.model",
    "DagDefinitionError": "kubeflowlite.dsl.model",
    "Empty": "kubeflowlite.dsl.model",
    "Label": "kubeflowlite.dsl.model",
    "Python": "kubeflowlite.dsl.model",
    "Sensor": "kubeflowlite.dsl.model",
    "ShortCircuit": "kubeflowlite.dsl.model",
    "Trigger": "kubeflowlite.dsl.model",
    "chain": "kubeflowlite.dsl.model",
    "XComArg": "kubeflowlite.dsl.taskflow",
    "dag": "kubeflowlite.dsl.taskflow",
    "task": "kubeflowlite.dsl.taskflow",
    "TriggerRule": "kubeflowlite.api.dag",
}

__all__ = [
    "DAG",
    "Bash",
    "Branch",
    "Command",
    "DagDefinitionError",
    "Empty",
    "Label",
    "Python",
    "Sensor",
    "ShortCircuit",
    "Trigger",
    "TriggerRule",
    "XComArg",
    "chain",
    "dag",
    "task",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kubeflowlite' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
