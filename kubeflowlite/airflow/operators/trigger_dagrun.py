"""airflow.operators.trigger_dagrun."""

from kubeflowlite.airflow._compat import TriggerDagRunOperator

__all__ = ["TriggerDagRunOperator"]
