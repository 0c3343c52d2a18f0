"""airflow.decorators: dag and task (TaskFlow); @dag takes Airflow's DAG arguments."""

from typing import Any

from kubeflowlite.airflow._compat import DAG
from kubeflowlite.dsl import taskflow
from kubeflowlite.dsl.taskflow import task

__all__ = ["dag", "task"]


def dag(dag_id: str | None = None, **dag_options: Any) -> Any:
    """Airflow's @dag: as kubeflowlite.dag, with Airflow's DAG arguments (default_args, schedule_interval, ...)."""
    return taskflow.dag(dag_id, dag_class=DAG, **dag_options)
