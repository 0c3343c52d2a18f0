"""Run DAGs with Apache Airflow itself and print every task's final state (run by the Airflow venv's python).

    <airflow venv>/bin/python airflow_driver.py < jobs.json > states.json

jobs.json is a list of {"file", "dag_id", "date"} (the DAG folder is the file's own); the answer maps each dag_id to
{task_id: state} ("none" for a task that never ran), or to {"error": text}. Each DAG
runs with `DAG.test(execution_date=...)`, what `airflow dags test DAG_ID DATE` calls,
all in this one process so Airflow is imported once. AIRFLOW_HOME (a migrated sqlite
database) and the other AIRFLOW__* settings come from the environment. Not a test
module: it imports Airflow, which only the Airflow venv has.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any


def run(job: dict[str, str]) -> dict[str, str]:
    import pendulum
    from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(job["file"]).parent), include_examples=False)
    if bag.import_errors:
        return {"error": json.dumps(bag.import_errors)}
    bag.sync_to_db()  # the folder's other DAGs exist for Airflow (a TriggerDagRunOperator's target)
    dag = bag.get_dag(job["dag_id"])
    run = dag.test(execution_date=pendulum.parse(job["date"]))
    return {ti.task_id: ti.state or "none" for ti in run.get_task_instances()}


def main() -> None:
    jobs: list[dict[str, str]] = json.load(sys.stdin)
    answer: dict[str, Any] = {}
    for job in jobs:
        try:
            answer[job["dag_id"]] = run(job)
        except Exception:
            answer[job["dag_id"]] = {"error": traceback.format_exc()}
    real_stdout = sys.__stdout__
    assert real_stdout is not None
    real_stdout.write("\n" + json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
