"""airflow.operators.bash_operator."""

from kubeflowlite.airflow._compat import BashOperator

__all__ = ["BashOperator"]
