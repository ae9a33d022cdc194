"""The EKS access-entry API's rules, for the local EKS (pure: no moto, no I/O).

Every rule is a small function named for what it checks and raises :class:`EksApiError` with
the error code EKS uses; :mod:`kubeiam.localaws.eks_access` holds the state they guard and
:mod:`kubeiam.localaws.eks_api` plugs both into moto's EKS backend. Each rule cites the AWS
page it comes from; where AWS documents no rule, the comment says what was chosen (``CHOSEN:``).

Pages cited (all under https://docs.aws.amazon.com/eks/latest/):
  userguide/creating-access-entries.html          "Create access entries"        [CREATE]
  userguide/access-policies.html                  "Associate access policies"    [ASSOCIATE]
  userguide/access-policy-permissions.html        "Review access policy permissions" [POLICIES]
  userguide/setting-up-access-entries.html        "Change authentication mode"   [MODE]
  userguide/grant-k8s-access.html#set-cam         "Set cluster authentication mode" [CAM]
  APIReference/API_CreateAccessEntry.html         CreateAccessEntry               [API-CREATE]
  APIReference/API_CreateAccessConfigRequest.html accessConfig at cluster creation [API-CONFIG]
  APIReference/API_ListAccessEntries.html         maxResults 1..100               [API-LIST]

This module must not import :mod:`kubeiam.eks`: the emulator is an independent check of what
kubeiam believes about EKS, so the few facts both need (policy names, modes) are written here
again on purpose.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

_DOCS = "https://docs.aws.amazon.com/eks/latest/"
CREATE_URL = _DOCS + "userguide/creating-access-entries.html"
ASSOCIATE_URL = _DOCS + "userguide/access-policies.html"
POLICIES_URL = _DOCS + "userguide/access-policy-permissions.html"
MODE_URL = _DOCS + "userguide/setting-up-access-entries.html"


class ErrorCode(StrEnum):
    """The EKS error codes the access-entry operations answer with (botocore's EKS model)."""

    INVALID_PARAMETER = "InvalidParameterException"
    INVALID_REQUEST = "InvalidRequestException"
    NOT_FOUND = "ResourceNotFoundException"
    IN_USE = "ResourceInUseException"


class EksApiError(Exception):
    """A refusal as EKS gives it: an error code and a message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- authentication modes --------------------------------------------------------------------

#: [CAM] "Once the access entry method is enabled, it cannot be disabled. If the ConfigMap
#: method is not enabled during cluster creation, it cannot be enabled later." So the mode only
#: moves forward in this order. [MODE] tells a CONFIG_MAP cluster's owner to pass ``API``
#: instead of ``API_AND_CONFIG_MAP`` "to disable the ConfigMap method permanently", so a jump
#: from CONFIG_MAP straight to API is allowed too.
MODE_ORDER: Mapping[str, int] = {"CONFIG_MAP": 0, "API_AND_CONFIG_MAP": 1, "API": 2}
#: [API-CONFIG] "If you create a cluster by using the EKS API, AWS SDKs, or CloudFormation, the
#: default is CONFIG_MAP."
DEFAULT_MODE = "CONFIG_MAP"


def check_mode_known(mode: str) -> None:
    if mode not in MODE_ORDER:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"Unsupported authentication mode {mode}: use one of {', '.join(MODE_ORDER)}",
        )


def check_mode_transition(current: str, desired: str) -> None:
    """[CAM] one way only. CHOSEN: asking for the current mode is refused (an update that
    changes nothing), with the same code as a backward move."""
    check_mode_known(desired)
    if MODE_ORDER[desired] <= MODE_ORDER[current]:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"Unsupported authentication mode update from {current} to {desired}",
        )


def check_entry_api_enabled(mode: str, cluster_name: str) -> None:
    """[MODE] "To begin using access entries, you must change the authentication mode of the
    cluster to either the API_AND_CONFIG_MAP or API modes. This adds the API for access entries."
    CHOSEN: InvalidRequestException ("invalid given the state of the cluster")."""
    if mode == "CONFIG_MAP":
        raise EksApiError(
            ErrorCode.INVALID_REQUEST,
            f"The cluster {cluster_name}'s authentication mode must be set to one of "
            "[API, API_AND_CONFIG_MAP] to perform this operation.",
        )


# -- principals ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """An IAM user or role as IAM knows it now. ``unique_id`` is its AIDA.../AROA... id."""

    arn: str
    unique_id: str
    kind: Literal["user", "role"]
    name: str
    path: str
    account: str
    partition: str


class PrincipalDirectory(Protocol):
    """Where principals are looked up (moto's IAM, in :mod:`kubeiam.localaws.eks_api`)."""

    def find(self, arn: str) -> Principal | None: ...


_IAM_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):(?P<kind>user|role)"
    r"(?P<path>/(?:[\x21-\x7e]+/)?)(?P<name>[\w+=,.@-]+)$"
)
#: [CREATE] "You cannot create access entries where the principal ARN is a service linked role
#: ... arn:aws:iam::*:role/aws-service-role/*".
SERVICE_LINKED_ROLE_PATH = "/aws-service-role/"


