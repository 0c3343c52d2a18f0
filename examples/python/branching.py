# Branching, written as an Airflow 2 DAG file with its imports changed to kubeflowlite.airflow:
# the branch callable returns the task id to follow, the other path is skipped, and the
# join runs because its trigger rule accepts a skipped upstream. Run it locally with:
#   kubeflowlite run examples/python/branching.py --date 2024-03-02 -p threshold=10
from datetime import datetime

from kubeflowlite.airflow import DAG
from kubeflowlite.airflow.operators.bash import BashOperator
from kubeflowlite.airflow.operators.empty import EmptyOperator
from kubeflowlite.airflow.operators.python import BranchPythonOperator, PythonOperator
from kubeflowlite.airflow.utils.edgemodifier import Label
from kubeflowlite.airflow.utils.trigger_rule import TriggerRule


def measure(ds):
    """A number that depends on the day (day of month x 3)."""
    return int(ds[-2:]) * 3


def choose(ti, params):
    value = ti.xcom_pull(task_ids="measure")
    return "big" if value > params["threshold"] else "small"


with DAG(
    "python-branching",
    schedule_interval="@daily",
    start_date=datetime(2024, 3, 1),
    params={"threshold": 5},
    tags=["example", "python"],
) as dag:
    measured = PythonOperator(task_id="measure", python_callable=measure)
    branch = BranchPythonOperator(task_id="choose", python_callable=choose)
    big = BashOperator(task_id="big", bash_command="echo big: {{ ti.xcom_pull(task_ids='measure') }}")
    small = BashOperator(task_id="small", bash_command="echo small: {{ ti.xcom_pull(task_ids='measure') }}")
    join = EmptyOperator(task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)

    measured >> branch
    branch >> Label("over the threshold") >> big >> join
    branch >> Label("at most the threshold") >> small >> join
