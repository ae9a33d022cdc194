"""The local AWS environment: moto + the STS front + a test CA, started and stopped together.

::

    with start_local_aws("us-east-1") as aws:
        key_id, secret = aws.create_user("alice")
        env = {**aws.client_env(), "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
        # kubeiam token ... (env=env); kubeiam verify --sts-resolve aws.sts_resolve() ...

Everything listens on 127.0.0.1 with kernel-chosen ports. The temporary directory (CA
certificate, admin credentials file) is removed on exit.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeiam.errors import ConfigError
from kubeiam.localaws.certificates import issue_sts_certificates
from kubeiam.localaws.moto_server import DEFAULT_ACCOUNT_ID, AdminCredentials, MotoServer
from kubeiam.localaws.sts_front import DEFAULT_HANG_LIMIT, StsFault, StsFront
from kubeiam.partitions import partition_for_region, sts_host_for_region

if TYPE_CHECKING:
    from kubeiam.localaws.eks_api import EntryRecord

#: Services whose botocore endpoint variables point at moto.
MOTO_SERVICES = ("STS", "IAM", "EKS", "EC2")
#: Profile name of the admin credentials in :attr:`LocalAWS.credentials_file`.
ADMIN_PROFILE = "localaws-admin"


class LocalAWS:
    """A running local AWS environment. Build it with :func:`start_local_aws`."""

    def __init__(
        self,
        *,
        region: str,
        moto: MotoServer,
        front: StsFront,
        admin: AdminCredentials,
        ca_bundle: Path,
        credentials_file: Path,
        sts_hosts: tuple[str, ...],
    ) -> None:
        self.region = region
        self.account_id = DEFAULT_ACCOUNT_ID
        self.moto_url = moto.url
        self.sts_port = front.port
        self.ca_bundle = ca_bundle
        #: A 0600 shared-credentials file holding the admin keys under ``[localaws-admin]``.
        self.credentials_file = credentials_file
        #: Every STS host name the front's certificate is valid for.
        self.sts_hosts = sts_hosts
        #: The admin identity of :attr:`region`'s partition.
        self.admin = admin
        #: partition name -> admin identity (aws, aws-cn, aws-us-gov).
        self.admins = dict(moto.admins)
        self.enforce_iam_auth = moto.enforce_iam_auth
        self._front = front

    def __repr__(self) -> str:
        return (
            f"LocalAWS(region={self.region!r}, moto_url={self.moto_url!r}, "
            f"sts_port={self.sts_port})"
        )

    # -- addresses and environment -------------------------------------------------------------

    @property
    def sts_host(self) -> str:
        """The regional STS host a client in :attr:`region` signs for."""
        return sts_host_for_region(self.region)

    def sts_resolve(self, host: str | None = None) -> str:
        """``HOST=127.0.0.1:PORT`` for ``--sts-resolve`` (default host: the region's)."""
        return f"{host or self.sts_host}=127.0.0.1:{self.sts_port}"

    def verify_flags(self, host: str | None = None) -> list[str]:
        """``--sts-resolve ... --sts-ca-bundle ...`` for ``kubeiam verify`` / ``server``."""
        return ["--sts-resolve", self.sts_resolve(host), "--sts-ca-bundle", str(self.ca_bundle)]

    def client_env(self) -> dict[str, str]:
        """Environment for a subprocess: moto endpoints and region, but no credentials."""
        env = {f"AWS_ENDPOINT_URL_{service}": self.moto_url for service in MOTO_SERVICES}
        env["AWS_DEFAULT_REGION"] = self.region
        env["AWS_REGION"] = self.region
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        return env

    # -- moto access -------------------------------------------------------------------------

    def boto3_client(
        self,
        service: str,
        *,
        region: str | None = None,
        credentials: tuple[str, str] | tuple[str, str, str] | None = None,
    ) -> Any:
        """A boto3 client talking to moto, with the admin keys unless ``credentials`` are given."""
        import boto3
        from botocore.config import Config

        region = region or self.region
        admin = self.admin_for(region)
        key_id, secret, token = (
            (admin.access_key_id, admin.secret_access_key, None)
            if credentials is None
            else (credentials[0], credentials[1], credentials[2] if len(credentials) > 2 else None)
        )
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.moto_url,
            region_name=region,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )

    def admin_for(self, region: str) -> AdminCredentials:
        """The admin keys valid in ``region``'s partition (IAM keys never cross partitions)."""
        partition = partition_for_region(region).name
        if partition not in self.admins:
            raise ConfigError(
                f"the local AWS environment has no admin identity in partition {partition}",
                hint=f"use a region of {', '.join(sorted(self.admins))}",
            )
        return self.admins[partition]

    def create_user(
        self, name: str, *, path: str = "/", region: str | None = None
    ) -> tuple[str, str]:
        """Create IAM user ``name`` with an access key; returns (access key id, secret).

        The user lives in the partition of ``region`` (default: the environment's).
        """
        iam = self.boto3_client("iam", region=region)
        iam.create_user(UserName=name, Path=path)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return str(key["AccessKeyId"]), str(key["SecretAccessKey"])

    def user_arn(self, name: str, *, path: str = "/", region: str | None = None) -> str:
        partition = partition_for_region(region or self.region).name
        return f"arn:{partition}:iam::{self.account_id}:user{path}{name}"

    def create_role(
        self,
        name: str,
        *,
        trusted: str,
        external_id: str | None = None,
        path: str = "/",
        grant_to_user: str | None = None,
    ) -> str:
        """Create a role whose trust policy lets the principal ARN ``trusted`` assume it.

        With ``external_id`` the trust policy requires ``sts:ExternalId`` to equal it. With
        ``grant_to_user`` that user also gets an identity policy allowing ``sts:AssumeRole`` on
        the role, which moto requires when IAM auth is enforced. Returns the role ARN.
        """
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"AWS": trusted},
            "Action": "sts:AssumeRole",
        }
        if external_id is not None:
            statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
        trust = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        iam = self.boto3_client("iam")
        role = iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=trust)["Role"]
        arn = str(role["Arn"])
        if grant_to_user is not None:
            allow = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": arn}
            iam.put_user_policy(
                UserName=grant_to_user,
                PolicyName=f"assume-{name}",
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow]}),
            )
        return arn

    def eks_access_entries(
        self, cluster: str, *, region: str | None = None
    ) -> tuple[str, list[EntryRecord]]:
        """A cluster's authentication mode and access entries as the local EKS stores them,
        with the principal ids its API never shows (:func:`kubeiam.localaws.eks_api.entry_records`).
        """
        from kubeiam.localaws.eks_api import entry_records

        return entry_records(self.account_id, region or self.region, cluster)

    # -- the STS front -----------------------------------------------------------------------

    def set_sts_fault(self, kind: StsFault | str | None) -> None:
        """Make the STS front misbehave: "throttle", "redirect", "hang", "error500", or None."""
        self._front.set_fault(kind)

    @property
    def sts_fault(self) -> StsFault | None:
        return self._front.fault

    @property
    def sts_requests(self) -> int:
        """How many requests the STS front has received so far."""
        return self._front.sts_requests

    @property
    def redirect_hits(self) -> int:
        """How many requests followed the ``redirect`` fault to its plain-HTTP target."""
        return self._front.redirect_hits

    def reset_counters(self) -> None:
        """Set :attr:`sts_requests` and :attr:`redirect_hits` back to 0."""
        self._front.reset_counters()

    @contextlib.contextmanager
    def sts_fault_active(self, kind: StsFault | str) -> Iterator[None]:
        """``set_sts_fault(kind)`` for the duration of a ``with`` block, then None again."""
        self.set_sts_fault(kind)
        try:
            yield
        finally:
            self.set_sts_fault(None)


