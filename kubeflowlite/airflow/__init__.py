"""Airflow compatibility: `from airflow import DAG` becomes `from kubeflowlite.airflow import DAG`.

Every module under kubeflowlite.airflow mirrors an Airflow import path (1.10 and
2.x), so moving a DAG file over means changing only its import lines. The names
are implemented in kubeflowlite.airflow._compat on top of kubeflowlite's DSL.
"""

from kubeflowlite.airflow._compat import DAG
from kubeflowlite.dsl.taskflow import XComArg

__all__ = ["DAG", "XComArg"]
