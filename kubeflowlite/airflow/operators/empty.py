"""airflow.operators.empty."""

from kubeflowlite.airflow._compat import EmptyOperator

__all__ = ["EmptyOperator"]
