# A TaskFlow ETL: extract -> transform -> load, values passed as function results.
# Each call of a @task function is a task; passing its result makes the dependency and
# the XCom pull. The functions use this file's imports, constants and helpers: the file's
# source travels with the DAG (a ConfigMap on a cluster). Run it locally with:
#   kubeflowlite run examples/python/taskflow_etl.py --date 2024-03-01
import statistics
from datetime import datetime, timedelta

from kubeflowlite import DAG, task

ORDERS = {"2024-03-01": [12.5, 7.5, 30.0], "2024-03-02": [5.0]}
CURRENCY = "EUR"


def rounded(value: float) -> float:
    return round(value, 2)


@task
def extract(ds=None):
    """The day's order amounts (a real DAG would query a database here)."""
    return ORDERS.get(ds, [])


@task(multiple_outputs=True)
def transform(amounts):
    return {
        "count": len(amounts),
        "total": rounded(sum(amounts)),
        "mean": rounded(statistics.mean(amounts)) if amounts else 0.0,
    }


@task
def load(total, count, **context):
    line = f"{context['ds']}: {count} orders, {total} {CURRENCY}"
    print(line)
    return line


with DAG(
    "taskflow-etl",
    description="extract -> transform -> load with TaskFlow",
    schedule="@daily",
    start_date=datetime(2024, 3, 1),
    tags=["example", "python"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10), "image": "kubeflowlite/kubeflowlite:0.1.0"},
):
    summary = transform(extract())
    load(summary["total"], summary["count"])
