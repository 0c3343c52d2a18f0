"""airflow.operators.python_operator."""

from kubeflowlite.airflow._compat import BranchPythonOperator, PythonOperator, ShortCircuitOperator

__all__ = ["BranchPythonOperator", "PythonOperator", "ShortCircuitOperator"]
