"""Airflow's trigger rule names: when a task may run, judged from its direct upstream tasks.

The enum of the API (`Task.trigger_rule`, re-exported by kubeflowlite.api.dag) lives in
this standard-library-only module so that a DAG file can name a rule
(`from kubeflowlite import TriggerRule`, Airflow's `TriggerRule.ALL_DONE`) in a
Python task's process, which has no pydantic. Their semantics: core.triggers.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["TriggerRule"]


class TriggerRule(str, Enum):
    """When a task may run, judged from the states of its direct upstream tasks (Airflow's trigger rules)."""

    all_success = "all_success"
    all_failed = "all_failed"
    all_done = "all_done"
    all_done_min_one_success = "all_done_min_one_success"
    all_skipped = "all_skipped"
    one_success = "one_success"
    one_failed = "one_failed"
    one_done = "one_done"
    none_failed = "none_failed"
    none_failed_min_one_success = "none_failed_min_one_success"
    none_skipped = "none_skipped"
    always = "always"
