"""The AWS-managed EKS access policies and the Kubernetes RBAC rules each one grants (pure data).

Transcribed from AWS's "Review access policy permissions" page (:data:`SOURCE_URL`), whose source
is ``latest/ug/manage-access/k8s-access/access-policy-reference.adoc`` in the
``awsdocs/amazon-eks-user-guide`` repository. "Each row of each table in each access policy is a
separate rule": each :class:`PolicyRule` below is one such row (the order of rows carries no
meaning; rows the Admin and Edit tables share are written once), with the page's typos fixed
(``r``esourcequotas/status`` is ``resourcequotas/status``).

Policies AWS describes only in prose (the EKS Auto Mode, storage, networking and load-balancing
policies given to EKS's own components) are listed with ``rules_documented=False`` and no rules:
kubeiam cannot say what they permit, so the access report shows them as "not documented" instead
of guessing. AWS adds policies over time (``aws eks list-access-policies`` is the authority for the
names); a name that is not in :data:`ACCESS_POLICIES` is unknown to kubeiam, not invalid in AWS.

How a rule applies depends on the association's access scope: under a ``cluster`` scope every
rule applies cluster-wide (like a ClusterRoleBinding); under a ``namespace`` scope the rules apply
in the listed namespaces only (like RoleBindings), so a rule with ``namespaced=False`` (a
cluster-scoped resource such as ``namespaces`` or ``nodes``, or non-resource URLs) grants nothing
there beyond what RBAC itself gives a namespaced binding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

#: The page every rule below comes from.
SOURCE_URL = "https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html"
#: Access policies are AWS-owned: the account field of their ARN is literally ``aws`` and the
#: region is empty; only the partition changes (``arn:aws-cn:eks::aws:...`` in China, as the
#: page's China edition shows).
ARN_PREFIX_FORMAT = "arn:{partition}:eks::aws:cluster-access-policy/"


class ScopeType(StrEnum):
    """An association's access scope (the EKS API's ``AccessScopeType``)."""

    CLUSTER = "cluster"
    NAMESPACE = "namespace"


class AuthenticationMode(StrEnum):
    """A cluster's ``accessConfig.authenticationMode``; it only ever moves forward (in order)."""

    CONFIG_MAP = "CONFIG_MAP"
    API_AND_CONFIG_MAP = "API_AND_CONFIG_MAP"
    API = "API"


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One allow rule, shaped like a Kubernetes RBAC ``PolicyRule``. ``""`` is the core group."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    non_resource_urls: tuple[str, ...] = ()
    #: False when the rule is about cluster-scoped resources or non-resource URLs only.
    namespaced: bool = True


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """One AWS-managed access policy."""

    name: str
    description: str
    #: The scope AWS says the policy is "typically" associated with.
    typical_scope: ScopeType
    rules: tuple[PolicyRule, ...]
    #: False when AWS describes the policy in prose only (then ``rules`` is empty).
    rules_documented: bool = True
    source_url: str = SOURCE_URL

    def arn(self, partition: str = "aws") -> str:
        return policy_arn(self.name, partition)


def policy_arn(name: str, partition: str = "aws") -> str:
    """The ARN of the access policy ``name`` in ``partition``."""
    return ARN_PREFIX_FORMAT.format(partition=partition) + name


