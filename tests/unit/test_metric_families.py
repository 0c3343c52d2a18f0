"""metrics.CompactFamily against prometheus_client: the same exposition from the same observations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram

from kubeflowlite.k8s import metrics

BUCKETS = (0.1, 1, 10, 60)
LABELS = st.sampled_from(["a", "b", "c"])


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but the `_created` ones (their time differs by construction)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


@given(st.lists(st.tuples(LABELS, st.floats(min_value=0, max_value=1000)), max_size=30))
@settings(max_examples=60)
def test_a_histogram_exposes_what_prometheus_client_would(observations: list[tuple[str, float]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    compact = metrics.CompactFamily("h_seconds", "doc", ["task"], buckets=BUCKETS, registry=ours)
    reference = Histogram("h_seconds", "doc", ["task"], buckets=BUCKETS, registry=theirs)
    for label in ("a", "b"):  # born at zero
        compact.labels(label)
        reference.labels(label)
    for label, value in observations:
        compact.labels(label).observe(value)
        reference.labels(label).observe(value)
    assert _samples(ours) == _samples(theirs)
    assert [f.type for f in ours.collect()] == [f.type for f in theirs.collect()] == ["histogram"]


@given(st.lists(st.tuples(LABELS, st.sampled_from(["success", "failed"])), max_size=30))
@settings(max_examples=60)
def test_a_counter_exposes_what_prometheus_client_would(increments: list[tuple[str, str]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    compact = metrics.CompactFamily("c_total", "doc", ["task", "state"], registry=ours)
    reference = Counter("c_total", "doc", ["task", "state"], registry=theirs)
    compact.labels("a", "success")
    reference.labels("a", "success")
    for task, state in increments:
        compact.labels(task, state).inc()
        reference.labels(task, state).inc()
    assert _samples(ours) == _samples(theirs)

    def created(registry: CollectorRegistry) -> set[str]:
        return {s.name for f in registry.collect() for s in f.samples if s.name.endswith("_created")}

    assert created(ours) == created(theirs) == set(), "no _created series (see the metrics module)"


def test_a_series_costs_a_list_not_objects() -> None:
    registry = CollectorRegistry()
    family = metrics.CompactFamily("d_seconds", "doc", ["task"], buckets=BUCKETS, registry=registry)
    family.labels("a").observe(5)
    family.labels("a").observe(0.05)
    assert family._series == {("a",): [1.0, 0.0, 1.0, 0.0, 0.0, 5.05, family._series[("a",)][-1]]}
