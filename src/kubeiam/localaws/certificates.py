"""The test CA and the STS front's certificate, valid for the STS host names of common regions.

Built with trustme (a dev dependency: the local AWS environment needs moto, also a dev
dependency, so whoever runs it has the dev extras; ``make demo`` installs them). The CA's
private key never touches the disk; only its certificate is written, for ``--sts-ca-bundle``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeiam.partitions import GLOBAL_STS_HOST, PARTITIONS

#: Regions whose STS host names the certificate covers, per partition.
REGIONS: dict[str, tuple[str, ...]] = {
    "aws": (
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "ca-west-1",
        "sa-east-1",
        "mx-central-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "il-central-1",
        "me-south-1",
        "me-central-1",
        "af-south-1",
        "ap-east-1",
        "ap-south-1",
        "ap-south-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
    ),
    "aws-us-gov": ("us-gov-west-1", "us-gov-east-1"),
    "aws-cn": ("cn-north-1", "cn-northwest-1"),
}
#: Partitions with FIPS STS endpoints (``sts-fips.<region>.<domain>``).
_FIPS_PARTITIONS = ("aws", "aws-us-gov")


def sts_host_names(extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Every STS host name the front's certificate is valid for, global host first."""
    names = [GLOBAL_STS_HOST]
    for partition, regions in REGIONS.items():
        part = PARTITIONS[partition]
        for region in regions:
            names.append(f"sts.{region}.{part.domain}")
            if partition in _FIPS_PARTITIONS:
                names.append(f"sts-fips.{region}.{part.domain}")
            if part.dualstack_domain is not None:
                names.append(f"sts.{region}.{part.dualstack_domain}")
    names.extend(h for h in extra if h not in names)
    return tuple(names)


@dataclass(frozen=True, slots=True)
class TestCertificates:
    """The CA bundle on disk and a server context presenting the STS certificate."""

    __test__ = False  # not a pytest test class despite the name

    ca_bundle: Path
    server_context: ssl.SSLContext
    host_names: tuple[str, ...]


def issue_sts_certificates(
    directory: Path, *, extra_hosts: tuple[str, ...] = ()
) -> TestCertificates:
    """Create a fresh CA, write its certificate to ``directory/ca.pem``, issue the STS cert."""
    import trustme

    ca: Any = trustme.CA(organization_name="kubeiam localaws test CA")
    hosts = sts_host_names(extra_hosts)
    leaf = ca.issue_cert(*hosts, "localhost", "127.0.0.1", common_name=GLOBAL_STS_HOST)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    leaf.configure_cert(context)
    bundle = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return TestCertificates(ca_bundle=bundle, server_context=context, host_names=hosts)
