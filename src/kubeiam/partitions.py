"""AWS partitions, their STS domains, and which STS host names are valid (pure).

The one home of the endpoint rules, used on both sides of the protocol: the token client picks the
host it signs for (:func:`sts_endpoint`: regional, global/legacy, FIPS, dual-stack, China and the
other partitions), the verifier decides whether a host in a token is an STS host of the configured
partition (:func:`sts_host_region`), and the server's resolver which hosts belong to published
regions (:func:`published_sts_host`). See protocol.md sections 1 and 2, "STS host the client signs
for" and "Partitions and STS domains".
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from functools import _lru_cache_wrapper

    #: Built on first use by the module ``__getattr__`` (see ``_HOST_CACHE_SIZE``).
    REGION_LABEL: re.Pattern[str]
    sts_host_region: _lru_cache_wrapper[str | None]


class Partition:
    """One AWS partition and the DNS domains its STS endpoints live under (immutable).

    A slotted class written out rather than a frozen dataclass: ``dataclasses`` imports
    ``inspect``, ~20 ms of start-up that ``kubeiam token`` (which signs for a host of this table)
    would pay on every kubectl run.
    """

    __slots__ = ("domain", "dualstack_domain", "name", "region_prefixes")

    name: str
    domain: str
    dualstack_domain: str | None
    #: Region name prefixes that belong to this partition (``cn-`` for aws-cn ...).
    region_prefixes: tuple[str, ...]

    def __init__(
        self, name: str, domain: str, dualstack_domain: str | None, region_prefixes: tuple[str, ...]
    ) -> None:
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "domain", domain)
        set_(self, "dualstack_domain", dualstack_domain)
        set_(self, "region_prefixes", region_prefixes)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Partition is immutable (cannot set {name})")

    def _key(self) -> tuple[str, str, str | None, tuple[str, ...]]:
        return (self.name, self.domain, self.dualstack_domain, self.region_prefixes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Partition) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Partition(name={self.name!r}, domain={self.domain!r}, "
            f"dualstack_domain={self.dualstack_domain!r}, region_prefixes={self.region_prefixes!r})"
        )


#: Every partition kubeiam knows. ``aws`` and ``aws-us-gov`` share a DNS suffix and are told apart
#: by the region prefix, which is why region_prefixes exist at all.
PARTITIONS: "dict[str, Partition]" = {
    p.name: p
    for p in (
        Partition("aws", "amazonaws.com", "api.aws", ()),
        Partition("aws-us-gov", "amazonaws.com", "api.aws", ("us-gov-",)),
        Partition("aws-cn", "amazonaws.com.cn", "api.amazonwebservices.com.cn", ("cn-",)),
        Partition("aws-eusc", "amazonaws.eu", "api.amazonwebservices.eu", ("eusc-",)),
        Partition("aws-iso", "c2s.ic.gov", None, ("us-iso-",)),
        Partition("aws-iso-b", "sc2s.sgov.gov", None, ("us-isob-",)),
        Partition("aws-iso-e", "cloud.adc-e.uk", None, ("eu-isoe-",)),
        Partition("aws-iso-f", "csp.hci.ic.gov", None, ("us-isof-",)),
    )
}

DEFAULT_PARTITION = "aws"

#: The one global STS endpoint; it exists only in the ``aws`` partition and signs as us-east-1.
GLOBAL_STS_HOST = "sts.amazonaws.com"
GLOBAL_STS_REGION = "us-east-1"
#: The first label of an STS host name: the service, plain or FIPS.
STS_SERVICE_LABELS = ("sts", "sts-fips")
#: The longest region name a client may sign for (a loose bound: the server checks the shape).
MAX_CLIENT_REGION_LENGTH = 64

#: A region label as it may appear in an STS host name (protocol.md section 2, rule 4). The
#: compiled ``REGION_LABEL`` is built on first use (module ``__getattr__`` below): importing ``re``
#: costs the token plugin, which imports this module, ~6 ms of start-up on every kubectl run.
_REGION_LABEL_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
_REGION_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


#: The last two parts of every AWS region name: a compass direction and a number
#: (``us-east-1``, ``ap-southeast-7``, ``cn-northwest-1``).
REGION_DIRECTIONS = frozenset(
    {
        "north",
        "south",
        "east",
        "west",
        "central",
        "northeast",
        "northwest",
        "southeast",
        "southwest",
    }
)
#: Region numbers are small: 1..99 written without a leading zero.
_MAX_REGION_NUMBER_DIGITS = 2
#: The longest region a shape allows (``eusc-xx-northwest-99`` is 20 characters); anything longer
#: is refused before any other work, so no label near DNS's 63-character limit gets far.
MAX_REGION_LENGTH = 20
_LOWER_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")

#: The regions AWS has published, per partition (from botocore's endpoints data, 2026). Only
#: used to name metric series: a region not listed here is still accepted when it has a region's
#: shape, but it is counted under ``other`` so that no token can create new series.
KNOWN_REGIONS: frozenset[str] = frozenset(
    {
        "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2",
        "ap-northeast-3", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
        "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
        "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1",
        "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1",
        "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-1",
        "us-west-2",
        "cn-north-1", "cn-northwest-1",
        "us-gov-east-1", "us-gov-west-1",
        "us-iso-east-1", "us-iso-west-1",
        "us-isob-east-1", "us-isob-west-1",
        "eu-isoe-west-1",
        "us-isof-east-1", "us-isof-south-1",
        "eusc-de-east-1",
    }
)  # fmt: skip


def _letters(text: str, count: int) -> bool:
    return len(text) == count and all(ch in _LOWER_LETTERS for ch in text)


def _region_number(text: str) -> bool:
    return (
        0 < len(text) <= _MAX_REGION_NUMBER_DIGITS
        and text.isascii()
        and text.isdigit()
        and text[0] != "0"
    )


def is_region_shape(region: str, partition: str) -> bool:
    """Does ``region`` look like a region of ``partition`` (it need not exist)?

    ``<geo>-<direction>-<n>`` in aws (a two-letter geography: ``us-east-1``); in the other
    partitions the partition's region prefix, then (for a one-label prefix such as ``eusc-``) at
    most one two-letter country, then ``<direction>-<n>`` (``us-gov-west-1``, ``us-isob-east-1``,
    ``eusc-de-east-1``, ``cn-northwest-1``). Anything else is not an STS region a token may name,
    so it is refused before a DNS lookup or a metric series is spent on it. No ``re`` (see
    ``REGION_LABEL``): the token plugin imports this module.
    """
    part = PARTITIONS.get(partition)
    if part is None or not 0 < len(region) <= MAX_REGION_LENGTH:
        return False
    parts = region.split("-")
    if len(parts) < 3:
        return False
    *head, direction, number = parts
    if direction not in REGION_DIRECTIONS or not _region_number(number):
        return False
    if partition_for_region(region) is not part:
        return False
    if not part.region_prefixes:
        return len(head) == 1 and _letters(head[0], 2)
    for prefix in part.region_prefixes:
        labels = prefix.rstrip("-").split("-")
        if head[: len(labels)] != labels:
            continue
        rest = head[len(labels) :]
        if not rest:
            return True
        # Sovereign partitions name a country after their geography (eusc-de-east-1).
        return len(labels) == 1 and len(rest) == 1 and _letters(rest[0], 2)
    return False


def is_region_label(label: str) -> bool:
    """``REGION_LABEL.fullmatch(label)`` without ``re`` (the tests hold the two together)."""
    return (
        bool(label)
        and label[0] != "-"
        and label[-1] != "-"
        and all(ch in _REGION_LABEL_CHARS for ch in label)
    )


def __getattr__(name: str) -> object:
    value: object
    if name == "REGION_LABEL":
        import re

        value = re.compile(_REGION_LABEL_PATTERN)
    elif name == "sts_host_region":
        # functools (and the collections it imports) costs the token plugin ~1.5 ms of start-up;
        # the plugin never checks a host, so the verifier's memo is made on first use.
        from functools import lru_cache

        value = lru_cache(maxsize=_HOST_CACHE_SIZE)(_sts_host_region)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


#: Bound on the verifier's host cache: a flood of distinct (refused) hosts must not grow memory.
_HOST_CACHE_SIZE = 512


def get_partition(name: str) -> "Partition":
    """The partition called ``name``; raises ``KeyError`` naming the known ones."""
    try:
        return PARTITIONS[name]
    except KeyError:
        known = ", ".join(sorted(PARTITIONS))
        raise KeyError(f"unknown AWS partition {name!r}; known partitions: {known}") from None


def partition_for_region(region: str) -> "Partition":
    """The partition a region belongs to, from its name prefix (``cn-north-1`` -> aws-cn)."""
    best: Partition | None = None
    best_len = -1
    for part in PARTITIONS.values():
        for prefix in part.region_prefixes:
            if region.startswith(prefix) and len(prefix) > best_len:
                best, best_len = part, len(prefix)
    return best if best is not None else PARTITIONS[DEFAULT_PARTITION]


def sts_host_for_region(region: str, *, fips: bool = False, dualstack: bool = False) -> str:
    """The regional STS host a client signs for in ``region`` (protocol.md section 1 table)."""
    part = partition_for_region(region)
    service = STS_SERVICE_LABELS[1] if fips else STS_SERVICE_LABELS[0]
    if dualstack:
        if part.dualstack_domain is None:
            raise ValueError(f"partition {part.name} has no dual-stack STS endpoint")
        return f"{service}.{region}.{part.dualstack_domain}"
    return f"{service}.{region}.{part.domain}"


def _sts_host_region(host: str, partition: str) -> str | None:
    """The signing region of ``host`` if it is an STS host of ``partition``, else ``None``.

    Called as ``sts_host_region``, memoised (LRU of ``_HOST_CACHE_SIZE``; see ``__getattr__``).

    Accepts ``sts.<region>.<domain>``, ``sts-fips.<region>.<domain>``, the dual-stack forms, and
    ``sts.amazonaws.com`` (aws only). The host must be lower case without a trailing dot; the
    region must have the shape of a region of the partition (:func:`is_region_shape`: ``us-gov-``
    regions belong to aws-us-gov even though the domain is shared with aws).
    """
    part = PARTITIONS.get(partition)
    if part is None:
        return None
    if host == GLOBAL_STS_HOST:
        return GLOBAL_STS_REGION if part.name == DEFAULT_PARTITION else None
    service, sep, rest = host.partition(".")
    if not sep or service not in STS_SERVICE_LABELS:
        return None
    region, sep, domain = rest.partition(".")
    if not sep or not is_region_shape(region, part.name):
        return None
    if domain != part.domain and domain != part.dualstack_domain:
        return None
    return region


# -- the host a client signs for ---------------------------------------------------------------


#: Regions that botocore still sends to the global endpoint when ``sts_regional_endpoints`` is
#: ``legacy`` (botocore.args.LEGACY_GLOBAL_STS_REGIONS, checked by a test). Opt-in regions never
#: had a global endpoint, so they stay regional even then.
LEGACY_GLOBAL_REGIONS = frozenset(
    {
        "ap-northeast-1",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "aws-global",
        "ca-central-1",
        "eu-central-1",
        "eu-north-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    }
)


def sts_endpoint(
    region: str | None, *, legacy: bool = False, fips: bool = False, dualstack: bool = False
) -> tuple[str, str]:
    """``(host, signing_region)`` of the STS endpoint a token for ``region`` is signed for.

    Matches botocore's endpoint rules for STS: regional hosts by default; the global
    ``sts.amazonaws.com`` (signed as us-east-1) when no region is known, or with ``legacy`` for
    the regions that had it; GovCloud's plain host when FIPS is asked for without dual-stack
    (its regular endpoints are FIPS endpoints). One deliberate difference: with FIPS or
    dual-stack and no region, botocore builds ``sts-fips.aws-global...``, a host that does not
    exist; kubeiam signs for us-east-1 instead. Raises ``ValueError`` for a partition without a
    dual-stack endpoint.
    """
    if region is None or region == "aws-global":
        if not (fips or dualstack):
            return GLOBAL_STS_HOST, GLOBAL_STS_REGION
        region = GLOBAL_STS_REGION
    if fips or dualstack:
        if fips and not dualstack and partition_for_region(region).name == "aws-us-gov":
            return sts_host_for_region(region), region
        return sts_host_for_region(region, fips=fips, dualstack=dualstack), region
    if legacy and region in LEGACY_GLOBAL_REGIONS:
        return GLOBAL_STS_HOST, GLOBAL_STS_REGION
    return sts_host_for_region(region), region


def is_client_region(region: str) -> bool:
    """Can ``region`` go into an STS host name a client signs for (a DNS label of at most
    :data:`MAX_CLIENT_REGION_LENGTH` characters)? Whether the server accepts it is its own check."""
    return len(region) <= MAX_CLIENT_REGION_LENGTH and is_region_label(region)


def published_sts_host(host: str) -> bool:
    """``sts[-fips].<published region>.<anything>`` or the global endpoint: a bounded set of
    names (the verifier's host check already limited the domains), which the server's resolver
    gives a lane of its own (:mod:`kubeiam.token.resolver`)."""
    if host == GLOBAL_STS_HOST:
        return True
    service, _, rest = host.partition(".")
    return service in STS_SERVICE_LABELS and rest.partition(".")[0] in KNOWN_REGIONS
