"""airflow.decorators: dag and task (TaskFlow)."""

from kubeflowlite.dsl.taskflow import dag, task

__all__ = ["dag", "task"]
