"""airflow.utils.edgemodifier: Label (edge labels, kept as documentation)."""

from kubeflowlite.dsl.model import Label

__all__ = ["Label"]