def check_principal_arn(arn: str) -> re.Match[str]:
    """[API-CREATE] the principal is an IAM user or role; "You can't use the STS session
    principal type with access entries". [CREATE] a role ARN "can include a path". Service-linked
    roles are refused. CHOSEN: every other ARN (groups, accounts, sts) is InvalidParameter."""
    if ":sts::" in arn and ":assumed-role/" in arn:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"The principalArn {arn} is an STS session: access entries take the IAM role's ARN "
            "(arn:...:iam::ACCOUNT:role/PATH/NAME), not a temporary session",
        )
    match = _IAM_ARN.match(arn)
    if match is None:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"The principalArn {arn} is not the ARN of an IAM user or role",
        )
    if match["kind"] == "role" and match["path"].startswith(SERVICE_LINKED_ROLE_PATH):
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"The principalArn {arn} is a service-linked role; access entries do not support "
            "service-linked roles",
        )
    return match


def check_principal_partition(match: re.Match[str], partition: str) -> None:
    """CHOSEN (no page says it; IAM and EKS never cross partitions): a principal of another
    partition than the cluster's is InvalidParameter."""
    if match["partition"] != partition:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"The principalArn {match.string} is of partition {match['partition']}, the cluster "
            f"of {partition}",
        )


def check_principal_exists(arn: str, directory: PrincipalDirectory) -> Principal:
    """[CREATE] "An access entry includes the ARN of one, and only one, existing IAM principal."
    The ARN must be the principal's full ARN, path included. CHOSEN: InvalidParameterException."""
    principal = directory.find(arn)
    if principal is None:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"The principalArn {arn} is invalid: no IAM user or role has this ARN "
            "(a role with a path must be named with its path)",
        )
    return principal


# -- entry types -----------------------------------------------------------------------------

STANDARD = "STANDARD"
#: [CREATE] the types and what each is for; "If you don't specify a type, Amazon EKS
#: automatically sets the type to STANDARD". CHOSEN: HYPERPOD_LINUX (listed by newer API
#: references) is not emulated: nothing in kubeiam uses it.
ENTRY_TYPES = ("STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "EC2", "HYBRID_LINUX")
NODE_TYPES = frozenset(ENTRY_TYPES) - {STANDARD}


def check_entry_type(entry_type: str) -> None:
    if entry_type not in ENTRY_TYPES:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"The type {entry_type} is invalid: use one of {', '.join(ENTRY_TYPES)}",
        )


def check_node_entry_principal(entry_type: str, principal: Principal, cluster_account: str) -> None:
    """[API-CREATE] "For nodes (EC2, EC2_LINUX, EC2_WINDOWS, FARGATE_LINUX, and HYBRID_LINUX),
    the only valid ARN is IAM roles." [CREATE] "If the type of the access entry is anything other
    than STANDARD ..., the ARN must be in the same AWS account that your cluster is in." """
    if entry_type == STANDARD:
        return
    if principal.kind != "role":
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"An access entry of type {entry_type} takes an IAM role, not {principal.arn}",
        )
    if principal.account != cluster_account:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"An access entry of type {entry_type} takes a role of the cluster's account "
            f"{cluster_account}, not of {principal.account}",
        )


# -- usernames and groups --------------------------------------------------------------------

#: [CREATE] a username you specify "can't start with system:, eks:, aws:, amazon:, or iam:".
RESERVED_USERNAME_PREFIXES = ("system:", "eks:", "aws:", "amazon:", "iam:")
#: [CREATE] "If you add either {{SessionName}} or {{SessionNameRaw}} to your username, the
#: username must include a colon before {{SessionName}}."
SESSION_PLACEHOLDERS = ("{{SessionName}}", "{{SessionNameRaw}}")
#: Group names EKS refuses. Not on the user-guide page; EKS answers "The kubernetes group name
#: system:masters is invalid, it cannot start with system:" (quoted in
#: https://github.com/terraform-aws-modules/terraform-aws-eks/issues/2915, and confirmed as the
#: console's check in https://github.com/awsdocs/amazon-eks-user-guide/pull/985).
RESERVED_GROUP_PREFIX = "system:"


