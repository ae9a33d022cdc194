"""RBAC rights and who-can over API-shaped dicts (rules from the Kubernetes RBAC docs)."""

from __future__ import annotations

from typing import Any

import pytest

from kubeiam.access.rbac import (
    BASELINE_SUMMARY,
    RBAC,
    Level,
    Rule,
    rule_allows,
    summarise_rules,
    url_allows,
)


def meta(name: str, namespace: str = "") -> dict[str, Any]:
    return {"name": name, **({"namespace": namespace} if namespace else {})}


def rule(
    verbs: list[str], resources: list[str], groups: tuple[str, ...] = ("",), **extra: Any
) -> dict[str, Any]:
    return {"verbs": verbs, "apiGroups": list(groups), "resources": resources, **extra}


def cluster_role(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "ClusterRole", "metadata": meta(name), "rules": list(rules)}


def role(namespace: str, name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Role", "metadata": meta(name, namespace), "rules": list(rules)}


def subject(spec: str) -> dict[str, Any]:
    kind, _, name = spec.partition(":")
    if kind == "ServiceAccount":
        ns, _, sa = name.partition("/")
        return {"kind": kind, "name": sa, "namespace": ns}
    return {"kind": kind, "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def crb(name: str, role_name: str, *subjects: str) -> dict[str, Any]:
    return {
        "metadata": meta(name),
        "roleRef": {
            "kind": "ClusterRole",
            "name": role_name,
            "apiGroup": "rbac.authorization.k8s.io",
        },
        "subjects": [subject(s) for s in subjects],
    }


def rb(namespace: str, name: str, ref: str, *subjects: str) -> dict[str, Any]:
    kind, _, role_name = ref.partition("/")
    return {
        "metadata": meta(name, namespace),
        "roleRef": {"kind": kind, "name": role_name, "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [subject(s) for s in subjects],
    }


CLUSTER_ROLES = [
    cluster_role(
        "cluster-admin", rule(["*"], ["*"], ["*"]), {"verbs": ["*"], "nonResourceURLs": ["*"]}
    ),
    cluster_role(
        "admin", rule(["*"], ["pods", "secrets", "rolebindings"], ["", "rbac.authorization.k8s.io"])
    ),
    cluster_role(
        "edit",
        rule(["create", "delete", "get", "list", "update"], ["pods", "secrets", "configmaps"]),
    ),
    cluster_role("view", rule(["get", "list", "watch"], ["pods", "configmaps"])),
    cluster_role("scaler", rule(["update", "patch"], ["*/scale"], ["apps"])),
    cluster_role("node-reader", rule(["get", "list"], ["nodes"])),
    cluster_role("superuser-by-another-name", rule(["*"], ["*"], ["*"])),
    cluster_role("metrics", {"verbs": ["get"], "nonResourceURLs": ["/metrics", "/healthz/*"]}),
]
ROLES = [
    role("prod", "log-reader", rule(["get"], ["pods/log"])),
    role("prod", "one-secret", rule(["get", "update"], ["secrets"], resourceNames=["db-password"])),
    role("dev", "deployer", rule(["*"], ["deployments"], ["apps"])),
    role("kube-system", "cluster-info", rule(["get", "list"], ["configmaps"])),
]
CRBS = [
    crb("ops-admin", "cluster-admin", "Group:ops"),
    crb("nodes", "node-reader", "User:alice"),
    crb("sneaky", "superuser-by-another-name", "User:mallory"),
    crb("dangling", "deleted-role", "Group:ghosts"),
    crb("basic", "metrics", "Group:system:authenticated"),
]
RBS = [
    rb("prod", "viewers", "ClusterRole/view", "Group:viewers"),
    rb("prod", "editors", "ClusterRole/edit", "Group:editors"),
    rb("prod", "logs", "Role/log-reader", "User:alice"),
    rb("prod", "secret", "Role/one-secret", "User:bob"),
    rb("dev", "deploy", "Role/deployer", "Group:devs", "ServiceAccount:ci/builder"),
    rb("dev", "ns-admin", "ClusterRole/admin", "User:carol"),
    rb("dev", "scale", "ClusterRole/scaler", "User:carol"),
    rb("dev", "wrong-ns-role", "Role/log-reader", "User:dave"),
    rb("kube-system", "info", "Role/cluster-info", "Group:system:authenticated"),
]


@pytest.fixture(scope="module")
def rbac() -> RBAC:
    return RBAC(CLUSTER_ROLES, ROLES, CRBS, RBS)


# (user, groups, verb, resource, namespace, name, expected)
CAN: dict[str, tuple[str, list[str], str, str, str | None, str, bool]] = {
    "masters-unrestricted-without-binding": (
        "root",
        ["system:masters"],
        "delete",
        "nodes",
        None,
        "",
        True,
    ),
    "masters-even-for-made-up-resources": (
        "root",
        ["system:masters"],
        "frob",
        "widgets.example.com",
        "x",
        "",
        True,
    ),
    "cluster-admin-group": ("u", ["ops"], "delete", "secrets", "prod", "", True),
    "cluster-admin-cluster-scoped": ("u", ["ops"], "delete", "nodes", None, "", True),
    "view-in-its-namespace": ("u", ["viewers"], "list", "pods", "prod", "", True),
    "view-not-in-other-namespace": ("u", ["viewers"], "list", "pods", "dev", "", False),
    "view-cannot-delete": ("u", ["viewers"], "delete", "pods", "prod", "", False),
    "rolebinding-never-cluster-scoped": ("u", ["viewers"], "list", "pods", None, "", False),
    "edit-can-delete-secrets": ("u", ["editors"], "delete", "secrets", "prod", "", True),
    "subresource-exact": ("alice", [], "get", "pods/log", "prod", "", True),
    "subresource-not-the-resource": ("alice", [], "get", "pods", "prod", "", False),
    "clusterrolebinding-cluster-scoped-nodes": ("alice", [], "list", "nodes", None, "", True),
    "clusterrolebinding-reaches-every-namespace": (
        "alice",
        [],
        "get",
        "nodes",
        "anything",
        "",
        True,
    ),
    "resource-names-need-the-name": ("bob", [], "get", "secrets", "prod", "", False),
    "resource-names-match": ("bob", [], "get", "secrets", "prod", "db-password", True),
    "resource-names-other-name": ("bob", [], "get", "secrets", "prod", "api-key", False),
    "api-group-must-match": ("u", ["devs"], "create", "deployments", "dev", "", False),
    "api-group-qualified": ("u", ["devs"], "create", "deployments.apps", "dev", "", True),
    "star-subresource": ("carol", [], "patch", "deployments.apps/scale", "dev", "", True),
    "star-subresource-not-main-resource": (
        "carol",
        [],
        "patch",
        "deployments.apps",
        "dev",
        "",
        False,
    ),
    "service-account-subject": (
        "system:serviceaccount:ci:builder",
        [],
        "delete",
        "deployments.apps",
        "dev",
        "",
        True,
    ),
    "authenticated-group-implicit": ("nobody", [], "list", "configmaps", "kube-system", "", True),
    "missing-role-grants-nothing": ("u", ["ghosts"], "get", "pods", "prod", "", False),
    "role-of-other-namespace-grants-nothing": ("dave", [], "get", "pods/log", "dev", "", False),
    "verb-case-sensitive": ("u", ["viewers"], "LIST", "pods", "prod", "", False),
}


@pytest.mark.parametrize(
    ("user", "groups", "verb", "resource", "namespace", "name", "expected"),
    CAN.values(),
    ids=CAN.keys(),
)
def test_can(
    rbac: RBAC,
    user: str,
    groups: list[str],
    verb: str,
    resource: str,
    namespace: str | None,
    name: str,
    expected: bool,
) -> None:
    assert rbac.rights(user, groups).can(verb, resource, namespace, name) is expected


SUMMARIES: dict[str, tuple[str, list[str], bool, tuple[str, ...]]] = {
    "masters": (
        "root",
        ["system:masters"],
        True,
        ("unrestricted (system:masters: not subject to RBAC)",),
    ),
    "cluster-admin-by-name": (
        "u",
        ["ops"],
        True,
        ("cluster-admin, via ClusterRoleBinding/ops-admin",),
    ),
    "cluster-admin-by-rules": (
        "mallory",
        [],
        True,
        ("cluster-admin, via ClusterRoleBinding/sneaky",),
    ),
    "namespace-view": (
        "u",
        ["viewers"],
        False,
        ("view in namespace prod, via RoleBinding prod/viewers",),
    ),
    "namespace-admin-and-custom": (
        "carol",
        [],
        False,
        (
            "admin in namespace dev, via RoleBinding dev/ns-admin",
            "ClusterRole/scaler: update, patch */scale.apps in namespace dev,"
            " via RoleBinding dev/scale",
        ),
    ),
    "custom-with-names": (
        "bob",
        [],
        False,
        (
            "Role prod/one-secret: get, update secrets named db-password in namespace prod,"
            " via RoleBinding prod/secret",
        ),
    ),
    "missing-role": (
        "u",
        ["ghosts"],
        False,
        (
            "ClusterRole/deleted-role (does not exist) cluster-wide,"
            " via ClusterRoleBinding/dangling",
        ),
    ),
}


@pytest.mark.parametrize(
    ("user", "groups", "admin", "summary"), SUMMARIES.values(), ids=SUMMARIES.keys()
)
def test_summary(
    rbac: RBAC, user: str, groups: list[str], admin: bool, summary: tuple[str, ...]
) -> None:
    rights = rbac.rights(user, groups, authenticated=False)
    assert rights.cluster_admin is admin
    assert rights.summary() == summary


def test_levels(rbac: RBAC) -> None:
    levels = {g.binding: g.level for g in rbac.grants}
    assert levels["ClusterRoleBinding/ops-admin"] is Level.CLUSTER_ADMIN
    assert levels["ClusterRoleBinding/sneaky"] is Level.CLUSTER_ADMIN
    assert levels["RoleBinding prod/editors"] is Level.EDIT
    assert levels["RoleBinding dev/deploy"] is Level.CUSTOM
    assert levels["ClusterRoleBinding/dangling"] is Level.MISSING_ROLE


def test_who_can_delete_secrets_in_prod(rbac: RBAC) -> None:
    found = {(w.subject_kind, w.subject) for w in rbac.who_can("delete", "secrets", "prod")}
    assert found == {
        ("Group", "system:masters"),
        ("Group", "ops"),
        ("User", "mallory"),
        ("Group", "editors"),
    }


def test_who_can_names_the_grant(rbac: RBAC) -> None:
    (who,) = [w for w in rbac.who_can("get", "pods/log", "prod") if w.subject == "alice"]
    assert who.grant is not None
    assert who.grant.binding == "RoleBinding prod/logs"


def test_bound_groups(rbac: RBAC) -> None:
    assert rbac.bound_groups() == {
        "ops",
        "ghosts",
        "system:authenticated",
        "viewers",
        "editors",
        "devs",
    }


def test_non_resource_urls() -> None:
    metrics = Rule(verbs=("get",), non_resource_urls=("/metrics", "/healthz/*"))
    assert url_allows(metrics, "get", "/metrics")
    assert url_allows(metrics, "get", "/healthz/etcd")
    assert not url_allows(metrics, "get", "/metrics/extra")
    assert not url_allows(metrics, "post", "/metrics")
    assert not rule_allows(metrics, "get", "", "pods", "")
    assert summarise_rules([metrics]) == "get /metrics, /healthz/*"


def test_malformed_objects_grant_nothing() -> None:
    rbac = RBAC(
        [
            {"metadata": {"name": "r"}, "rules": "not-a-list"},
            {"metadata": {"name": "v"}, "rules": [rule(["get"], ["pods"])]},
        ],
        [],
        [
            {"metadata": {"name": "no-ref"}, "subjects": [subject("User:a")]},
            {
                "metadata": {"name": "b"},
                "roleRef": {"kind": "ClusterRole", "name": "v"},
                "subjects": ["junk", subject("Thing:x")],
            },
            {
                "metadata": {"name": "c"},
                "roleRef": {"kind": "ClusterRole", "name": "r"},
                "subjects": [subject("User:a")],
            },
        ],
        [
            {
                "metadata": {"name": "d", "namespace": "x"},
                "roleRef": {"kind": "Role", "name": "absent"},
            }
        ],
    )
    assert not rbac.rights("a", []).can("get", "pods", "x")
    assert rbac.rights("a", []).summary() == (
        "ClusterRole/r: nothing cluster-wide, via ClusterRoleBinding/c",
    )


# -- aggregated ClusterRoles (view/edit/admin are built this way) ------------------------------


def aggregated(
    name: str, *selectors: dict[str, Any], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels or {}},
        "aggregationRule": {"clusterRoleSelectors": list(selectors)},
        "rules": [],
    }


def labelled(name: str, labels: dict[str, str], *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels},
        "rules": list(rules),
    }


TO_VIEW = {"rbac.authorization.k8s.io/aggregate-to-view": "true"}
TO_EDIT = {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}


@pytest.mark.parametrize(
    ("selector", "holds"),
    [
        ({"matchLabels": TO_VIEW}, True),
        ({"matchLabels": {**TO_VIEW, "other": "x"}}, False),
        (
            {
                "matchExpressions": [
                    {
                        "key": "rbac.authorization.k8s.io/aggregate-to-view",
                        "operator": "In",
                        "values": ["true"],
                    }
                ]
            },
            True,
        ),
        (
            {
                "matchExpressions": [
                    {
                        "key": "rbac.authorization.k8s.io/aggregate-to-view",
                        "operator": "NotIn",
                        "values": ["true"],
                    }
                ]
            },
            False,
        ),
        (
            {
                "matchExpressions": [
                    {"key": "rbac.authorization.k8s.io/aggregate-to-view", "operator": "Exists"}
                ]
            },
            True,
        ),
        ({"matchExpressions": [{"key": "absent", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "absent", "operator": "Gt", "values": ["1"]}]}, False),
        ({}, False),
    ],
    ids=[
        "labels",
        "labels-all-must-match",
        "in",
        "notin",
        "exists",
        "doesnotexist",
        "unknown-op",
        "empty-selects-nothing",
    ],
)
def test_aggregation_selectors(selector: dict[str, Any], holds: bool) -> None:
    rbac = RBAC(
        cluster_roles=[
            aggregated("view", selector),
            labelled("pods-reader", TO_VIEW, rule(["get", "list"], ["pods"])),
        ],
        cluster_role_bindings=[crb("viewers", "view", "Group:viewers")],
    )
    assert rbac.rights("someone", ["viewers"]).can("get", "pods", "default") is holds


def test_aggregation_chains_edit_holds_view_sources() -> None:
    """edit aggregates aggregate-to-edit roles; view's source is labelled for both, as the
    bootstrap policy labels system:aggregate-to-view; a role empty until the controller fills it."""
    rbac = RBAC(
        cluster_roles=[
            aggregated("edit", {"matchLabels": TO_EDIT}),
            aggregated("view", {"matchLabels": TO_VIEW}, labels=TO_EDIT),
            labelled("view-source", TO_VIEW, rule(["get"], ["pods"])),
            labelled("edit-source", TO_EDIT, rule(["create"], ["pods"])),
        ],
        cluster_role_bindings=[crb("editors", "edit", "Group:editors")],
    )
    rights = rbac.rights("someone", ["editors"])
    assert rights.can("get", "pods", "prod")
    assert rights.can("create", "pods", "prod")
    assert not rbac.rights("someone", ["others"]).can("get", "pods", "prod")


@pytest.mark.parametrize(
    ("binding", "role_rules", "extra", "wanted"),
    [
        (
            "system:discovery",
            [rule(["get"], [], nonResourceURLs=["/api"])],
            [],
            (BASELINE_SUMMARY,),
        ),
        (
            "everyone-reads",
            [rule(["get"], ["pods"])],
            [],
            ("ClusterRole/reader: get pods cluster-wide, via ClusterRoleBinding/everyone-reads",),
        ),
        (
            "system:discovery",
            [rule(["get"], [], nonResourceURLs=["/api"])],
            [crb("viewers", "view", "Group:viewers")],
            ("view cluster-wide, via ClusterRoleBinding/viewers",),
        ),
        (
            "system:oops",
            [rule(["*"], ["*"], groups=("*",))],
            [],
            ("cluster-admin, via ClusterRoleBinding/system:oops",),
        ),
    ],
    ids=[
        "baseline-only",
        "own-binding-to-everyone-shown",
        "baseline-hidden-beside-own",
        "admin-to-everyone-never-hidden",
    ],
)
def test_baseline_grants_of_every_user_are_not_listed(
    binding: str,
    role_rules: list[dict[str, Any]],
    extra: list[dict[str, Any]],
    wanted: tuple[str, ...],
) -> None:
    rbac = RBAC(
        cluster_roles=[
            cluster_role("reader", *role_rules),
            cluster_role("view", rule(["get"], ["pods"])),
        ],
        cluster_role_bindings=[crb(binding, "reader", "Group:system:authenticated"), *extra],
    )
    rights = rbac.rights("someone", ["viewers"])
    assert rights.summary() == wanted
    assert rights.grants  # still counted for can() and who-can