@contextlib.contextmanager
def start_local_aws(
    region: str = "us-east-1",
    *,
    enforce_iam_auth: bool = True,
    clock: Callable[[], datetime] | None = None,
    hang_limit: float = DEFAULT_HANG_LIMIT,
    extra_sts_hosts: tuple[str, ...] = (),
    sts_port: int = 0,
    relay_sts_calls: bool = False,
) -> Iterator[LocalAWS]:
    """Start moto and the STS front on 127.0.0.1; stop both and remove every file on exit.

    ``enforce_iam_auth`` switches moto's signature and policy checks (see
    :mod:`kubeiam.localaws.moto_server`); the STS front always checks signatures. ``clock`` is
    the STS front's notion of now (default: the real UTC clock). ``sts_port`` fixes the front's
    port (443 inside a network namespace that maps the STS host names to 127.0.0.1);
    ``relay_sts_calls`` makes the front relay other STS calls (AssumeRole) to moto.
    """
    workdir = Path(tempfile.mkdtemp(prefix="kubeiam-localaws-"))
    moto = MotoServer(enforce_iam_auth=enforce_iam_auth)
    front: StsFront | None = None
    try:
        certs = issue_sts_certificates(workdir, extra_hosts=extra_sts_hosts)
        admin = moto.start(bootstrap_region=region)
        credentials_file = _write_credentials(workdir, admin)
        front = StsFront(
            ssl_context=certs.server_context,
            clock=clock,
            hang_limit=hang_limit,
            port=sts_port,
            relay_to=moto.url if relay_sts_calls else None,
        )
        front.start()
        yield LocalAWS(
            region=region,
            moto=moto,
            front=front,
            admin=admin,
            ca_bundle=certs.ca_bundle,
            credentials_file=credentials_file,
            sts_hosts=certs.host_names,
        )
    finally:
        if front is not None:
            front.stop()
        moto.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _write_credentials(directory: Path, admin: AdminCredentials) -> Path:
    path = directory / "credentials"
    text = (
        f"[{ADMIN_PROFILE}]\n"
        f"aws_access_key_id = {admin.access_key_id}\n"
        f"aws_secret_access_key = {admin.secret_access_key}\n"
    )
    with open(path, "x", encoding="utf-8", opener=_private_opener) as handle:
        handle.write(text)
    return path


def _private_opener(path: str, flags: int) -> int:
    import os

    return os.open(path, flags, 0o600)
