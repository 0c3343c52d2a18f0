"""airflow.operators.python."""

from kubeflowlite.airflow._compat import BranchPythonOperator, PythonOperator, ShortCircuitOperator

__all__ = ["BranchPythonOperator", "PythonOperator", "ShortCircuitOperator"]
