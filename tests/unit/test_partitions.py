"""Partitions and which STS host names belong to them (protocol.md section 2 tables)."""

from __future__ import annotations

import pytest

from kubeiam.partitions import (
    GLOBAL_STS_HOST,
    PARTITIONS,
    get_partition,
    is_client_region,
    partition_for_region,
    sts_host_for_region,
    sts_host_region,
)

ACCEPTED = [
    ("aws", "sts.amazonaws.com", "us-east-1", "global"),
    ("aws", "sts.us-east-1.amazonaws.com", "us-east-1", "regional"),
    ("aws", "sts.ap-southeast-4.amazonaws.com", "ap-southeast-4", "opt-in-region"),
    ("aws", "sts-fips.us-west-2.amazonaws.com", "us-west-2", "fips"),
    ("aws", "sts.eu-west-1.api.aws", "eu-west-1", "dual-stack"),
    ("aws", "sts-fips.us-east-1.api.aws", "us-east-1", "fips-dual-stack"),
    ("aws-us-gov", "sts.us-gov-west-1.amazonaws.com", "us-gov-west-1", "gov"),
    ("aws-us-gov", "sts-fips.us-gov-east-1.amazonaws.com", "us-gov-east-1", "gov-fips"),
    ("aws-us-gov", "sts.us-gov-west-1.api.aws", "us-gov-west-1", "gov-dual-stack"),
    ("aws-cn", "sts.cn-north-1.amazonaws.com.cn", "cn-north-1", "china"),
    ("aws-cn", "sts.cn-northwest-1.api.amazonwebservices.com.cn", "cn-northwest-1", "china-ds"),
    ("aws-eusc", "sts.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1", "eusc"),
    ("aws-iso", "sts.us-iso-east-1.c2s.ic.gov", "us-iso-east-1", "iso"),
    ("aws-iso-b", "sts.us-isob-east-1.sc2s.sgov.gov", "us-isob-east-1", "iso-b"),
    ("aws-iso-e", "sts.eu-isoe-west-1.cloud.adc-e.uk", "eu-isoe-west-1", "iso-e"),
    ("aws-iso-f", "sts.us-isof-south-1.csp.hci.ic.gov", "us-isof-south-1", "iso-f"),
]


@pytest.mark.parametrize(
    ("partition", "host", "region"),
    [pytest.param(p, h, r, id=i) for p, h, r, i in ACCEPTED],
)
def test_sts_hosts_of_each_partition(partition: str, host: str, region: str) -> None:
    assert sts_host_region(host, partition) == region


REFUSED = [
    ("aws-cn", GLOBAL_STS_HOST, "global-only-in-aws"),
    ("aws-us-gov", GLOBAL_STS_HOST, "global-not-in-gov"),
    ("aws", "sts.us-gov-west-1.amazonaws.com", "gov-region-under-aws"),
    ("aws-us-gov", "sts.us-east-1.amazonaws.com", "aws-region-under-gov"),
    ("aws", "sts.cn-north-1.amazonaws.com", "china-region-wrong-domain"),
    ("aws-cn", "sts.cn-north-1.amazonaws.com", "china-without-cn-suffix"),
    ("aws", "sts.cn-north-1.amazonaws.com.cn", "china-host-under-aws"),
    ("aws", "sts.us-iso-east-1.amazonaws.com", "iso-region-under-aws"),
    ("aws-iso", "sts.us-iso-east-1.api.aws", "iso-has-no-dual-stack"),
    ("aws", "sts.amazonaws.com.evil", "suffix-trick"),
    ("aws", "sts.us-east-1.amazonaws.com.evil.com", "regional-suffix-trick"),
    ("aws", "evil.sts.us-east-1.amazonaws.com", "prefix-label"),
    ("aws", "sts.amazonaws.com.", "global-trailing-dot"),
    ("aws", "sts.us-east-1.amazonaws.com.", "trailing-dot"),
    ("aws", "STS.us-east-1.amazonaws.com", "upper-case-service"),
    ("aws", "sts.US-EAST-1.amazonaws.com", "upper-case-region"),
    ("aws", "sts.us-east-1.AMAZONAWS.com", "upper-case-domain"),
    ("aws", "sts.us-east-1\n.amazonaws.com", "newline-in-region"),
    ("aws", "sts.-us-east-1.amazonaws.com", "leading-hyphen"),
    ("aws", "sts.us-east-1-.amazonaws.com", "trailing-hyphen"),
    ("aws", "sts.us_east_1.amazonaws.com", "underscore"),
    ("aws", "sts..amazonaws.com", "empty-region"),
    ("aws", "s3.amazonaws.com", "s3-global"),
    ("aws", "s3.us-east-1.amazonaws.com", "s3-regional"),
    ("aws", "iam.amazonaws.com", "iam"),
    ("aws", "sts-fips.amazonaws.com", "fips-without-region"),
    ("aws", "sts.us-east-1.vpce.amazonaws.com", "vpce-form"),
    ("aws", "sts", "bare-label"),
    ("aws", "", "empty"),
    ("aws-moon", "sts.us-east-1.amazonaws.com", "unknown-partition"),
]


