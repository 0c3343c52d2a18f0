"""The environment a task process sees: the same names in a Pod and in a local subprocess.

Tasks read who and when they are from these variables and write their XCom return
value to the file named by KFL_XCOM_FILE, wherever they run.
"""

from __future__ import annotations

ENV_DAG_ID = "KFL_DAG_ID"
ENV_TASK_ID = "KFL_TASK_ID"
ENV_RUN_ID = "KFL_RUN_ID"
ENV_TRY_NUMBER = "KFL_TRY_NUMBER"
ENV_LOGICAL_DATE = "KFL_LOGICAL_DATE"
ENV_XCOM_FILE = "KFL_XCOM_FILE"

# Python function tasks (kubeflowlite.pytask): the DAG file's source, and the try's
# context as JSON, inline or in a file.
ENV_PYTASK_SOURCE = "KFL_PYTASK_SOURCE"
ENV_PYTASK_CONTEXT = "KFL_PYTASK_CONTEXT"
ENV_PYTASK_CONTEXT_FILE = "KFL_PYTASK_CONTEXT_FILE"
PYTASK_MODULE = "kubeflowlite.pytask"
SKIP_EXIT_CODE = 99
"""A Python task's process exits with this after AirflowSkipException: both shells report the try skipped
(99 is also Airflow's BashOperator skip_on_exit_code default)."""
ANNOTATION_SKIP_EXIT_CODE = "kubeflowlite.io/skip-exit-code"
"""On a task Pod: the exit code of its main container that means "skipped" (Python tasks)."""
"""`python -m kubeflowlite.pytask` runs a Python task's function in its process or Pod."""


PYTASK_TEXT_FACTS = (
    "ds",
    "ds_nodash",
    "ts",
    "ts_nodash",
    "ts_nodash_with_tz",
    "prev_ds",
    "next_ds",
    "prev_ds_nodash",
    "next_ds_nodash",
    "run_id",
    "task_instance_key_str",
)
"""Context names a Python task's payload carries as text (core.pytask writes them, the
stdlib-only bootstrap kubeflowlite.pytask hands them to the function as they are)."""

PYTASK_TIME_FACTS = (
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "prev_logical_date",
    "next_logical_date",
)
"""Context names a Python task's payload carries as RFC 3339 times (datetimes in the function)."""
