"""Parse, canonicalise and match ARNs (pure).

Two kinds of ARN meet here:

* the ``Arn`` STS returns for a verified token (:func:`parse_caller_arn`), turned into a
  :class:`Principal` with its *canonical* ARN (protocol.md section 2);
* ARNs written by operators in mappings (:func:`canonicalize_mapping_arn`), which may carry an IAM
  path (``role/team/Admin``) that STS never reports: roles are matched without their path.

Matching is case-insensitive on the canonical ARN (:func:`arn_key`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from kubeiam.errors import MappingError, STSError


class PrincipalKind(enum.Enum):
    """The kinds of caller STS can report that kubeiam accepts."""

    ROOT = "root"
    USER = "user"
    ASSUMED_ROLE = "assumed-role"
    FEDERATED_USER = "federated-user"


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller ARN from STS, parsed."""

    kind: PrincipalKind
    partition: str
    account_id: str
    arn: str
    #: The ARN mappings are matched against: the IAM role for an assumed role, else ``arn``.
    canonical_arn: str
    #: User name (with path), role name, or federated user name; empty for root.
    name: str
    #: Session name of an assumed role; empty otherwise.
    session_name: str = ""


#: Account ids are exactly twelve digits.
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
#: Partition names as they appear in ARNs.
PARTITION_NAME = re.compile(r"^aws(-[a-z]+)*$")
#: IAM names: letters, digits and ``+=,.@_-`` (role/user names); paths are ``/``-separated.
_IAM_NAME = re.compile(r"^[\w+=,.@-]+$", re.ASCII)
#: Session names: 2-64 of ``\w+=,.@-`` per IAM, but STS also reports federated names this way.
_SESSION_NAME = re.compile(r"^[\w+=,.@-]+$", re.ASCII)

#: The lint code of a mapping ARN that is not a valid IAM role or user ARN.
INVALID_ARN = "invalid-arn"

# Sentinels: ARN prefixes refused outright (protocol.md section 2 "anything else").
_AWS_SERVICE_ROLE_PREFIX = "aws:"


#: mapUsers may also name the account root or a federated user (STS reports both as such).
_ROOT_ARN = re.compile(r"arn:(aws(?:-[a-z]+)*):iam::([0-9]{12}):root", re.ASCII)
_FEDERATED_ARN = re.compile(
    r"arn:(aws(?:-[a-z]+)*):sts::([0-9]{12}):federated-user/[\w+=,.@-]+", re.ASCII
)
#: An IAM group ARN, with or without a path (``group/team/dev/Developers``).
_GROUP_ARN = re.compile(
    r"arn:(aws(?:-[a-z]+)*):iam::([0-9]{12}):group/((?:[\w+=,.@-]+/)*)[\w+=,.@-]{1,128}", re.ASCII
)
#: An IAM Identity Center role name, ``AWSReservedSSO_<permission set>_<16 hex digits>``: the set
#: name is everything before the last ``_<16 hex>``. IAM role names are case-insensitive.
_SSO_ROLE_NAME = re.compile(r"awsreservedsso_(.+)_[0-9a-f]{16}", re.ASCII | re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ArnParts:
    """The fields of an ARN (``arn:partition:service:region:account:resource``)."""

    partition: str
    service: str
    region: str
    account: str
    resource: str

    @property
    def resource_type(self) -> str:
        """``role`` of ``role/team/Admin``."""
        return self.resource.partition("/")[0]

    @property
    def resource_path(self) -> str:
        """``team/Admin`` of ``role/team/Admin``."""
        return self.resource.partition("/")[2]


def split_arn(arn: str) -> ArnParts | None:
    """The fields of ``arn``, or None when it is not shaped like an ARN (nothing is validated)."""
    try:
        return ArnParts(*_split(arn))
    except ValueError:
        return None


def arn_resource(arn: str) -> str:
    """What follows the account (``user/alice``), or ``arn`` itself when it is not an ARN."""
    return arn.split(":", 5)[-1] if arn.startswith("arn:") else arn


def is_iam_role_arn(arn: str) -> bool:
    """True when ``arn`` is written as an IAM role ARN (its service field is ``iam`` and it names a
    ``role/``); :func:`canonicalize_mapping_arn` validates the rest."""
    return arn.split(":")[2:3] == ["iam"] and ":role/" in arn


def is_root_or_federated_user_arn(arn: str) -> bool:
    """True for the account root's ARN and a federated user's (mapUsers may name both)."""
    return bool(_ROOT_ARN.fullmatch(arn) or _FEDERATED_ARN.fullmatch(arn))


def parse_group_arn(arn: str) -> tuple[str, str] | None:
    """(partition, account) of an IAM group ARN, or None when ``arn`` is not one."""
    match = _GROUP_ARN.fullmatch(arn)
    return None if match is None else (match.group(1), match.group(2))


def sso_permission_set(role_name: str) -> str | None:
    """The permission set an IAM Identity Center role is provisioned for, as the role name
    spells it, or None for any other role name."""
    match = _SSO_ROLE_NAME.fullmatch(role_name)
    return None if match is None else match.group(1)


def _split(arn: str) -> tuple[str, str, str, str, str]:
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn!r}")
    _, partition, service, region, account, resource = parts
    return partition, service, region, account, resource