def check_username(username: str | None, entry_type: str) -> None:
    """[CREATE] "If the type of the access entry is STANDARD, you can specify a username", with
    the reserved prefixes and the colon-before-{{SessionName}} rule. CHOSEN: a username for
    another type, and an empty username, are InvalidParameter."""
    if username is None:
        return
    if entry_type != STANDARD:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"An access entry of type {entry_type} cannot have a username: EKS sets it",
        )
    if not username:
        raise EksApiError(ErrorCode.INVALID_PARAMETER, "The username cannot be empty")
    for prefix in RESERVED_USERNAME_PREFIXES:
        if username.startswith(prefix):
            raise EksApiError(
                ErrorCode.INVALID_PARAMETER,
                f"The username {username} is invalid, it cannot start with {prefix}",
            )
    for placeholder in SESSION_PLACEHOLDERS:
        at = username.find(placeholder)
        if at != -1 and ":" not in username[:at]:
            raise EksApiError(
                ErrorCode.INVALID_PARAMETER,
                f"The username {username} is invalid: a colon must come before {placeholder}",
            )


def check_groups(groups: Sequence[str] | None, entry_type: str) -> None:
    """[CREATE] "You can't use the --kubernetes-groups option when you specify a type other
    than STANDARD"; group names cannot start with ``system:`` (see RESERVED_GROUP_PREFIX).
    CHOSEN: an empty group name is InvalidParameter."""
    if not groups:
        return
    if entry_type != STANDARD:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"An access entry of type {entry_type} cannot have kubernetesGroups",
        )
    for group in groups:
        if not group:
            raise EksApiError(ErrorCode.INVALID_PARAMETER, "A kubernetes group name is empty")
        if group.startswith(RESERVED_GROUP_PREFIX):
            raise EksApiError(
                ErrorCode.INVALID_PARAMETER,
                f"The kubernetes group name {group} is invalid, it cannot start with "
                f"{RESERVED_GROUP_PREFIX}",
            )


def default_username(principal: Principal, entry_type: str) -> str:
    """[CREATE] the table "Username value that Amazon EKS automatically sets": a user's ARN; a
    role's assumed-role STS ARN with ``{{SessionName}}``, its path removed; ``system:node:...``
    for node types. CHOSEN: EC2 (Auto Mode), absent from that table, gets the EC2_LINUX value."""
    if entry_type in ("EC2_LINUX", "EC2_WINDOWS", "EC2"):
        return "system:node:{{EC2PrivateDNSName}}"
    if entry_type in ("FARGATE_LINUX", "HYBRID_LINUX"):
        return "system:node:{{SessionName}}"
    if principal.kind == "user":
        return principal.arn
    return (
        f"arn:{principal.partition}:sts::{principal.account}:assumed-role/"
        f"{principal.name}/{{{{SessionName}}}}"
    )


# -- access policies -------------------------------------------------------------------------

#: [POLICIES] the AWS-managed access policies EKS's docs describe. Duplicated from
#: kubeiam.eks.access_policies on purpose: the emulator must not take kubeiam's word for EKS.
ACCESS_POLICY_NAMES = (
    "AmazonEKSAdminPolicy",
    "AmazonEKSAdminViewPolicy",
    "AmazonEKSAutoNodePolicy",
    "AmazonEKSBlockStorageClusterPolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSComputeClusterPolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSHybridPolicy",
    "AmazonEKSLoadBalancingClusterPolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingClusterPolicy",
    "AmazonEKSNetworkingPolicy",
    "AmazonEKSViewPolicy",
)
#: [POLICIES] "If you manually specify a Node IAM role in a NodeClass, you need to create an
#: Access Entry that associates the new Node IAM role with this Access Policy": the one policy an
#: EC2 (Auto Mode) entry may carry. [ASSOCIATE] every other non-STANDARD type takes none.
EC2_ENTRY_POLICY = "AmazonEKSAutoNodePolicy"
ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"
_POLICY_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):eks::aws:cluster-access-policy/(?P<name>.+)$"
)


