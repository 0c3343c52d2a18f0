"""airflow.models: DAG, Variable, XComArg, BaseOperator's chain."""

from kubeflowlite.airflow._compat import DAG, Variable
from kubeflowlite.dsl.taskflow import XComArg

__all__ = ["DAG", "Variable", "XComArg"]
