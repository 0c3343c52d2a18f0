"""airflow.exceptions."""

from kubeflowlite.airflow._compat import AirflowException, AirflowSkipException

__all__ = ["AirflowException", "AirflowSkipException"]
