"""airflow.operators.dummy."""

from kubeflowlite.airflow._compat import DummyOperator, EmptyOperator

__all__ = ["DummyOperator", "EmptyOperator"]
