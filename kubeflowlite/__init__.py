"""kubeflowlite: Airflow-style workflows, native to Kubernetes.

`from kubeflowlite import DAG, Bash, Python, task, ...` is the Python API for DAG
files (kubeflowlite.dsl). The names are loaded on first use, so `import
kubeflowlite` stays light: neither Kubernetes nor the operator is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubeflowlite.core.trigger_rule import TriggerRule
    from kubeflowlite.dsl.model import DAG, DagDefinitionError
    from kubeflowlite.dsl.taskflow import XComArg, dag, task
    from kubeflowlite.dsl.tasks import (
        Bash,
        Branch,
        Command,
        Empty,
        Label,
        Python,
        Sensor,
        ShortCircuit,
        Trigger,
        chain,
    )

_EXPORTS = {
    "DAG": "kubeflowlite.dsl.model",
    "Bash": "kubeflowlite.dsl.tasks",
    "Branch": "kubeflowlite.dsl.tasks",
    "Command": "kubeflowlite.dsl.tasks",
    "DagDefinitionError": "kubeflowlite.dsl.model",
    "Empty": "kubeflowlite.dsl.tasks",
    "Label": "kubeflowlite.dsl.tasks",
    "Python": "kubeflowlite.dsl.tasks",
    "Sensor": "kubeflowlite.dsl.tasks",
    "ShortCircuit": "kubeflowlite.dsl.tasks",
    "Trigger": "kubeflowlite.dsl.tasks",
    "chain": "kubeflowlite.dsl.tasks",
    "XComArg": "kubeflowlite.dsl.taskflow",
    "dag": "kubeflowlite.dsl.taskflow",
    "task": "kubeflowlite.dsl.taskflow",
    "TriggerRule": "kubeflowlite.core.trigger_rule",
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
