"""airflow.decorators: dag and task (TaskFlow), taking Airflow's DAG and operator arguments."""

from typing import Any

from kubeflowlite.airflow._compat import DAG, taskflow_options
from kubeflowlite.dsl import taskflow

__all__ = ["dag", "task"]


def dag(dag_id: str | None = None, **dag_options: Any) -> Any:
    """Airflow's @dag: as kubeflowlite.dag, with Airflow's DAG arguments (default_args, schedule_interval, ...)."""
    return taskflow.dag(dag_id, dag_class=DAG, **dag_options)


task = taskflow.TaskDecorator(translate=taskflow_options)
"""Airflow's @task (and .branch, .short_circuit, .bash): its options as an operator's (warnings, errors)."""
