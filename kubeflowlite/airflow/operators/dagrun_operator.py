"""airflow.operators.dagrun_operator."""

from kubeflowlite.airflow._compat import TriggerDagRunOperator

__all__ = ["TriggerDagRunOperator"]