@pytest.mark.parametrize(
    ("partition", "host"),
    [pytest.param(p, h, id=i) for p, h, i in REFUSED],
)
def test_non_sts_hosts_are_refused(partition: str, host: str) -> None:
    assert sts_host_region(host, partition) is None


FOR_REGION = [
    ("us-east-1", {}, "sts.us-east-1.amazonaws.com", "regional"),
    ("us-east-1", {"fips": True}, "sts-fips.us-east-1.amazonaws.com", "fips"),
    ("eu-west-1", {"dualstack": True}, "sts.eu-west-1.api.aws", "dual-stack"),
    ("us-west-2", {"fips": True, "dualstack": True}, "sts-fips.us-west-2.api.aws", "fips-ds"),
    ("cn-north-1", {}, "sts.cn-north-1.amazonaws.com.cn", "china"),
    ("cn-north-1", {"dualstack": True}, "sts.cn-north-1.api.amazonwebservices.com.cn", "cn-ds"),
    ("us-gov-west-1", {}, "sts.us-gov-west-1.amazonaws.com", "gov"),
    ("us-isob-east-1", {}, "sts.us-isob-east-1.sc2s.sgov.gov", "iso-b"),
]


@pytest.mark.parametrize(
    ("region", "flags", "host"),
    [pytest.param(r, f, h, id=i) for r, f, h, i in FOR_REGION],
)
def test_host_a_client_signs_for_round_trips(
    region: str, flags: dict[str, bool], host: str
) -> None:
    assert sts_host_for_region(region, **flags) == host
    assert sts_host_region(host, partition_for_region(region).name) == region


def test_partitions_without_dual_stack_say_so() -> None:
    with pytest.raises(ValueError, match="no dual-stack"):
        sts_host_for_region("us-iso-east-1", dualstack=True)


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("af-south-1", "aws"),
        ("us-gov-east-1", "aws-us-gov"),
        ("cn-northwest-1", "aws-cn"),
        ("us-iso-west-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
        ("eu-isoe-west-1", "aws-iso-e"),
        ("us-isof-east-1", "aws-iso-f"),
        ("eusc-de-east-1", "aws-eusc"),
    ],
    ids=lambda v: v,
)
def test_partition_for_region(region: str, partition: str) -> None:
    assert partition_for_region(region).name == partition


def test_get_partition_names_the_known_ones() -> None:
    assert get_partition("aws-cn").domain == "amazonaws.com.cn"
    with pytest.raises(KeyError, match="aws-us-gov"):
        get_partition("aws-mars")


def test_every_partition_has_a_distinct_region_prefix_or_is_the_default() -> None:
    prefixes = [p for part in PARTITIONS.values() for p in part.region_prefixes]
    assert len(prefixes) == len(set(prefixes))
    assert PARTITIONS["aws"].region_prefixes == ()


def test_host_cache_is_bounded() -> None:
    maxsize = sts_host_region.cache_info().maxsize
    assert maxsize is not None
    for i in range(maxsize + 50):
        sts_host_region(f"sts.flood-{i}.example", "aws")
    assert sts_host_region.cache_info().currsize <= maxsize


def test_every_published_region_has_the_shape_of_its_own_partition_only() -> None:
    from kubeiam.partitions import KNOWN_REGIONS, is_region_shape, partition_for_region

    for region in sorted(KNOWN_REGIONS):
        own = partition_for_region(region).name
        assert is_region_shape(region, own), region
        assert [p for p in PARTITIONS if is_region_shape(region, p)] == [own], region


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws-moon"),
        ("", "aws"),
        ("-", "aws"),
        ("us--1", "aws"),
        ("us-east-1-", "aws"),
        ("us-east-\u0661", "aws"),  # an Arabic-Indic digit: isdigit() but not ASCII
        ("us-gov-de-west-1", "aws-us-gov"),
        ("eusc-deu-east-1", "aws-eusc"),
        ("eusc-east-1x", "aws-eusc"),
        ("eusc-xx-northwest-999", "aws-eusc"),
    ],
    ids=[
        "unknown-partition",
        "empty",
        "hyphen",
        "empty-direction",
        "trailing-hyphen",
        "non-ascii-digit",
        "country-after-two-label-prefix",
        "three-letter-country",
        "bad-number",
        "too-long",
    ],
)
def test_region_shape_refusals(region: str, partition: str) -> None:
    from kubeiam.partitions import is_region_shape

    assert not is_region_shape(region, partition)


@pytest.mark.parametrize(
    ("region", "ok"),
    [
        ("us-west-2", True),
        ("cn-north-1", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("", False),
        ("-us-west-2", False),
        ("us-west-2-", False),
        ("US-WEST-2", False),
        ("us_west_2", False),
        ("us-west-2.evil", False),
    ],
    ids=[
        "plain",
        "china",
        "64-chars",
        "65-chars",
        "empty",
        "leading-dash",
        "trailing-dash",
        "upper-case",
        "underscore",
        "dot",
    ],
)
def test_client_region_is_one_dns_label(region: str, ok: bool) -> None:
    """What ``kubeiam token`` accepts from --region / AWS_REGION before building a host name."""
    assert is_client_region(region) is ok
