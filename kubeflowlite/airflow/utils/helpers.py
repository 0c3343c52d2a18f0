"""airflow.utils.helpers (1.10): chain and cross_downstream."""

from kubeflowlite.airflow._compat import chain, cross_downstream

__all__ = ["chain", "cross_downstream"]
