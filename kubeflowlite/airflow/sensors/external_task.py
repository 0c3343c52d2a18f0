"""airflow.sensors.external_task."""

from kubeflowlite.airflow._compat import ExternalTaskSensor

__all__ = ["ExternalTaskSensor"]