def policy_name_from_arn(arn: str) -> str | None:
    """The policy name in an access-policy ARN of any partition, or None if ``arn`` is not one."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2:5] != ["eks", "", "aws"]:
        return None
    kind, _, name = parts[5].partition("/")
    if kind != "cluster-access-policy" or not name or "/" in name:
        return None
    return name


_WRITE = ("create", "delete", "deletecollection", "patch", "update")
_READ = ("get", "list", "watch")
_CORE = ("",)


def _rule(
    groups: str, resources: str, verbs: tuple[str, ...], *, namespaced: bool = True
) -> PolicyRule:
    return PolicyRule(
        api_groups=tuple(groups.split()) or _CORE,
        resources=tuple(resources.split()),
        verbs=verbs,
        namespaced=namespaced,
    )


# Rows shared verbatim by AmazonEKSAdminPolicy and AmazonEKSEditPolicy (the page repeats them).
_EDIT_ROWS = (
    _rule(
        "apps",
        "daemonsets deployments deployments/rollback deployments/scale replicasets "
        "replicasets/scale statefulsets statefulsets/scale",
        _WRITE,
    ),
    _rule(
        "apps",
        "controllerrevisions daemonsets daemonsets/status deployments deployments/scale "
        "deployments/status replicasets replicasets/scale replicasets/status statefulsets "
        "statefulsets/scale statefulsets/status",
        _READ,
    ),
    _rule("autoscaling", "horizontalpodautoscalers", _WRITE),
    _rule("autoscaling", "horizontalpodautoscalers horizontalpodautoscalers/status", _READ),
    _rule("batch", "cronjobs jobs", _WRITE),
    _rule("batch", "cronjobs cronjobs/status jobs jobs/status", _READ),
    _rule("discovery.k8s.io", "endpointslices", _READ),
    _rule(
        "extensions",
        "daemonsets deployments deployments/rollback deployments/scale ingresses "
        "networkpolicies replicasets replicasets/scale replicationcontrollers/scale",
        _WRITE,
    ),
    _rule(
        "extensions",
        "daemonsets daemonsets/status deployments deployments/scale deployments/status "
        "ingresses ingresses/status networkpolicies replicasets replicasets/scale "
        "replicasets/status replicationcontrollers/scale",
        _READ,
    ),
    _rule("networking.k8s.io", "ingresses ingresses/status networkpolicies", _READ),
    _rule("networking.k8s.io", "ingresses networkpolicies", _WRITE),
    _rule("policy", "poddisruptionbudgets", _WRITE),
    _rule("policy", "poddisruptionbudgets poddisruptionbudgets/status", _READ),
    _rule(
        "",
        "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods "
        "replicationcontrollers replicationcontrollers/scale serviceaccounts services "
        "services/status",
        _READ,
    ),
    _rule("", "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy", _READ),
    _rule(
        "",
        "configmaps events persistentvolumeclaims replicationcontrollers "
        "replicationcontrollers/scale secrets serviceaccounts services services/proxy",
        _WRITE,
    ),
    _rule("", "pods pods/attach pods/exec pods/portforward pods/proxy", _WRITE),
    _rule("", "serviceaccounts", ("impersonate",)),
    _rule(
        "",
        "bindings events limitranges namespaces/status pods/log pods/status "
        "replicationcontrollers/status resourcequotas resourcequotas/status",
        _READ,
    ),
    _rule("", "namespaces", _READ, namespaced=False),
)

_ADMIN_ONLY_ROWS = (
    _rule("authorization.k8s.io", "localsubjectaccessreviews", ("create",)),
    _rule(
        "rbac.authorization.k8s.io",
        "rolebindings roles",
        ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
)

_VIEW_ROWS = (
    _rule(
        "apps",
        "controllerrevisions daemonsets daemonsets/status deployments deployments/scale "
        "deployments/status replicasets replicasets/scale replicasets/status statefulsets "
        "statefulsets/scale statefulsets/status",
        _READ,
    ),
    _rule("autoscaling", "horizontalpodautoscalers horizontalpodautoscalers/status", _READ),
    _rule("batch", "cronjobs cronjobs/status jobs jobs/status", _READ),
    _rule("discovery.k8s.io", "endpointslices", _READ),
    _rule(
        "extensions",
        "daemonsets daemonsets/status deployments deployments/scale deployments/status "
        "ingresses ingresses/status networkpolicies replicasets replicasets/scale "
        "replicasets/status replicationcontrollers/scale",
        _READ,
    ),
    _rule("networking.k8s.io", "ingresses ingresses/status networkpolicies", _READ),
    _rule("policy", "poddisruptionbudgets poddisruptionbudgets/status", _READ),
    _rule(
        "",
        "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods "
        "replicationcontrollers replicationcontrollers/scale serviceaccounts services "
        "services/status",
        _READ,
    ),
    _rule(
        "",
        "bindings events limitranges namespaces/status pods/log pods/status "
        "replicationcontrollers/status resourcequotas resourcequotas/status",
        _READ,
    ),
    _rule("", "namespaces", _READ, namespaced=False),
)


def _prose_only(name: str, description: str) -> AccessPolicy:
    return AccessPolicy(
        name=name,
        description=description,
        typical_scope=ScopeType.CLUSTER,
        rules=(),
        rules_documented=False,
    )


_POLICIES = (
    AccessPolicy(
        name="AmazonEKSClusterAdminPolicy",
        description="Administrator access to the whole cluster (like the cluster-admin "
        "ClusterRole).",
        typical_scope=ScopeType.CLUSTER,
        rules=(
            PolicyRule(api_groups=("*",), resources=("*",), verbs=("*",)),
            PolicyRule(
                api_groups=(),
                resources=(),
                verbs=("*",),
                non_resource_urls=("*",),
                namespaced=False,
            ),
        ),
    ),
    AccessPolicy(
        name="AmazonEKSAdminPolicy",
        description="Most permissions to resources, typically in one or more namespaces (like "
        "the admin ClusterRole): edit rights plus Roles and RoleBindings.",
        typical_scope=ScopeType.NAMESPACE,
        rules=_EDIT_ROWS[:18] + _ADMIN_ONLY_ROWS + _EDIT_ROWS[18:],
    ),
    AccessPolicy(
        name="AmazonEKSAdminViewPolicy",
        description="List and view every resource in the cluster, Secrets included.",
        typical_scope=ScopeType.CLUSTER,
        rules=(PolicyRule(api_groups=("*",), resources=("*",), verbs=_READ),),
    ),
    AccessPolicy(
        name="AmazonEKSEditPolicy",
        description="Edit most Kubernetes resources (like the edit ClusterRole).",
        typical_scope=ScopeType.NAMESPACE,
        rules=_EDIT_ROWS,
    ),
    AccessPolicy(
        name="AmazonEKSViewPolicy",
        description="View most Kubernetes resources, Secrets excluded (like the view ClusterRole).",
        typical_scope=ScopeType.NAMESPACE,
        rules=_VIEW_ROWS,
    ),
    AccessPolicy(
        name="AmazonEKSHybridPolicy",
        description="Lets EKS list the nodes of a cluster; used by EKS hybrid nodes.",
        typical_scope=ScopeType.CLUSTER,
        rules=(
            PolicyRule(api_groups=("*",), resources=("nodes",), verbs=("list",), namespaced=False),
        ),
    ),
    _prose_only(
        "AmazonEKSAutoNodePolicy",
        "Node components of EKS Auto Mode (kube-proxy, ipamd, coredns, EBS CSI driver, "
        "Neuron, node monitoring agent), for the node role of an EC2 access entry.",
    ),
    _prose_only(
        "AmazonEKSBlockStoragePolicy",
        "Leader-election leases of EKS Auto Mode's storage components.",
    ),
    _prose_only(
        "AmazonEKSLoadBalancingPolicy",
        "Leader-election leases of EKS Auto Mode's load-balancing components.",
    ),
    _prose_only(
        "AmazonEKSNetworkingPolicy",
        "Leader-election leases of EKS Auto Mode's networking components.",
    ),
    _prose_only(
        "AmazonEKSComputePolicy",
        "Leader-election leases of EKS Auto Mode's compute components.",
    ),
    _prose_only(
        "AmazonEKSBlockStorageClusterPolicy",
        "The block storage capability of EKS Auto Mode (CSI drivers, volumes, snapshots).",
    ),
    _prose_only(
        "AmazonEKSComputeClusterPolicy",
        "The compute capability of EKS Auto Mode (NodePools, NodeClaims, evictions).",
    ),
    _prose_only(
        "AmazonEKSLoadBalancingClusterPolicy",
        "The load balancing capability of EKS Auto Mode (services, ingresses, webhooks).",
    ),
    _prose_only(
        "AmazonEKSNetworkingClusterPolicy",
        "The networking capability of EKS Auto Mode (CNINodes, NodeClasses).",
    ),
)

#: Every access policy kubeiam knows, by name.
ACCESS_POLICIES: Mapping[str, AccessPolicy] = MappingProxyType({p.name: p for p in _POLICIES})
#: The four policies the EKS user guide lists for people (``list-access-policies`` example).
USER_FACING_POLICIES = (
    "AmazonEKSAdminPolicy",
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSViewPolicy",
)
#: What ``system:masters`` in aws-auth becomes: "administrator access to a cluster".
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"


def access_policy(name_or_arn: str) -> AccessPolicy | None:
    """The known policy named by a short name or an ARN of any partition, or None."""
    name = policy_name_from_arn(name_or_arn) if name_or_arn.startswith("arn:") else name_or_arn
    return ACCESS_POLICIES.get(name) if name is not None else None
