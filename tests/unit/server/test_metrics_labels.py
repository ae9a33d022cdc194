"""Metric labels from requests are bounded: unknown regions and odd statuses share one series;
every error class that refuses a review names a known result label."""

from __future__ import annotations

import pytest

from kubeiam.errors import KubeIAMError
from kubeiam.partitions import KNOWN_REGIONS
from kubeiam.server.metrics import (
    OTHER_LABEL,
    Result,
    ServerMetrics,
    region_label,
    status_label,
)


def test_published_regions_keep_their_label_and_others_become_other() -> None:
    assert all(region_label(r) == r for r in KNOWN_REGIONS)
    assert region_label("zz-north-17") == OTHER_LABEL == "other"


@pytest.mark.parametrize(
    ("status", "label"),
    [(200, "200"), (503, "503"), (418, "other"), (99, "other"), (600, "other"), (None, "")],
    ids=["ok", "unavailable", "unusual", "below-range", "above-range", "none"],
)
def test_status_labels(status: int | None, label: str) -> None:
    assert status_label(status) == label


def test_thousands_of_regions_leave_the_exposition_small() -> None:
    metrics = ServerMetrics()
    for i in range(5000):
        region = f"q{chr(97 + i % 26)}-east-{1 + i // 260}"
        for event in ("response", "connection_failure", "throttled"):
            metrics.sts_observer(event, 400 + i % 200, region)
    text = metrics.render().decode()
    assert len(text) < 16 * 1024
    assert 'sts_connection_failures_total{StsRegion="other"} 5000.0' in text
    assert 'sts_throttling_total{StsRegion="other"} 5000.0' in text
    assert "qa-east-1" not in text


def _error_classes(base: type[KubeIAMError]) -> list[type[KubeIAMError]]:
    found = [base]
    for sub in base.__subclasses__():
        found.extend(_error_classes(sub))
    return found


@pytest.mark.parametrize("error", _error_classes(KubeIAMError), ids=lambda c: c.__name__)
def test_an_error_class_refuses_a_review_with_a_known_result(error: type[KubeIAMError]) -> None:
    # app.py answers with Result(error.review_result): a misspelt label would be a 503 there.
    assert error.review_result is None or Result(error.review_result).value == error.review_result
    if error.review_result is not None:
        assert 400 <= error.http_status < 500  # shown to the client: never an internal failure
