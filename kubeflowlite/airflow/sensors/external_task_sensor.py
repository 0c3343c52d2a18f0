"""airflow.sensors.external_task_sensor."""

from kubeflowlite.airflow._compat import ExternalTaskSensor

__all__ = ["ExternalTaskSensor"]
