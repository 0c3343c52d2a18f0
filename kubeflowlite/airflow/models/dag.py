"""airflow.models.dag."""

from kubeflowlite.airflow._compat import DAG

__all__ = ["DAG"]
