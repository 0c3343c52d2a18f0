"""airflow.utils.trigger_rule: TriggerRule."""

from kubeflowlite.airflow._compat import TriggerRule

__all__ = ["TriggerRule"]
