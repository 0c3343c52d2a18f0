"""airflow.utils.edgemodifier: Label (edge labels, kept as documentation)."""

from kubeflowlite.dsl.tasks import Label

__all__ = ["Label"]