def policy_arn(name: str, partition: str) -> str:
    """[POLICIES] ``arn:aws:eks::aws:cluster-access-policy/NAME`` (``aws-cn`` in China)."""
    return f"arn:{partition}:eks::aws:cluster-access-policy/{name}"


def check_policy_arn(arn: str, partition: str) -> str:
    """The policy's name. CHOSEN: an ARN that is no access-policy ARN of the cluster's partition
    is InvalidParameter; a well-formed ARN naming no policy is ResourceNotFound."""
    match = _POLICY_ARN.match(arn)
    if match is None or match["partition"] != partition:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"The policyArn {arn} is not an access policy ARN of partition {partition} "
            f"({policy_arn('NAME', partition)})",
        )
    if match["name"] not in ACCESS_POLICY_NAMES:
        raise EksApiError(ErrorCode.NOT_FOUND, f"The access policy {arn} does not exist")
    return match["name"]


def check_policy_allowed_for_type(policy: str, entry_type: str) -> None:
    """[ASSOCIATE] "You can assign one or more access policies to access entries of type
    STANDARD"; [CREATE] "You can't associate an access policy to this access entry, because its
    type is a value other than STANDARD" (with the EC2 / AmazonEKSAutoNodePolicy exception)."""
    if entry_type == STANDARD or (entry_type == "EC2" and policy == EC2_ENTRY_POLICY):
        return
    raise EksApiError(
        ErrorCode.INVALID_PARAMETER,
        f"An access entry of type {entry_type} cannot be associated with access policy {policy}",
    )


#: Kubernetes namespace names (RFC 1123 labels, at most 63 characters) with the ``*`` wildcard
#: [ASSOCIATE] allows ("you can specify dev-* as a namespace name"). CHOSEN: anything else is
#: InvalidParameter; EKS "doesn't confirm the spelling or existence of the namespaces".
_NAMESPACE = re.compile(r"^[a-z0-9*]([-a-z0-9*]{0,61}[a-z0-9*])?$")


def check_access_scope(scope: Mapping[str, Any] | None) -> tuple[str, tuple[str, ...]]:
    """[ASSOCIATE] scope ``cluster`` (every namespace) or ``namespace`` with one or more
    namespaces. CHOSEN: namespaces with a cluster scope, or none with a namespace scope, are
    InvalidParameter. Returns (type, namespaces)."""
    if not scope or "type" not in scope:
        raise EksApiError(ErrorCode.INVALID_PARAMETER, "The accessScope needs a type")
    scope_type = str(scope["type"])
    namespaces = tuple(str(n) for n in scope.get("namespaces") or ())
    if scope_type == "cluster":
        if namespaces:
            raise EksApiError(
                ErrorCode.INVALID_PARAMETER,
                "An accessScope of type cluster cannot list namespaces",
            )
        return scope_type, ()
    if scope_type != "namespace":
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"The accessScope type {scope_type} is invalid: use cluster or namespace",
        )
    if not namespaces:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            "An accessScope of type namespace needs at least one namespace",
        )
    for namespace in namespaces:
        if not _NAMESPACE.match(namespace):
            raise EksApiError(
                ErrorCode.INVALID_PARAMETER, f"The namespace {namespace!r} is not a valid name"
            )
    return scope_type, namespaces


# -- pagination ------------------------------------------------------------------------------

#: [API-LIST] "This value can be between 1 and 100. If you don't use this parameter, 100 results
#: and a nextToken value, if applicable, are returned."
MAX_RESULTS = 100


def page(
    items: Sequence[Any], max_results: int | None, next_token: str | None
) -> tuple[list[Any], str | None]:
    """One page of ``items`` and the token of the next one (opaque: an encoded offset)."""
    size = MAX_RESULTS if max_results is None else max_results
    if not 1 <= size <= MAX_RESULTS:
        raise EksApiError(
            ErrorCode.INVALID_PARAMETER,
            f"maxResults {size} is invalid: it must be between 1 and {MAX_RESULTS}",
        )
    start = 0
    if next_token:
        try:
            start = int(base64.urlsafe_b64decode(next_token.encode("ascii")).decode("ascii"))
        except (ValueError, UnicodeError):
            raise EksApiError(ErrorCode.INVALID_PARAMETER, "The nextToken is invalid") from None
    end = start + size
    token = base64.urlsafe_b64encode(str(end).encode("ascii")).decode("ascii")
    return list(items[start:end]), token if end < len(items) else None
