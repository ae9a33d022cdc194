"""The client side of the EKS access-entry API: read a cluster's mode and entries, write entries.

A thin adapter over boto3's EKS (and IAM, to name a principal that does not exist) client: every
call goes through :func:`kubeiam.aws.clients.translate_errors`, and the refusals a person can fix
become kubeiam errors that say how (a cluster that does not exist names the closest clusters of
the region; a cluster in CONFIG_MAP mode says how to turn the API on; an entry created by someone
else in the meantime is a :class:`~kubeiam.errors.ConflictError`, so the editor reads again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubeiam.aws.clients import translate_errors
from kubeiam.eks.access_entries import STANDARD, AccessEntry, PolicyGrant
from kubeiam.eks.access_policies import AuthenticationMode, ScopeType
from kubeiam.errors import AWSAdminError, ConfigError, ConflictError, NotFoundError
from kubeiam.suggestions import closest_names, not_found_message, quote_name

#: Pages read at most per listing: 100 entries a page, so 100,000 entries; a bound against a
#: service that keeps answering with a next token.
_MAX_PAGES = 1000


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """What DescribeCluster says about the cluster's access."""

    name: str
    arn: str
    mode: AuthenticationMode
    partition: str
    account: str
    region: str


class EntriesClient:
    """EKS access-entry calls for one cluster (``eks``: a boto3 EKS client)."""

    def __init__(self, eks: Any, cluster: str, *, iam: Any = None) -> None:
        self.eks = eks
        self.iam = iam
        self.cluster = cluster

    def describe_cluster(self) -> ClusterInfo:
        try:
            with translate_errors("eks:DescribeCluster", resource=self.cluster):
                cluster = self.eks.describe_cluster(name=self.cluster)["cluster"]
        except AWSAdminError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
            raise NotFoundError(
                not_found_message("EKS cluster", self.cluster, self._closest_clusters())
                + f" in region {self.eks.meta.region_name}",
                hint="check --cluster and --region (`aws eks list-clusters --region R`)",
            ) from None
        arn = str(cluster["arn"])
        mode = (cluster.get("accessConfig") or {}).get("authenticationMode") or "CONFIG_MAP"
        parts = arn.split(":")
        return ClusterInfo(
            self.cluster, arn, AuthenticationMode(mode), parts[1], parts[4], parts[3]
        )

    def _closest_clusters(self) -> list[str]:
        try:
            with translate_errors("eks:ListClusters"):
                pages = self.eks.get_paginator("list_clusters").paginate()
                names = [n for page in pages for n in page.get("clusters", [])]
        except AWSAdminError:
            return []
        return closest_names(self.cluster, names)

    def require_entry_api(self, info: ClusterInfo) -> None:
        """ConfigError when the cluster's mode has no access-entry API (CONFIG_MAP)."""
        if info.mode is AuthenticationMode.CONFIG_MAP:
            raise ConfigError(
                f"EKS cluster {quote_name(self.cluster)} is in authentication mode CONFIG_MAP: "
                "it has no access entries (only aws-auth)",
                hint="use --store aws-auth, or turn the access-entry API on (one way): aws eks "
                f"update-cluster-config --name {self.cluster} --access-config "
                "authenticationMode=API_AND_CONFIG_MAP",
            )

    # -- reading --

    def read_entries(self) -> list[AccessEntry]:
        """Every entry with its policies, in the order EKS lists them."""
        arns: list[str] = []
        with translate_errors("eks:ListAccessEntries", resource=self.cluster):
            pages = self.eks.get_paginator("list_access_entries").paginate(clusterName=self.cluster)
            for number, page in enumerate(pages):
                if number >= _MAX_PAGES:
                    break
                arns.extend(str(a) for a in page.get("accessEntries", []))
        entries = []
        for arn in arns:
            found = self.read_entry(arn)
            if found is not None:  # deleted between the listing and now
                entries.append(found)
        return entries

    def read_entry(self, principal_arn: str) -> AccessEntry | None:
        try:
            with translate_errors("eks:DescribeAccessEntry", resource=principal_arn):
                raw = self.eks.describe_access_entry(
                    clusterName=self.cluster, principalArn=principal_arn
                )["accessEntry"]
            policies = self._policies(principal_arn)
        except AWSAdminError as exc:
            if exc.code == "ResourceNotFoundException":
                return None
            raise
        return AccessEntry(
            principal_arn,
            str(raw.get("username", "")),
            tuple(str(g) for g in raw.get("kubernetesGroups") or ()),
            str(raw.get("type") or STANDARD),
            policies,
            created_at=_created_at(raw.get("createdAt")),
        )

    def _policies(self, principal_arn: str) -> tuple[PolicyGrant, ...]:
        grants = []
        with translate_errors("eks:ListAssociatedAccessPolicies", resource=principal_arn):
            pages = self.eks.get_paginator("list_associated_access_policies").paginate(
                clusterName=self.cluster, principalArn=principal_arn
            )
            for page in pages:
                for item in page.get("associatedAccessPolicies", []):
                    scope = item.get("accessScope") or {}
                    grants.append(
                        PolicyGrant(
                            str(item["policyArn"]),
                            ScopeType(scope.get("type", "cluster")),
                            tuple(sorted(str(n) for n in scope.get("namespaces") or ())),
                        )
                    )
        return tuple(sorted(grants))

    def check_principal(self, principal_arn: str) -> None:
        """NotFoundError when IAM has no such user or role, naming the role's real ARN when
        only its path is missing. Says nothing when IAM cannot be asked (no client, refused):
        EKS checks again."""
        if self.iam is None:
            return
        kind = "user" if ":user/" in principal_arn else "role"
        name = principal_arn.rsplit("/", 1)[-1]
        try:
            with translate_errors(f"iam:Get{kind.capitalize()}", resource=name):
                if kind == "user":
                    found = str(self.iam.get_user(UserName=name)["User"]["Arn"])
                else:
                    found = str(self.iam.get_role(RoleName=name)["Role"]["Arn"])
        except AWSAdminError as exc:
            if exc.code not in ("NoSuchEntity", "NoSuchEntityException"):
                return
            raise NotFoundError(
                f"IAM {kind} {quote_name(principal_arn)} does not exist",
                hint=f"create it first, or check the name (`aws iam get-{kind} --{kind}-name "
                f"{name}`)",
            ) from None
        if found != principal_arn:
            raise NotFoundError(
                f"IAM {kind} {quote_name(principal_arn)} does not exist; the {kind} named "
                f"{quote_name(name)} is {found}",
                hint=f"access entries name a role with its IAM path: use {found}",
            )

    # -- writing --

    def create(self, entry: AccessEntry, *, username_given: bool) -> None:
        kwargs: dict[str, Any] = {
            "clusterName": self.cluster,
            "principalArn": entry.principal_arn,
            "type": entry.entry_type,
        }
        if entry.entry_type == STANDARD:
            kwargs["kubernetesGroups"] = list(entry.groups)
            if username_given:
                kwargs["username"] = entry.username
        try:
            with translate_errors("eks:CreateAccessEntry", resource=entry.principal_arn):
                self.eks.create_access_entry(**kwargs)
        except AWSAdminError as exc:
            if exc.code == "ResourceInUseException":
                raise ConflictError(
                    f"an access entry for {entry.principal_arn} was created meanwhile"
                ) from None
            raise
        for grant in entry.policies:
            self.associate(entry.principal_arn, grant)

    def update(self, entry: AccessEntry) -> None:
        with translate_errors("eks:UpdateAccessEntry", resource=entry.principal_arn):
            self.eks.update_access_entry(
                clusterName=self.cluster,
                principalArn=entry.principal_arn,
                username=entry.username,
                kubernetesGroups=list(entry.groups),
            )

    def delete(self, principal_arn: str) -> None:
        try:
            with translate_errors("eks:DeleteAccessEntry", resource=principal_arn):
                self.eks.delete_access_entry(clusterName=self.cluster, principalArn=principal_arn)
        except AWSAdminError as exc:
            if exc.code != "ResourceNotFoundException":  # already gone is what was wanted
                raise

    def associate(self, principal_arn: str, grant: PolicyGrant) -> None:
        scope: dict[str, Any] = {"type": grant.scope.value}
        if grant.namespaces:
            scope["namespaces"] = list(grant.namespaces)
        with translate_errors("eks:AssociateAccessPolicy", resource=principal_arn):
            self.eks.associate_access_policy(
                clusterName=self.cluster,
                principalArn=principal_arn,
                policyArn=grant.policy_arn,
                accessScope=scope,
            )

    def disassociate(self, principal_arn: str, policy_arn: str) -> None:
        try:
            with translate_errors("eks:DisassociateAccessPolicy", resource=principal_arn):
                self.eks.disassociate_access_policy(
                    clusterName=self.cluster, principalArn=principal_arn, policyArn=policy_arn
                )
        except AWSAdminError as exc:
            if exc.code != "ResourceNotFoundException":
                raise


def _created_at(value: object) -> datetime | None:
    """An entry's ``createdAt`` as botocore parses it (an aware datetime); a naive one is UTC
    (botocore's own reading of a timestamp without a zone); anything else is unknown."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
