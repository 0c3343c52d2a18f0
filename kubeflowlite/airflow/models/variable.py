"""airflow.models.variable."""

from kubeflowlite.airflow._compat import Variable

__all__ = ["Variable"]
