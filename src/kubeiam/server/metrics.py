"""Prometheus metrics of the webhook, under the reference's names so existing dashboards work.

Every :class:`ServerMetrics` owns its own :class:`CollectorRegistry` (never the process-global
one), so tests and benchmarks can build many servers in one process.

Reference metrics (prefix ``aws_iam_authenticator_``, labels and buckets as the reference's):
``authenticate_latency_seconds{result}``, ``sts_responses_total{ResponseCode,StsRegion}``,
``sts_connection_failures_total{StsRegion}``, ``sts_throttling_total{StsRegion}``,
``ec2_describe_instances_calls_total``, ``configmap_watch_failures_total``,
``dynamicfile_failures_total``. kubeiam's own (prefix ``kubeiam_``): identity-cache hits, misses,
shared calls and size; per-backend readiness and load failures.

Every label value that a request can influence is bounded, so that no stream of tokens can grow
``/metrics`` (issue 9): ``StsRegion`` is a published region or ``other`` (:func:`region_label`),
``ResponseCode`` one of the usual HTTP statuses or ``other``; the rest come from fixed sets or the
configuration.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from kubeiam.mapping.backends import DYNAMIC_FILE, EKS_CONFIG_MAP
from kubeiam.partitions import KNOWN_REGIONS

NAMESPACE = "aws_iam_authenticator"
KUBEIAM_NAMESPACE = "kubeiam"
#: client_golang's DefBuckets, which the reference's latency histogram uses. Python's default
#: buckets differ (.075, .75, 7.5), which would break existing dashboards' bucket queries.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: The ``StsRegion`` of every region that AWS has not published (:data:`KNOWN_REGIONS`). Tokens
#: may name any host whose region has a region's shape (``zz-north-17``): each value would be a
#: new series kept forever, so unknown ones share this one.
OTHER_LABEL = "other"


def region_label(region: str) -> str:
    """``region`` if AWS has published it, else ``other``: a bounded ``StsRegion`` label."""
    return region if region in KNOWN_REGIONS else OTHER_LABEL


#: ``ResponseCode`` values kept as they are: what STS answers (200, 400, 403, 429, 5xx) and what
#: something in between might (redirects, 404...). Other statuses share ``other``.
_STATUS_LABELS = frozenset(
    {200, 301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 408, 413, 429, 500, 502, 503, 504}
)


def status_label(status: int | None) -> str:
    """An HTTP status as a bounded ``ResponseCode`` label ("" when there was no answer)."""
    if status is None:
        return ""
    return str(status) if status in _STATUS_LABELS else OTHER_LABEL


class Result(enum.Enum):
    """``result`` label values of ``authenticate_latency_seconds``, spelled as the reference's
    (including its ``uknown_user`` typo: dashboards query that exact value)."""

    MALFORMED = "malformed_request"
    INVALID = "invalid_token"
    STS_ERROR = "sts_error"
    STS_THROTTLING = "sts_throttling"
    UNKNOWN_USER = "uknown_user"
    SUCCESS = "success"


class ServerMetrics:
    """The webhook's collectors, registered in a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        ns = NAMESPACE
        #: Labelled children already made, by metric and label values (bounded: every label
        #: here is). prometheus_client's labels() validates and locks on every call, twice a
        #: review.
        self._children: dict[tuple[object, ...], Any] = {}
        self.latency = Histogram(
            "authenticate_latency_seconds",
            "Authenticate call latency",
            ["result"],
            namespace=ns,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sts_responses = Counter(
            "sts_responses",
            "Sts responses with error code label",
            ["ResponseCode", "StsRegion"],
            namespace=ns,
            registry=r,
        )
        self.sts_connection_failures = Counter(
            "sts_connection_failures",
            "Sts call could not succeed or timedout",
            ["StsRegion"],
            namespace=ns,
            registry=r,
        )
        self.sts_throttling = Counter(
            "sts_throttling", "Sts call got throttled", ["StsRegion"], namespace=ns, registry=r
        )
        self.ec2_describe_instances_calls = Counter(
            "ec2_describe_instances_calls",
            "Number of EC2 describe instances calls.",
            namespace=ns,
            registry=r,
        )
        self.configmap_watch_failures = Counter(
            "configmap_watch_failures", "EKS Configmap watch failures", namespace=ns, registry=r
        )
        self.dynamicfile_failures = Counter(
            "dynamicfile_failures", "Dynamic file failures", namespace=ns, registry=r
        )
        # process_cpu_seconds_total, process_resident_memory_bytes ...: the reference exports
        # them through Go's default registry; dashboards plot them next to the webhook's own.
        ProcessCollector(registry=r)
        kns = KUBEIAM_NAMESPACE
        self.cache_hits = Counter(
            "identity_cache_hits",
            "Reviews answered from the identity cache (no STS call)",
            namespace=kns,
            registry=r,
        )
        self.cache_misses = Counter(
            "identity_cache_misses",
            "Reviews that called STS",
            namespace=kns,
            registry=r,
        )
        self.cache_shared = Counter(
            "identity_cache_shared",
            "Reviews that waited on a concurrent review's STS call for the same token",
            namespace=kns,
            registry=r,
        )
        self.cache_size = Gauge(
            "identity_cache_entries", "Identities held in the cache", namespace=kns, registry=r
        )
        self.backend_ready = Gauge(
            "backend_ready",
            "1 once a mapping backend has loaded its mappings",
            ["backend"],
            namespace=kns,
            registry=r,
        )
        self.backend_skipped = Counter(
            "mapping_entries_skipped",
            "Invalid mapping entries skipped while loading a backend's source",
            ["backend"],
            namespace=kns,
            registry=r,
        )
        self.iam_group_calls = Counter(
            "iam_list_groups_for_user_calls",
            "iam:ListGroupsForUser calls made to resolve mapGroups entries",
            namespace=kns,
            registry=r,
        )
        self.iam_group_failures = Counter(
            "iam_group_lookup_failures",
            "IAM group lookups that failed (mapGroups entries did not match: fail closed)",
            namespace=kns,
            registry=r,
        )
        self.sts_name_lookups = Counter(
            "sts_name_lookups",
            "STS host name lookups (getaddrinfo) started by the STS client's resolver",
            namespace=kns,
            registry=r,
        )
        self.sts_name_lookups_refused = Counter(
            "sts_name_lookups_refused",
            "STS host name lookups refused at once because too many lookups of never-resolved "
            "hosts were pending (that review failed as STS unavailable)",
            namespace=kns,
            registry=r,
        )
        self.backend_failures = Counter(
            "backend_failures",
            "Mapping backend load, reload or watch failures",
            ["backend"],
            namespace=kns,
            registry=r,
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, made once per label values and then looked up."""
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_review(self, result: Result, seconds: float) -> None:
        self._child(self.latency, result.value).observe(seconds)

    def sts_observer(self, event: str, status: int | None, region: str) -> None:
        """The STS client's ``observer``: events response, connection_failure, throttled."""
        label = region_label(region)
        if event == "response":
            self._child(self.sts_responses, status_label(status), label).inc()
        elif event == "connection_failure":
            self.sts_connection_failures.labels(label).inc()
        elif event == "throttled":
            self.sts_throttling.labels(label).inc()
        elif event == "name_lookup":
            self.sts_name_lookups.inc()
        elif event == "name_lookup_refused":
            self.sts_name_lookups_refused.inc()

    def backend_failure(self, backend: str) -> None:
        """Count a backend failure; the reference's own counters for its two watched backends."""
        self.backend_failures.labels(backend).inc()
        if backend == EKS_CONFIG_MAP:
            self.configmap_watch_failures.inc()
        elif backend == DYNAMIC_FILE:
            self.dynamicfile_failures.inc()

    def backend_failure_hook(self, backend: str) -> Callable[[], None]:
        return lambda: self.backend_failure(backend)

    def skipped_hook(self, backend: str) -> Callable[[int], None]:
        return lambda count: self.backend_skipped.labels(backend).inc(count)

    def watch_backend(self, backend: str, ready: Callable[[], bool]) -> None:
        """Export ``kubeiam_backend_ready{backend}`` from ``ready()`` at each scrape."""
        self.backend_ready.labels(backend).set_function(lambda: 1.0 if ready() else 0.0)

    def render(self) -> bytes:
        """The text exposition of every collector in this registry."""
        return generate_latest(self.registry)
