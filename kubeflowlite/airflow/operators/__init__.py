"""airflow.operators."""
