"""The committed Grafana dashboard is exactly what the typed builders generate, over real metric names."""

from __future__ import annotations

import json
import re

from kubeflowlite.k8s import metrics
from kubeflowlite.ops import dashboard


def test_the_committed_dashboard_equals_the_generated_one() -> None:
    committed = dashboard.DEFAULT_OUTPUT.read_text()
    assert committed == dashboard.render(), "regenerate it with `make dashboard`"


def test_every_panel_queries_metrics_the_operator_exports() -> None:
    exported = set()
    for family in metrics.REGISTRY.collect():
        exported.add(family.name)
        exported.update(f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_count", "_sum"))
    found = dashboard.queries(json.loads(dashboard.render()))
    assert len(found) >= 15
    for title, expr in found:
        names = set(re.findall(r"\bkubeflowlite_[a-z_]+", expr))
        assert names, f"{title}: {expr}"
        assert names <= exported, f"{title} queries unknown metrics {names - exported}"


def test_the_dashboard_has_the_namespace_and_dag_variables_and_uses_them() -> None:
    document = json.loads(dashboard.render())
    assert [v["name"] for v in document["templating"]["list"]] == ["datasource", "namespace", "dag"]
    per_dag = [
        expr for title, expr in dashboard.queries(document) if "kubeflowlite_dag" in expr or "task" in expr
    ]
    assert per_dag and all('namespace=~"$namespace"' in expr and 'dag=~"$dag"' in expr for expr in per_dag)
