"""airflow.operators.dummy_operator."""

from kubeflowlite.airflow._compat import DummyOperator, EmptyOperator

__all__ = ["DummyOperator", "EmptyOperator"]
