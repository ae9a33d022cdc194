"""Prometheus text exposition read with prometheus_client's own parser (no line splitting)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def samples(text: str) -> list[Sample]:
    """Every sample of ``text`` (``foo_total``, ``foo_created``, ``foo_bucket`` ... by name)."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def sample_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named exactly ``name`` whose labels include ``labels``; 0 when
    there are none (a counter nothing has touched yet is absent)."""
    return sum(
        s.value
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )
