"""airflow.utils.dates: days_ago."""

from kubeflowlite.airflow._compat import days_ago

__all__ = ["days_ago"]
