"""The report join: IAM ways in x mapping rows x RBAC rights, findings and the JSON document.

The account is issue 13's proof shape: an IAM user mapped to system:masters; an IAM group whose
members may assume a role (trusted by the account) mapped to a group bound to ``view``; a role
trusted by everyone; a dangling mapping; a group no binding names.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from access_helpers import ACCOUNT, ROOT, account, arn, assume, group, role, trust, user

from kubeiam.access.iam_graph import IAMGraph
from kubeiam.access.policy import Decision
from kubeiam.access.rbac import RBAC
from kubeiam.access.report import (
    AccessPolicyAssociation,
    MappingRow,
    Report,
    RowKind,
    Severity,
    build_report,
    report_json,
    who_can,
)
from kubeiam.eks.access_policies import ScopeType

NOW = datetime(2026, 12, 7, tzinfo=UTC)
IAM = account(
    user("root-person"),
    user("member", "viewers"),
    user("outsider"),
    group("viewers", assume(arn("role", "viewer"))),
    role("viewer", trust({"AWS": ROOT})),
    role("open", trust("*")),
    role("ci", trust({"Service": "codebuild.amazonaws.com"})),
)
RBAC_OBJECTS = RBAC(
    cluster_roles=[
        {
            "metadata": {"name": "view"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
        }
    ],
    cluster_role_bindings=[
        {
            "metadata": {"name": "viewers"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "name": "view-group"}],
        },
        {
            "metadata": {"name": "orphans"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "name": "nobody-maps-this"}],
        },
    ],
)
ROWS = [
    MappingRow("aws-auth", RowKind.USER, arn("user", "root-person"), "admin", ("system:masters",)),
    MappingRow(
        "aws-auth", RowKind.ROLE, arn("role", "viewer"), "viewer:{{SessionName}}", ("view-group",)
    ),
    MappingRow("aws-auth", RowKind.ROLE, arn("role", "open"), "open", ("dead-group",)),
    MappingRow("aws-auth", RowKind.ROLE, arn("role", "gone"), "ghost", ("view-group",)),
]


def _report(rows: list[MappingRow] = ROWS, **kwargs: object) -> Report:
    return build_report("demo", rows, IAMGraph(IAM), RBAC_OBJECTS, now=NOW, **kwargs)  # type: ignore[arg-type]


def _codes(report: Report) -> dict[str, Severity]:
    return {f.code: f.severity for f in report.findings}


def test_user_mapped_to_masters_is_cluster_admin_directly() -> None:
    (entry,) = [e for e in _report().principals if e.mapped == arn("user", "root-person")]
    assert (entry.arn, entry.kind, entry.via, entry.decision) == (
        arn("user", "root-person"),
        "user",
        (),
        Decision.ALLOWED,
    )
    assert entry.cluster_admin
    assert entry.rights == ("unrestricted (system:masters: not subject to RBAC)",)


def test_group_member_reaches_view_through_the_role() -> None:
    entries = {e.arn: e for e in _report().principals if e.mapped == arn("role", "viewer")}
    member = entries[arn("user", "member")]
    assert member.via == (arn("role", "viewer"),)
    assert member.username == "viewer:{{SessionName}}"
    assert member.rights == ("view cluster-wide, via ClusterRoleBinding/viewers",)
    assert not member.cluster_admin
    assert arn("user", "outsider") not in entries


def test_findings_of_the_proof_shape() -> None:
    report = _report()
    assert _codes(report) == {
        "cluster-admin": Severity.HIGH,
        "trusted-by-anyone": Severity.CRITICAL,
        "trusted-by-account": Severity.MEDIUM,
        "dangling-mapping": Severity.MEDIUM,
        "dead-mapping-group": Severity.LOW,
        "unmapped-binding-group": Severity.LOW,
    }
    assert report.findings[0].severity is Severity.CRITICAL  # worst first
    dangling = next(f for f in report.findings if f.code == "dangling-mapping")
    assert dangling.arns == (arn("role", "gone"),)


@pytest.mark.parametrize(
    ("threshold", "fails"),
    [(Severity.CRITICAL, True), (Severity.LOW, True)],
    ids=["critical", "low"],
)
def test_fail_on(threshold: Severity, fails: bool) -> None:
    assert _report().fails(threshold) is fails


def test_fail_on_below_threshold_passes() -> None:
    rows = [MappingRow("aws-auth", RowKind.ROLE, arn("role", "open"), "open", ("dead-group",))]
    assert _report(rows).fails(Severity.CRITICAL)
    only_low = [MappingRow("file", RowKind.USER, arn("user", "outsider"), "o", ("dead-group",))]
    report = _report(only_low)
    assert report.worst() is Severity.LOW
    assert not report.fails(Severity.MEDIUM)


def test_recreated_principal_is_found_by_its_id() -> None:
    rows = [
        MappingRow(
            "access-entries",
            RowKind.ROLE,
            arn("role", "viewer"),
            "v",
            ("view-group",),
            principal_id="AROAOLDID",
        )
    ]
    assert _codes(_report(rows))["recreated-principal"] is Severity.MEDIUM
    same = [
        MappingRow(
            "access-entries",
            RowKind.ROLE,
            arn("role", "viewer"),
            "v",
            ("view-group",),
            principal_id="AROAVIEWER",
        )
    ]
    assert "recreated-principal" not in _codes(_report(same))


ENTRY_MADE = datetime(2026, 3, 1, 12, 0, 0, 400_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "principal_created", "entry_created", "found"),
    [
        (RowKind.ROLE, ENTRY_MADE + timedelta(days=1), ENTRY_MADE, True),
        (RowKind.USER, ENTRY_MADE + timedelta(days=1), ENTRY_MADE, True),
        (RowKind.ROLE, "2026-03-02T08:00:00Z", ENTRY_MADE, True),
        # IAM's whole seconds: the next second is later; the same second is not (missed rather
        # than a finding for an entry made right after its principal).
        (RowKind.ROLE, ENTRY_MADE.replace(microsecond=0) + timedelta(seconds=1), ENTRY_MADE, True),
        (RowKind.ROLE, ENTRY_MADE + timedelta(milliseconds=500), ENTRY_MADE, False),
        (RowKind.ROLE, ENTRY_MADE.replace(microsecond=0), ENTRY_MADE, False),
        (RowKind.ROLE, ENTRY_MADE - timedelta(days=30), ENTRY_MADE, False),
        (RowKind.USER, ENTRY_MADE - timedelta(days=30), ENTRY_MADE, False),
        (RowKind.ROLE, ENTRY_MADE + timedelta(days=1), None, False),
        (RowKind.ROLE, None, ENTRY_MADE, False),
        (RowKind.ROLE, "not a date", ENTRY_MADE, False),
    ],
    ids=[
        "role-newer",
        "user-newer",
        "iso-text-newer",
        "next-second",
        "same-second-later",
        "same-second-truncated",
        "role-older",
        "user-older",
        "entry-time-unknown",
        "principal-time-unknown",
        "principal-time-unreadable",
    ],
)
def test_access_entry_older_than_its_principal_is_a_recreated_principal(
    kind: RowKind, principal_created: object, entry_created: datetime | None, found: bool
) -> None:
    extra = {} if principal_created is None else {"CreateDate": principal_created}
    make = role if kind is RowKind.ROLE else user
    iam = account(make("ops", **extra))
    principal = arn(kind.value, "ops")
    row = MappingRow("access-entries", kind, principal, "ops", created_at=entry_created)
    report = build_report("demo", [row], IAMGraph(iam), RBAC_OBJECTS, now=NOW)
    recreated = [f for f in report.findings if f.code == "recreated-principal"]
    # The principal exists either way: never a dangling mapping.
    assert "dangling-mapping" not in {f.code for f in report.findings}
    if not found:
        assert recreated == []
        return
    (finding,) = recreated
    assert finding.severity is Severity.MEDIUM
    assert finding.arns == (principal,)
    assert "after its entry (2026-03-01T12:00:00Z)" in finding.message
    assert f"kubeiam mapping remove {principal} --store access-entries --cluster demo" in (
        finding.message
    )
    assert f"kubeiam mapping add-{kind.value} {principal} --store access-entries" in (
        finding.message
    )


def test_principal_id_decides_over_created_at() -> None:
    """A row with a principal id (strict DynamicFile) is judged by the id alone: one finding
    when it differs, none when it matches, whatever the times say."""
    iam = account(role("ops", CreateDate=ENTRY_MADE + timedelta(days=1)))
    rows = [
        MappingRow(
            "file", RowKind.ROLE, arn("role", "ops"), "ops", principal_id=pid, created_at=ENTRY_MADE
        )
        for pid in ("AROAOLD", "AROAOPS")
    ]
    report = build_report("demo", rows, IAMGraph(iam), RBAC_OBJECTS, now=NOW)
    (finding,) = [f for f in report.findings if f.code == "recreated-principal"]
    assert "AROAOLD" in finding.message


def test_old_access_key_reaching_admin() -> None:
    old = {arn("user", "root-person"): [NOW - timedelta(days=400)]}
    fresh = {arn("user", "root-person"): [NOW - timedelta(days=10)]}
    assert _codes(_report(access_keys=old))["old-access-key-admin"] is Severity.HIGH
    assert "old-access-key-admin" not in _codes(_report(access_keys=fresh))


def test_group_row_lists_members() -> None:
    rows = [
        MappingRow(
            "file", RowKind.GROUP, arn("group", "viewers"), "{{AccountID}}:member", ("view-group",)
        )
    ]
    (entry,) = _report(rows).principals
    assert (entry.arn, entry.via) == (arn("user", "member"), (arn("group", "viewers"),))


def test_other_account_principal_is_unknown_not_dangling() -> None:
    rows = [
        MappingRow(
            "aws-auth", RowKind.ROLE, "arn:aws:iam::444455556666:role/x", "x", ("view-group",)
        )
    ]
    report = _report(rows)
    (entry,) = report.principals
    assert entry.decision is Decision.UNKNOWN
    assert "dangling-mapping" not in _codes(report)


def test_sso_row_reaches_permission_set_roles() -> None:
    iam = account(
        role(
            "AWSReservedSSO_Ops_0123456789abcdef",
            trust(
                {"Federated": f"arn:aws:iam::{ACCOUNT}:saml-provider/AWSSSO_1_DO_NOT_DELETE"},
                action="sts:AssumeRoleWithSAML",
            ),
        )
    )
    rows = [MappingRow("crd", RowKind.SSO, "Ops", "ops", ("view-group",), account=ACCOUNT)]
    (entry,) = build_report("c", rows, IAMGraph(iam), RBAC_OBJECTS, now=NOW).principals
    assert (entry.kind, entry.arn, entry.decision) == ("sso", "Ops", Decision.UNKNOWN)


@pytest.mark.parametrize(
    ("association", "admin", "rights"),
    [
        (
            AccessPolicyAssociation("AmazonEKSClusterAdminPolicy"),
            True,
            ("cluster-admin, via access policy AmazonEKSClusterAdminPolicy (cluster scope)",),
        ),
        (
            AccessPolicyAssociation(
                "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
                ScopeType.NAMESPACE,
                ("prod",),
            ),
            False,
            ("view in namespace prod, via access policy AmazonEKSViewPolicy (namespace scope)",),
        ),
    ],
    ids=["cluster-admin-policy", "view-policy-namespaced"],
)
def test_access_entry_policies_give_rights(
    association: AccessPolicyAssociation, admin: bool, rights: tuple[str, ...]
) -> None:
    rows = [
        MappingRow(
            "access-entries",
            RowKind.USER,
            arn("user", "outsider"),
            "o",
            (),
            access_policies=(association,),
        )
    ]
    (entry,) = _report(rows).principals
    assert entry.cluster_admin is admin
    assert entry.rights == rights


def test_undocumented_access_policy_is_shown_not_guessed() -> None:
    rows = [
        MappingRow(
            "access-entries",
            RowKind.USER,
            arn("user", "outsider"),
            "o",
            (),
            access_policies=(AccessPolicyAssociation("AmazonEKSSomethingNew"),),
        )
    ]
    (entry,) = _report(rows).principals
    assert any("rules not documented by AWS" in r for r in entry.rights)


def test_json_document() -> None:
    document = report_json(_report())
    text = json.dumps(document)
    again = json.loads(text)
    assert again["schemaVersion"] == 1
    assert again["cluster"] == "demo"
    principal = again["principals"][0]
    assert set(principal) == {
        "arn",
        "kind",
        "via",
        "decision",
        "conditions",
        "username",
        "groups",
        "source",
        "mapped",
        "rights",
        "clusterAdmin",
    }
    assert {f["severity"] for f in again["findings"]} <= {"low", "medium", "high", "critical"}
    assert again["caveats"]


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "expected"),
    [
        # The role trusts the account: the delegation itself is listed beside the member.
        (
            "get",
            "pods",
            "prod",
            {("root-person", ()), ("member", ("viewer",)), (ACCOUNT, ("viewer",))},
        ),
        ("delete", "pods", "prod", {("root-person", ())}),
        ("get", "secrets", None, {("root-person", ())}),
    ],
    ids=["view-reaches-members", "only-masters-delete", "cluster-scope"],
)
def test_who_can(
    verb: str, resource: str, namespace: str | None, expected: set[tuple[str, tuple[str, ...]]]
) -> None:
    entries = who_can(ROWS, IAMGraph(IAM), RBAC_OBJECTS, verb, resource, namespace)
    short = {
        (e.arn.rsplit("/", 1)[-1], tuple(v.rsplit("/", 1)[-1] for v in e.via)) for e in entries
    }
    assert short == expected


def test_one_finding_per_dead_group_and_per_trusting_role() -> None:
    rows = [
        MappingRow("aws-auth", RowKind.ROLE, arn("role", "viewer"), "a", ("dead-group",)),
        MappingRow("file", RowKind.ROLE, arn("role", "viewer"), "b", ("dead-group",)),
        MappingRow(
            "crd", RowKind.USER, arn("user", "outsider"), "c", ("dead-group", "system:nodes")
        ),
    ]
    report = _report(rows)
    (dead,) = [f for f in report.findings if f.code == "dead-mapping-group"]
    assert dead.arns == (arn("role", "viewer"), arn("user", "outsider"))
    assert "given by 3 mapping(s)" in dead.message
    assert len([f for f in report.findings if f.code == "trusted-by-account"]) == 1