def parse_caller_arn(arn: str) -> Principal:
    """Parse the ``Arn`` of a GetCallerIdentity answer into a :class:`Principal`.

    Raises :class:`STSError` for anything outside the table of protocol.md section 2, including
    service-linked sessions such as ``assumed-role/aws:ec2-instance/i-...``.
    """
    try:
        partition, service, region, account, resource = _split(arn)
    except ValueError:
        raise STSError(f"STS returned a caller ARN kubeiam cannot parse: {arn!r}") from None
    if not PARTITION_NAME.fullmatch(partition) or not ACCOUNT_ID.fullmatch(account) or region:
        raise STSError(f"STS returned a malformed caller ARN: {arn!r}")
    kind_s, _, rest = resource.partition("/")
    if service == "iam" and resource == "root":
        return Principal(PrincipalKind.ROOT, partition, account, arn, arn, "")
    if service == "iam" and kind_s == "user" and rest:
        segments = rest.split("/")
        if all(_IAM_NAME.fullmatch(s) for s in segments):
            return Principal(PrincipalKind.USER, partition, account, arn, arn, rest)
    if service == "sts" and kind_s == "assumed-role":
        role, sep, session = rest.partition("/")
        if (
            sep
            and _IAM_NAME.fullmatch(role)
            and _SESSION_NAME.fullmatch(session)
            and not role.startswith(_AWS_SERVICE_ROLE_PREFIX)
        ):
            canonical = f"arn:{partition}:iam::{account}:role/{role}"
            return Principal(
                PrincipalKind.ASSUMED_ROLE, partition, account, arn, canonical, role, session
            )
    if service == "sts" and kind_s == "federated-user" and rest and _IAM_NAME.fullmatch(rest):
        return Principal(PrincipalKind.FEDERATED_USER, partition, account, arn, arn, rest)
    raise STSError(f"STS returned a caller ARN kubeiam does not accept: {arn!r}")


@dataclass(frozen=True, slots=True)
class MappingArn:
    """An ARN written in a mapping, with the form that matches STS callers."""

    original: str
    #: ARN as STS would report the principal: role paths removed.
    canonical: str
    #: True when a path was removed (loaders warn: the reference never matched these).
    had_path: bool
    resource_type: str
    account_id: str
    partition: str


def canonicalize_mapping_arn(arn: str) -> MappingArn:
    """Validate an operator-written role or user ARN and strip a role's IAM path.

    ``arn:aws:iam::111122223333:role/team/Admin`` -> ``arn:aws:iam::111122223333:role/Admin``.
    User ARNs keep their path: STS reports users with it.
    """
    try:
        partition, service, region, account, resource = _split(arn.strip())
    except ValueError:
        raise MappingError(
            f"{arn!r} is not an ARN",
            hint="write it as arn:aws:iam::<12-digit account>:role/<name> or .../user/<name>",
            code=INVALID_ARN,
        ) from None
    if service != "iam" or region or not PARTITION_NAME.fullmatch(partition):
        raise MappingError(
            f"{arn!r} is not an IAM ARN",
            hint="mappings take IAM role or user ARNs (arn:<partition>:iam::<account>:...)",
            code=INVALID_ARN,
        )
    if not ACCOUNT_ID.fullmatch(account):
        raise MappingError(
            f"{arn!r} has account {account!r}, which is not 12 digits",
            hint="copy the ARN from the IAM console or `aws iam get-role`",
            code=INVALID_ARN,
        )
    rtype, _, rest = resource.partition("/")
    segments = rest.split("/") if rest else []
    if rtype not in ("role", "user") or not segments or not all(segments):
        raise MappingError(
            f"{arn!r} does not name an IAM role or user",
            hint="the resource must be role/<name> or user/<name> (an optional /path/ is allowed)",
            code=INVALID_ARN,
        )
    if not all(_IAM_NAME.fullmatch(s) for s in segments):
        raise MappingError(
            f"{arn!r} contains characters IAM does not allow in names", code=INVALID_ARN
        )
    if rtype == "role":
        canonical = f"arn:{partition}:iam::{account}:role/{segments[-1]}"
        had_path = len(segments) > 1
    else:
        canonical = f"arn:{partition}:iam::{account}:user/{rest}"
        had_path = False
    return MappingArn(arn, canonical, had_path, rtype, account, partition)


def arn_account(arn: str) -> str:
    """The account field of ``arn``, or "" when it has none (an empty or malformed ARN)."""
    parts = arn.split(":", 5)
    return parts[4] if len(parts) == 6 else ""


def arn_key(arn: str) -> str:
    """The key ARNs are compared by: case-insensitive (the reference lower-cases too)."""
    return arn.lower()
