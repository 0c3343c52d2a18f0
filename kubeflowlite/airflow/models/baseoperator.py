"""airflow.models.baseoperator: chain, cross_downstream, and BaseOperator (subclassing it is refused)."""

from kubeflowlite.airflow._compat import BaseOperator, chain, cross_downstream

__all__ = ["BaseOperator", "chain", "cross_downstream"]
