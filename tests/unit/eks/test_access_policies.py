"""The access-policy table (kubeiam.eks.access_policies): shape, ARNs, facts AWS states."""

from __future__ import annotations

import pytest

from kubeiam.eks.access_policies import (
    ACCESS_POLICIES,
    CLUSTER_ADMIN_POLICY,
    SOURCE_URL,
    USER_FACING_POLICIES,
    AccessPolicy,
    PolicyRule,
    access_policy,
    policy_arn,
    policy_name_from_arn,
)
from kubeiam.localaws import eks_rules

READ = {"get", "list", "watch"}
#: Cluster-scoped resources that appear in the documented tables.
CLUSTER_SCOPED = {"namespaces", "nodes"}


def grants(policy: AccessPolicy) -> set[tuple[str, str, str]]:
    """(api group, resource, verb) triples a policy's resource rules allow."""
    return {
        (group, resource, verb)
        for rule in policy.rules
        for group in rule.api_groups
        for resource in rule.resources
        for verb in rule.verbs
    }


def test_every_policy_cites_the_page_and_has_an_aws_owned_arn() -> None:
    for name, policy in ACCESS_POLICIES.items():
        assert policy.name == name
        assert policy.source_url == SOURCE_URL
        assert policy.arn() == f"arn:aws:eks::aws:cluster-access-policy/{name}"
        assert policy.arn("aws-cn") == f"arn:aws-cn:eks::aws:cluster-access-policy/{name}"


def test_documented_policies_have_rules_and_prose_ones_none() -> None:
    for policy in ACCESS_POLICIES.values():
        assert bool(policy.rules) == policy.rules_documented, policy.name
    for name in (*USER_FACING_POLICIES, "AmazonEKSAdminViewPolicy", "AmazonEKSHybridPolicy"):
        assert ACCESS_POLICIES[name].rules_documented


def test_the_emulator_and_kubeiam_list_the_same_policies() -> None:
    """Two transcriptions of the same AWS page, kept apart on purpose, must agree."""
    assert sorted(ACCESS_POLICIES) == sorted(eks_rules.ACCESS_POLICY_NAMES)


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        ("arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy", "AmazonEKSViewPolicy"),
        ("arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSEditPolicy", "AmazonEKSEditPolicy"),
        ("arn:aws:eks::123456789012:cluster-access-policy/AmazonEKSViewPolicy", None),
        ("arn:aws:eks:us-east-1:aws:cluster-access-policy/AmazonEKSViewPolicy", None),
        ("arn:aws:iam::aws:policy/AdministratorAccess", None),
        ("arn:aws:eks::aws:cluster-access-policy/", None),
        ("arn:aws:eks::aws:cluster-access-policy/a/b", None),
        ("AmazonEKSViewPolicy", None),
    ],
    ids=["aws", "aws-cn", "account-owned", "regional", "iam-policy", "no-name", "nested", "bare"],
)
def test_policy_name_from_arn(arn: str, name: str | None) -> None:
    assert policy_name_from_arn(arn) == name
    if name is not None:
        assert policy_arn(name, arn.split(":")[1]) == arn


@pytest.mark.parametrize(
    ("given", "found"),
    [
        ("AmazonEKSViewPolicy", "AmazonEKSViewPolicy"),
        ("arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy", "AmazonEKSAdminPolicy"),
        (
            "arn:aws-us-gov:eks::aws:cluster-access-policy/AmazonEKSEditPolicy",
            "AmazonEKSEditPolicy",
        ),
        ("AmazonEKSNoSuchPolicy", None),
        ("arn:aws:iam::aws:policy/AmazonEKSViewPolicy", None),
        ("amazoneksviewpolicy", None),
    ],
    ids=["name", "arn", "gov-arn", "unknown", "iam-arn", "wrong-case"],
)
def test_access_policy_lookup(given: str, found: str | None) -> None:
    policy = access_policy(given)
    assert (policy.name if policy else None) == found


def test_cluster_admin_allows_everything() -> None:
    policy = ACCESS_POLICIES[CLUSTER_ADMIN_POLICY]
    assert PolicyRule(api_groups=("*",), resources=("*",), verbs=("*",)) in policy.rules
    assert any(r.non_resource_urls == ("*",) and r.verbs == ("*",) for r in policy.rules)


def test_admin_is_edit_plus_roles_and_access_reviews() -> None:
    admin, edit = ACCESS_POLICIES["AmazonEKSAdminPolicy"], ACCESS_POLICIES["AmazonEKSEditPolicy"]
    extra = grants(admin) - grants(edit)
    assert extra == {
        ("authorization.k8s.io", "localsubjectaccessreviews", "create"),
        *(
            ("rbac.authorization.k8s.io", resource, verb)
            for resource in ("roles", "rolebindings")
            for verb in (
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            )
        ),
    }
    assert grants(edit) <= grants(admin)


def test_view_reads_only_and_never_secrets() -> None:
    view = ACCESS_POLICIES["AmazonEKSViewPolicy"]
    assert {verb for _, _, verb in grants(view)} == READ
    assert not any(resource == "secrets" for _, resource, _ in grants(view))
    # Everything View reads, Edit reads too.
    assert grants(view) <= grants(ACCESS_POLICIES["AmazonEKSEditPolicy"])


@pytest.mark.parametrize("name", ["AmazonEKSEditPolicy", "AmazonEKSAdminPolicy"])
def test_edit_and_admin_write_secrets_and_exec(name: str) -> None:
    triples = grants(ACCESS_POLICIES[name])
    assert ("", "secrets", "create") in triples
    assert ("", "pods/exec", "create") in triples
    assert ("", "serviceaccounts", "impersonate") in triples


def test_admin_view_reads_everything_including_secrets() -> None:
    (rule,) = ACCESS_POLICIES["AmazonEKSAdminViewPolicy"].rules
    assert (rule.api_groups, rule.resources, set(rule.verbs)) == (("*",), ("*",), READ)


def test_non_namespaced_rules_name_only_cluster_scoped_things() -> None:
    for policy in ACCESS_POLICIES.values():
        for rule in policy.rules:
            if rule.namespaced:
                assert not CLUSTER_SCOPED & set(rule.resources), (policy.name, rule)
                assert not rule.non_resource_urls
            else:
                assert rule.non_resource_urls or set(rule.resources) <= CLUSTER_SCOPED


def test_rules_are_well_formed() -> None:
    for policy in ACCESS_POLICIES.values():
        for rule in policy.rules:
            assert rule.verbs
            assert bool(rule.resources) != bool(rule.non_resource_urls), (policy.name, rule)
            assert len(set(rule.resources)) == len(rule.resources)
            assert all(v == v.lower() for v in rule.verbs)
