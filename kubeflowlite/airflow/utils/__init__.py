"""airflow.utils."""
