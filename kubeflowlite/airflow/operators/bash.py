"""airflow.operators.bash."""

from kubeflowlite.airflow._compat import BashOperator

__all__ = ["BashOperator"]
