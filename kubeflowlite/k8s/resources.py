"""Where our custom resources live in the Kubernetes API.

One module holds the group, version, kinds and plurals so that the CRD generator,
the operator's kopf handlers, the CLI and the tests all address the same objects;
a rename is then a one-line change instead of a grep.
"""

from __future__ import annotations

from kubeflowlite.api.dag import API_GROUP, API_VERSION, GROUP_VERSION

GROUP = API_GROUP
VERSION = API_VERSION
API_VERSION_STRING = GROUP_VERSION
"""The `apiVersion` of our objects: kubeflowlite.io/v1alpha1."""

CATEGORY = "kubeflowlite"
"""`kubectl get kubeflowlite` lists every DAG and DAGRun."""

DAG_KIND = "DAG"
DAG_PLURAL = "dags"
DAG_SINGULAR = "dag"
DAG_SHORT_NAMES = ("dag",)

DAGRUN_KIND = "DAGRun"
DAGRUN_PLURAL = "dagruns"
DAGRUN_SINGULAR = "dagrun"
DAGRUN_SHORT_NAMES = ("dr",)

DAG_CRD_NAME = f"{DAG_PLURAL}.{GROUP}"
DAGRUN_CRD_NAME = f"{DAGRUN_PLURAL}.{GROUP}"
