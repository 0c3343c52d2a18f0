"""airflow.operators.python."""

from kubeflowlite.airflow._compat import BranchPythonOperator, PythonOperator, ShortCircuitOperator
from kubeflowlite.dsl.taskflow import get_current_context

__all__ = ["BranchPythonOperator", "PythonOperator", "ShortCircuitOperator", "get_current_context"]
