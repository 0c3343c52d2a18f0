"""airflow.models.xcom_arg."""

from kubeflowlite.dsl.taskflow import XComArg

__all__ = ["XComArg"]
