"""airflow.sensors."""
