"""The local EKS access-entry API, driven through boto3 against the running local AWS.

One parametrized table per class of rule (principals, entry types, usernames, groups, policies
and scopes, authentication modes, missing things), plus a test that walks botocore's EKS model:
every response the emulator gave in a session of all operations is checked against the
operation's output shape, key by key on the raw JSON, and every error code against the
operation's modeled errors. (moto's serializer writes only the model's members, so an unknown key
cannot get out; what the walk catches is a wrong type, an enum value the model does not list, a
missing required member, or an error code the operation cannot return.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape
from botocore.validate import ParamValidator

from kubeiam.localaws.environment import LocalAWS
from support.eks_cluster import ADMIN, VIEW, Principals, new_cluster, unique

POLICY = "arn:aws:eks::aws:cluster-access-policy/{}"
CLUSTER_SCOPE = {"type": "cluster"}


@dataclass
class Env(Principals):
    eks: Any
    cluster: str


@pytest.fixture
def env(local_aws: LocalAWS) -> Env:
    eks = local_aws.boto3_client("eks")
    return Env(aws=local_aws, iam=local_aws.boto3_client("iam"), eks=eks, cluster=new_cluster(eks))


def unvalidated_client(aws: LocalAWS) -> Any:
    """An EKS client that sends what botocore's own checks would stop (to see EKS refuse it)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "eks",
        endpoint_url=aws.moto_url,
        region_name=aws.region,
        aws_access_key_id=aws.admin.access_key_id,
        aws_secret_access_key=aws.admin.secret_access_key,
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


# -- principals -------------------------------------------------------------------------------

PRINCIPAL_REFUSALS: list[tuple[str, Callable[[Env], str], str, str]] = [
    (
        "sts-session",
        lambda e: "arn:aws:sts::123456789012:assumed-role/some-role/session",
        "STANDARD",
        "InvalidParameterException",
    ),
    (
        "iam-group",
        lambda e: "arn:aws:iam::123456789012:group/devs",
        "STANDARD",
        "InvalidParameterException",
    ),
    ("not-an-arn", lambda e: "alice", "STANDARD", "InvalidParameterException"),
    (
        "no-such-user",
        lambda e: "arn:aws:iam::123456789012:user/nobody-here",
        "STANDARD",
        "InvalidParameterException",
    ),
    (
        "role-without-its-path",
        lambda e: e.role(path="/team/apps/").replace("/team/apps/", "/"),
        "STANDARD",
        "InvalidParameterException",
    ),
    (
        "service-linked-role",
        lambda e: e.iam.create_service_linked_role(AWSServiceName="autoscaling.amazonaws.com")[
            "Role"
        ]["Arn"],
        "STANDARD",
        "InvalidParameterException",
    ),
    (
        "other-partition",
        lambda e: e.aws.admins["aws-cn"].arn,
        "STANDARD",
        "InvalidParameterException",
    ),
    ("node-type-with-user", lambda e: e.user(), "EC2_LINUX", "InvalidParameterException"),
    ("fargate-type-with-user", lambda e: e.user(), "FARGATE_LINUX", "InvalidParameterException"),
    ("unknown-type", lambda e: e.role(), "EC2_MAC", "InvalidParameterException"),
]


@pytest.mark.parametrize(
    ("arn_of", "entry_type", "code"),
    [case[1:] for case in PRINCIPAL_REFUSALS],
    ids=[case[0] for case in PRINCIPAL_REFUSALS],
)
def test_principal_refused(
    env: Env, arn_of: Callable[[Env], str], entry_type: str, code: str
) -> None:
    arn = arn_of(env)
    got, message = error_of(
        lambda: env.eks.create_access_entry(
            clusterName=env.cluster, principalArn=arn, type=entry_type
        )
    )
    assert got == code, message
    assert arn not in env.eks.list_access_entries(clusterName=env.cluster)["accessEntries"]


def test_role_with_path_is_named_with_its_path(env: Env) -> None:
    arn = env.role(path="/team/apps/")
    entry = env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn)["accessEntry"]
    assert entry["principalArn"] == arn
    # The default username drops the path: the STS assumed-role ARN has none.
    name = arn.rsplit("/", 1)[1]
    assert entry["username"] == f"arn:aws:sts::123456789012:assumed-role/{name}/{{{{SessionName}}}}"


def test_one_entry_per_principal(env: Env) -> None:
    arn = env.user()
    env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn)
    code, _ = error_of(
        lambda: env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn, username="x")
    )
    assert code == "ResourceInUseException"


def test_recreated_role_no_longer_matches(env: Env) -> None:
    name = unique("recreated")
    arn = env.aws.create_role(name, trusted=env.aws.admin.arn)
    env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn)
    _, before = env.aws.eks_access_entries(env.cluster)
    assert [r.principal_current for r in before if r.principal_arn == arn] == [True]

    env.iam.delete_role(RoleName=name)
    env.aws.create_role(name, trusted=env.aws.admin.arn)

    _, after = env.aws.eks_access_entries(env.cluster)
    (record,) = [r for r in after if r.principal_arn == arn]
    assert not record.principal_current
    assert record.principal_id == next(r.principal_id for r in before if r.principal_arn == arn)
    # The API still shows the entry (EKS does not delete it), and the ARN is still taken.
    assert env.eks.describe_access_entry(clusterName=env.cluster, principalArn=arn)
    code, _ = error_of(
        lambda: env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn)
    )
    assert code == "ResourceInUseException"


# -- entry types ------------------------------------------------------------------------------

#: type -> the username EKS sets when none is given (creating-access-entries.html's table).
DEFAULT_USERNAMES = {
    "EC2_LINUX": "system:node:{{EC2PrivateDNSName}}",
    "EC2_WINDOWS": "system:node:{{EC2PrivateDNSName}}",
    "FARGATE_LINUX": "system:node:{{SessionName}}",
    "HYBRID_LINUX": "system:node:{{SessionName}}",
    "EC2": "system:node:{{EC2PrivateDNSName}}",
}


@pytest.mark.parametrize("entry_type", sorted(DEFAULT_USERNAMES), ids=sorted(DEFAULT_USERNAMES))
def test_node_entry_types(env: Env, entry_type: str) -> None:
    arn = env.role()
    for extra in ({"username": "node"}, {"kubernetesGroups": ["nodes"]}):
        code, _ = error_of(
            lambda extra=extra: env.eks.create_access_entry(
                clusterName=env.cluster, principalArn=arn, type=entry_type, **extra
            )
        )
        assert code == "InvalidParameterException", extra
    entry = env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn, type=entry_type)
    assert entry["accessEntry"]["username"] == DEFAULT_USERNAMES[entry_type]
    assert entry["accessEntry"]["type"] == entry_type
    assert entry["accessEntry"]["kubernetesGroups"] == []
    code, _ = error_of(
        lambda: env.eks.associate_access_policy(
            clusterName=env.cluster, principalArn=arn, policyArn=VIEW, accessScope=CLUSTER_SCOPE
        )
    )
    assert code == "InvalidParameterException"
    code, _ = error_of(
        lambda: env.eks.update_access_entry(clusterName=env.cluster, principalArn=arn, username="n")
    )
    assert code == "InvalidParameterException"


def test_ec2_entry_takes_the_auto_node_policy_only(env: Env) -> None:
    arn = env.role()
    env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn, type="EC2")
    env.eks.associate_access_policy(
        clusterName=env.cluster,
        principalArn=arn,
        policyArn=POLICY.format("AmazonEKSAutoNodePolicy"),
        accessScope=CLUSTER_SCOPE,
    )


@pytest.mark.parametrize(
    ("arn_of", "username"),
    [(Env.user, None), (Env.role, None), (Env.role, "dev:{{SessionName}}")],
    ids=["user-default", "role-default", "role-chosen"],
)
def test_standard_usernames(env: Env, arn_of: Callable[[Env], str], username: str | None) -> None:
    arn = arn_of(env)
    kwargs = {} if username is None else {"username": username}
    entry = env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn, **kwargs)
    got = entry["accessEntry"]["username"]
    if username is not None:
        assert got == username
    elif ":user/" in arn:
        assert got == arn
    else:
        assert got.startswith("arn:aws:sts::123456789012:assumed-role/")
        assert got.endswith("/{{SessionName}}")
    assert entry["accessEntry"]["type"] == "STANDARD"


# -- usernames and groups ---------------------------------------------------------------------

USERNAMES = [
    ("system-prefix", "system:admin", False),
    ("eks-prefix", "eks:me", False),
    ("aws-prefix", "aws:me", False),
    ("amazon-prefix", "amazon:me", False),
    ("iam-prefix", "iam:me", False),
    ("empty", "", False),
    ("session-without-colon", "john{{SessionName}}", False),
    ("session-raw-without-colon", "john{{SessionNameRaw}}", False),
    ("colon-first", ":john{{SessionName}}", True),
    ("colon-inside", "jo:hn{{SessionName}}", True),
    ("plain", "alice", True),
    ("prefix-later", "alice-system:x", True),
]


@pytest.mark.parametrize(
    ("username", "accepted"), [c[1:] for c in USERNAMES], ids=[c[0] for c in USERNAMES]
)
def test_usernames(env: Env, username: str, accepted: bool) -> None:
    arn = env.role()

    def create() -> Any:
        return env.eks.create_access_entry(
            clusterName=env.cluster, principalArn=arn, username=username
        )

    if accepted:
        assert create()["accessEntry"]["username"] == username
        again = env.eks.update_access_entry(
            clusterName=env.cluster, principalArn=arn, username=username
        )
        assert again["accessEntry"]["username"] == username
    else:
        assert error_of(create)[0] == "InvalidParameterException"
        env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn)
        code, _ = error_of(
            lambda: env.eks.update_access_entry(
                clusterName=env.cluster, principalArn=arn, username=username
            )
        )
        assert code == "InvalidParameterException"


GROUPS = [
    ("system-masters", ["system:masters"], False),
    ("system-nodes", ["system:nodes"], False),
    ("one-bad-of-two", ["devs", "system:authenticated"], False),
    ("empty-name", [""], False),
    ("plain", ["devs", "viewers"], True),
    ("system-later", ["team-system:x"], True),
]


@pytest.mark.parametrize(
    ("groups", "accepted"), [c[1:] for c in GROUPS], ids=[c[0] for c in GROUPS]
)
def test_groups(env: Env, groups: list[str], accepted: bool) -> None:
    arn = env.role()

    def create() -> Any:
        return env.eks.create_access_entry(
            clusterName=env.cluster, principalArn=arn, kubernetesGroups=groups
        )

    if accepted:
        assert create()["accessEntry"]["kubernetesGroups"] == groups
    else:
        code, message = error_of(create)
        assert code == "InvalidParameterException", message


def test_update_replaces_groups_and_keeps_omitted_fields(env: Env) -> None:
    arn = env.role()
    env.eks.create_access_entry(
        clusterName=env.cluster, principalArn=arn, kubernetesGroups=["a"], username="u"
    )
    updated = env.eks.update_access_entry(
        clusterName=env.cluster, principalArn=arn, kubernetesGroups=["b", "c"]
    )
    assert updated["accessEntry"]["kubernetesGroups"] == ["b", "c"]
    assert updated["accessEntry"]["username"] == "u"
    cleared = env.eks.update_access_entry(
        clusterName=env.cluster, principalArn=arn, kubernetesGroups=[]
    )
    assert cleared["accessEntry"]["kubernetesGroups"] == []
    assert cleared["accessEntry"]["modifiedAt"] >= cleared["accessEntry"]["createdAt"]


# -- access policies and scopes ---------------------------------------------------------------

ASSOCIATIONS: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("view-cluster", VIEW, {"type": "cluster"}, None),
    ("view-namespaces", VIEW, {"type": "namespace", "namespaces": ["team-a", "dev-*"]}, None),
    ("admin-cluster", ADMIN, {"type": "cluster"}, None),
    (
        "unknown-policy",
        POLICY.format("AmazonEKSNoSuchPolicy"),
        CLUSTER_SCOPE,
        "ResourceNotFoundException",
    ),
    (
        "other-partition",
        "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
        CLUSTER_SCOPE,
        "InvalidParameterException",
    ),
    (
        "iam-policy-arn",
        "arn:aws:iam::aws:policy/AdministratorAccess",
        CLUSTER_SCOPE,
        "InvalidParameterException",
    ),
    (
        "cluster-with-namespaces",
        VIEW,
        {"type": "cluster", "namespaces": ["a"]},
        "InvalidParameterException",
    ),
    (
        "namespace-without-any",
        VIEW,
        {"type": "namespace", "namespaces": []},
        "InvalidParameterException",
    ),
    (
        "bad-namespace-name",
        VIEW,
        {"type": "namespace", "namespaces": ["Team_A"]},
        "InvalidParameterException",
    ),
]


@pytest.mark.parametrize(
    ("policy", "scope", "code"), [c[1:] for c in ASSOCIATIONS], ids=[c[0] for c in ASSOCIATIONS]
)
def test_associations(env: Env, policy: str, scope: dict[str, Any], code: str | None) -> None:
    arn = env.role()
    env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn)

    def associate() -> Any:
        return env.eks.associate_access_policy(
            clusterName=env.cluster, principalArn=arn, policyArn=policy, accessScope=scope
        )

    listed = lambda: env.eks.list_associated_access_policies(  # noqa: E731
        clusterName=env.cluster, principalArn=arn
    )["associatedAccessPolicies"]
    if code is not None:
        assert error_of(associate)[0] == code
        assert listed() == []
        return
    got = associate()["associatedAccessPolicy"]
    assert got["policyArn"] == policy
    assert got["accessScope"] == {"type": scope["type"], "namespaces": scope.get("namespaces", [])}
    assert [a["policyArn"] for a in listed()] == [policy]
    with_policy = env.eks.list_access_entries(clusterName=env.cluster, associatedPolicyArn=policy)
    assert arn in with_policy["accessEntries"]


def test_associating_again_changes_the_scope(env: Env) -> None:
    arn = env.role()
    env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn)
    first = env.eks.associate_access_policy(
        clusterName=env.cluster,
        principalArn=arn,
        policyArn=VIEW,
        accessScope={"type": "namespace", "namespaces": ["a", "b"]},
    )["associatedAccessPolicy"]
    second = env.eks.associate_access_policy(
        clusterName=env.cluster, principalArn=arn, policyArn=VIEW, accessScope={"type": "cluster"}
    )["associatedAccessPolicy"]
    assert second["associatedAt"] == first["associatedAt"]
    assert second["accessScope"] == {"type": "cluster", "namespaces": []}
    listed = env.eks.list_associated_access_policies(clusterName=env.cluster, principalArn=arn)
    assert len(listed["associatedAccessPolicies"]) == 1
    env.eks.disassociate_access_policy(clusterName=env.cluster, principalArn=arn, policyArn=VIEW)
    code, _ = error_of(
        lambda: env.eks.disassociate_access_policy(
            clusterName=env.cluster, principalArn=arn, policyArn=VIEW
        )
    )
    assert code == "ResourceNotFoundException"


def test_deleting_an_entry_drops_its_associations(env: Env) -> None:
    arn = env.role()
    env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn)
    env.eks.associate_access_policy(
        clusterName=env.cluster, principalArn=arn, policyArn=VIEW, accessScope=CLUSTER_SCOPE
    )
    env.eks.delete_access_entry(clusterName=env.cluster, principalArn=arn)
    env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn)
    listed = env.eks.list_associated_access_policies(clusterName=env.cluster, principalArn=arn)
    assert listed["associatedAccessPolicies"] == []


def test_list_access_policies_names_the_documented_policies(local_aws: LocalAWS) -> None:
    eks = local_aws.boto3_client("eks")
    pages = eks.get_paginator("list_access_policies").paginate(PaginationConfig={"PageSize": 4})
    policies = [p for page in pages for p in page["accessPolicies"]]
    names = [p["name"] for p in policies]
    assert names == sorted(names)
    for name in (
        "AmazonEKSClusterAdminPolicy",
        "AmazonEKSAdminPolicy",
        "AmazonEKSEditPolicy",
        "AmazonEKSViewPolicy",
        "AmazonEKSAdminViewPolicy",
    ):
        assert {"name": name, "arn": POLICY.format(name)} in policies


def test_list_access_policies_in_china_uses_its_partition(local_aws: LocalAWS) -> None:
    eks = local_aws.boto3_client("eks", region="cn-north-1")
    first = eks.list_access_policies()["accessPolicies"][0]
    assert first["arn"] == f"arn:aws-cn:eks::aws:cluster-access-policy/{first['name']}"


# -- pagination ------------------------------------------------------------------------------


def test_list_access_entries_pages(env: Env) -> None:
    arns = {env.user() for _ in range(5)}
    for arn in arns:
        env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn)
    pages = env.eks.get_paginator("list_access_entries").paginate(
        clusterName=env.cluster, PaginationConfig={"PageSize": 2}
    )
    sizes, seen = [], []
    for page in pages:
        sizes.append(len(page["accessEntries"]))
        seen.extend(page["accessEntries"])
    assert arns <= set(seen)
    assert len(seen) == len(set(seen))
    assert max(sizes) == 2
    unchecked = unvalidated_client(env.aws)
    for bad in (0, 101):
        code, _ = error_of(
            lambda bad=bad: unchecked.list_access_entries(clusterName=env.cluster, maxResults=bad)
        )
        assert code == "InvalidParameterException"


# -- request shapes ---------------------------------------------------------------------------

MALFORMED: list[tuple[str, Callable[[Any, str, str], Any]]] = [
    ("create-without-principal", lambda eks, c, p: eks.create_access_entry(clusterName=c)),
    (
        "username-not-a-string",
        lambda eks, c, p: eks.create_access_entry(clusterName=c, principalArn=p, username=7),
    ),
    (
        "associate-without-scope",
        lambda eks, c, p: eks.associate_access_policy(
            clusterName=c, principalArn=p, policyArn=VIEW
        ),
    ),
    ("policies-page-of-0", lambda eks, c, p: eks.list_access_policies(maxResults=0)),
    (
        "associated-page-of-101",
        lambda eks, c, p: eks.list_associated_access_policies(
            clusterName=c, principalArn=p, maxResults=101
        ),
    ),
]


@pytest.mark.parametrize("call", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_requests_outside_the_models_input_shape(
    env: Env, call: Callable[[Any, str, str], Any]
) -> None:
    """What botocore's client-side checks stop is refused by the emulator too (checks off)."""
    arn = env.user()
    env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn)
    code, message = error_of(lambda: call(unvalidated_client(env.aws), env.cluster, arn))
    assert code == "InvalidParameterException", message


# -- authentication modes ---------------------------------------------------------------------

MODES = [
    ("configmap-to-both", "CONFIG_MAP", "API_AND_CONFIG_MAP", None),
    ("configmap-to-api", "CONFIG_MAP", "API", None),
    ("both-to-api", "API_AND_CONFIG_MAP", "API", None),
    ("both-to-configmap", "API_AND_CONFIG_MAP", "CONFIG_MAP", "InvalidParameterException"),
    ("api-to-both", "API", "API_AND_CONFIG_MAP", "InvalidParameterException"),
    ("api-to-configmap", "API", "CONFIG_MAP", "InvalidParameterException"),
    ("same-mode", "API_AND_CONFIG_MAP", "API_AND_CONFIG_MAP", "InvalidParameterException"),
    ("unknown-mode", "CONFIG_MAP", "OIDC", "InvalidParameterException"),
]


@pytest.mark.parametrize(
    ("start", "desired", "code"), [c[1:] for c in MODES], ids=[c[0] for c in MODES]
)
def test_mode_transitions(local_aws: LocalAWS, start: str, desired: str, code: str | None) -> None:
    eks = local_aws.boto3_client("eks")
    cluster = new_cluster(eks, start)

    def update() -> Any:
        return eks.update_cluster_config(name=cluster, accessConfig={"authenticationMode": desired})

    def mode() -> str:
        return str(
            eks.describe_cluster(name=cluster)["cluster"]["accessConfig"]["authenticationMode"]
        )

    if code is not None:
        assert error_of(update)[0] == code
        assert mode() == start
        return
    result = update()["update"]
    assert result["type"] == "AccessConfigUpdate"
    assert result["params"] == [{"type": "AuthenticationMode", "value": desired}]
    assert (
        eks.describe_update(name=cluster, updateId=result["id"])["update"]["status"] == "Successful"
    )
    assert mode() == desired


def test_default_mode_is_config_map_and_hides_the_entry_api(local_aws: LocalAWS) -> None:
    eks = local_aws.boto3_client("eks")
    cluster = new_cluster(eks, None)
    assert eks.describe_cluster(name=cluster)["cluster"]["accessConfig"] == {
        "bootstrapClusterCreatorAdminPermissions": True,
        "authenticationMode": "CONFIG_MAP",
    }
    arn = local_aws.admin.arn
    calls: list[Callable[[], Any]] = [
        lambda: eks.list_access_entries(clusterName=cluster),
        lambda: eks.create_access_entry(clusterName=cluster, principalArn=arn),
        lambda: eks.describe_access_entry(clusterName=cluster, principalArn=arn),
        lambda: eks.delete_access_entry(clusterName=cluster, principalArn=arn),
        lambda: eks.associate_access_policy(
            clusterName=cluster, principalArn=arn, policyArn=VIEW, accessScope=CLUSTER_SCOPE
        ),
    ]
    for call in calls:
        assert error_of(call)[0] == "InvalidRequestException"


@pytest.mark.parametrize(
    ("mode", "bootstrap", "creator_entry"),
    [("API", None, True), ("API_AND_CONFIG_MAP", False, False), ("CONFIG_MAP", None, True)],
    ids=["api-default", "bootstrap-off", "configmap-then-switch"],
)
def test_cluster_creator_entry(
    local_aws: LocalAWS, mode: str, bootstrap: bool | None, creator_entry: bool
) -> None:
    eks = local_aws.boto3_client("eks")
    config = {} if bootstrap is None else {"bootstrapClusterCreatorAdminPermissions": bootstrap}
    cluster = new_cluster(eks, mode, **config)
    if mode == "CONFIG_MAP":
        eks.update_cluster_config(
            name=cluster, accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"}
        )
    entries = eks.list_access_entries(clusterName=cluster)["accessEntries"]
    creator = local_aws.admin.arn
    assert entries == ([creator] if creator_entry else [])
    if creator_entry:
        policies = eks.list_associated_access_policies(clusterName=cluster, principalArn=creator)
        assert [
            (p["policyArn"], p["accessScope"]["type"]) for p in policies["associatedAccessPolicies"]
        ] == [(ADMIN, "cluster")]


# -- missing things ---------------------------------------------------------------------------

MISSING: list[tuple[str, Callable[[Any, str, str], Any]]] = [
    ("describe", lambda eks, c, p: eks.describe_access_entry(clusterName=c, principalArn=p)),
    (
        "update",
        lambda eks, c, p: eks.update_access_entry(clusterName=c, principalArn=p, username="x"),
    ),
    ("delete", lambda eks, c, p: eks.delete_access_entry(clusterName=c, principalArn=p)),
    (
        "associate",
        lambda eks, c, p: eks.associate_access_policy(
            clusterName=c, principalArn=p, policyArn=VIEW, accessScope=CLUSTER_SCOPE
        ),
    ),
    (
        "disassociate",
        lambda eks, c, p: eks.disassociate_access_policy(
            clusterName=c, principalArn=p, policyArn=VIEW
        ),
    ),
    (
        "list-associated",
        lambda eks, c, p: eks.list_associated_access_policies(clusterName=c, principalArn=p),
    ),
]


@pytest.mark.parametrize("call", [c[1] for c in MISSING], ids=[c[0] for c in MISSING])
@pytest.mark.parametrize("missing", ["entry", "cluster"])
def test_missing_entry_or_cluster(
    env: Env, call: Callable[[Any, str, str], Any], missing: str
) -> None:
    cluster = env.cluster if missing == "entry" else unique("no-cluster")
    code, _ = error_of(lambda: call(env.eks, cluster, env.user()))
    assert code == "ResourceNotFoundException"


# -- the model walk ---------------------------------------------------------------------------


@dataclass
class Recorder:
    """Raw responses per operation, captured from botocore's after-call event."""

    bodies: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)

    def __call__(self, http_response: Any, model: OperationModel, **_: Any) -> None:
        self.bodies.setdefault(model.name, []).append(
            (http_response.status_code, http_response.content)
        )


def shape_errors(value: Any, shape: Shape, where: str) -> Iterator[str]:
    """Every way the raw JSON ``value`` departs from ``shape`` (unknown keys included)."""
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            yield f"{where}: {type(value).__name__} where a structure belongs"
            return
        for key, item in value.items():
            if key not in shape.members:
                yield f"{where}.{key}: not a member of {shape.name}"
            elif item is not None:
                yield from shape_errors(item, shape.members[key], f"{where}.{key}")
        for key in shape.required_members:
            if key not in value:
                yield f"{where}.{key}: required by {shape.name}, missing"
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            yield f"{where}: {type(value).__name__} where a list belongs"
            return
        for index, item in enumerate(value):
            yield from shape_errors(item, shape.member, f"{where}[{index}]")
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            yield f"{where}: {type(value).__name__} where a map belongs"
            return
        for key, item in value.items():
            yield from shape_errors(key, shape.key, f"{where}<key>")
            yield from shape_errors(item, shape.value, f"{where}[{key}]")
    elif shape.type_name == "string":
        if not isinstance(value, str):
            yield f"{where}: {type(value).__name__} where a string belongs"
        elif shape.enum and value not in shape.enum:
            yield f"{where}: {value!r} is not one of {shape.enum}"
    elif shape.type_name == "timestamp":
        if not isinstance(value, int | float) or isinstance(value, bool):
            yield f"{where}: {value!r} is not an epoch timestamp"
    elif shape.type_name == "boolean":
        if not isinstance(value, bool):
            yield f"{where}: {value!r} is not a boolean"
    elif shape.type_name in ("integer", "long") and (
        not isinstance(value, int) or isinstance(value, bool)
    ):
        yield f"{where}: {value!r} is not an integer"


#: Everything this emulator adds to moto's EKS, by operation name.
EMULATED = {
    "CreateAccessEntry",
    "DescribeAccessEntry",
    "ListAccessEntries",
    "UpdateAccessEntry",
    "DeleteAccessEntry",
    "AssociateAccessPolicy",
    "DisassociateAccessPolicy",
    "ListAssociatedAccessPolicies",
    "ListAccessPolicies",
    "CreateCluster",
    "DescribeCluster",
    "UpdateClusterConfig",
    "DescribeUpdate",
}


def test_every_response_has_the_models_shape(local_aws: LocalAWS) -> None:
    eks = local_aws.boto3_client("eks")
    recorder = Recorder()
    eks.meta.events.register("after-call.eks", recorder)
    model = eks.meta.service_model
    # The model is the source of the operation list: every access-entry operation botocore knows.
    access_ops = {n for n in model.operation_names if "AccessEntr" in n or "AccessPolic" in n}
    assert access_ops <= EMULATED, (
        f"operations in botocore's model not emulated: {access_ops - EMULATED}"
    )

    cluster = new_cluster(eks, "CONFIG_MAP")
    eks.describe_cluster(name=cluster)
    update = eks.update_cluster_config(
        name=cluster, accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"}
    )
    eks.describe_update(name=cluster, updateId=update["update"]["id"])
    logging = {"clusterLogging": [{"types": ["api"], "enabled": True}]}
    logged = eks.update_cluster_config(name=cluster, logging=logging)["update"]
    assert logged["type"] == "LoggingUpdate"
    assert (
        eks.describe_update(name=cluster, updateId=logged["id"])["update"]["status"] == "Successful"
    )
    iam = local_aws.boto3_client("iam")
    role = local_aws.create_role(unique("walk"), trusted=local_aws.admin.arn, path="/walk/")
    user = unique("walk")
    iam.create_user(UserName=user)
    user_arn = local_aws.user_arn(user)
    eks.create_access_entry(
        clusterName=cluster, principalArn=role, kubernetesGroups=["g"], tags={"k": "v"}
    )
    eks.create_access_entry(clusterName=cluster, principalArn=user_arn, username="walker")
    eks.describe_access_entry(clusterName=cluster, principalArn=role)
    eks.update_access_entry(clusterName=cluster, principalArn=role, kubernetesGroups=["h"])
    eks.list_access_entries(clusterName=cluster, maxResults=1)
    eks.associate_access_policy(
        clusterName=cluster,
        principalArn=role,
        policyArn=VIEW,
        accessScope={"type": "namespace", "namespaces": ["a"]},
    )
    eks.list_associated_access_policies(clusterName=cluster, principalArn=role)
    eks.list_access_entries(clusterName=cluster, associatedPolicyArn=VIEW)
    eks.list_access_policies(maxResults=2)
    eks.disassociate_access_policy(clusterName=cluster, principalArn=role, policyArn=VIEW)
    eks.delete_access_entry(clusterName=cluster, principalArn=user_arn)
    failures: list[Callable[[], Any]] = [
        lambda: eks.create_access_entry(clusterName=cluster, principalArn=role),
        lambda: eks.create_access_entry(
            clusterName=cluster, principalArn=user_arn, username="system:x"
        ),
        lambda: eks.describe_access_entry(clusterName=cluster, principalArn=user_arn),
        lambda: eks.update_access_entry(clusterName=cluster, principalArn=user_arn),
        lambda: eks.delete_access_entry(clusterName=cluster, principalArn=user_arn),
        lambda: eks.associate_access_policy(
            clusterName=cluster,
            principalArn=role,
            policyArn=VIEW,
            accessScope={"type": "namespace"},
        ),
        lambda: eks.disassociate_access_policy(
            clusterName=cluster, principalArn=role, policyArn=ADMIN
        ),
        lambda: eks.list_associated_access_policies(clusterName=cluster, principalArn=user_arn),
        lambda: eks.list_access_entries(clusterName=cluster, maxResults=500),
        lambda: eks.update_cluster_config(
            name=cluster, accessConfig={"authenticationMode": "CONFIG_MAP"}
        ),
        lambda: eks.describe_update(name=cluster, updateId="no-such-update"),
    ]
    for failure in failures:
        with pytest.raises(ClientError):
            failure()

    assert set(recorder.bodies) >= EMULATED, f"not exercised: {EMULATED - set(recorder.bodies)}"
    problems: list[str] = []
    for name, bodies in recorder.bodies.items():
        operation = model.operation_model(name)
        modeled_errors = {shape.name for shape in operation.error_shapes}
        for status, body in bodies:
            document = json.loads(body) if body else {}
            if status >= 400:
                code = document.get("__type") or document.get("code") or ""
                code = code.rsplit("#", 1)[-1]
                if code not in modeled_errors:
                    problems.append(
                        f"{name}: error {code!r} ({status}) is not modeled: {modeled_errors}"
                    )
                continue
            problems.extend(shape_errors(document, operation.output_shape, name))
    assert problems == []


def test_validator_agrees_on_parsed_responses(env: Env) -> None:
    """botocore's own validator, applied to the parsed answers (the output shapes as input)."""
    arn = env.role()
    model = env.eks.meta.service_model
    answers = {
        "CreateAccessEntry": env.eks.create_access_entry(clusterName=env.cluster, principalArn=arn),
        "AssociateAccessPolicy": env.eks.associate_access_policy(
            clusterName=env.cluster, principalArn=arn, policyArn=VIEW, accessScope=CLUSTER_SCOPE
        ),
        "ListAssociatedAccessPolicies": env.eks.list_associated_access_policies(
            clusterName=env.cluster, principalArn=arn
        ),
        "DescribeCluster": env.eks.describe_cluster(name=env.cluster),
    }
    for name, answer in answers.items():
        answer.pop("ResponseMetadata")
        report = ParamValidator().validate(answer, model.operation_model(name).output_shape)
        assert not report.has_errors(), f"{name}: {report.generate_report()}"


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda eks, c: eks.describe_cluster(name=c), id="describe-cluster"),
        pytest.param(lambda eks, c: eks.list_access_entries(clusterName=c), id="list-entries"),
        pytest.param(
            lambda eks, c: eks.associate_access_policy(
                clusterName=c,
                principalArn="arn:aws:iam::123456789012:user/nobody",
                policyArn=VIEW,
                accessScope=CLUSTER_SCOPE,
            ),
            id="associate",
        ),
    ],
)
def test_a_caller_without_eks_permissions_gets_access_denied_as_eks_words_it(
    env: Env, call: Callable[[Any, str], Any]
) -> None:
    """EKS refuses with 403 and a JSON AccessDeniedException, which botocore reads as that code
    (moto's own refusal is an XML body botocore could only name "403")."""
    name = unique("no-eks")
    env.iam.create_user(UserName=name)
    key = env.iam.create_access_key(UserName=name)["AccessKey"]
    eks = env.aws.boto3_client("eks", credentials=(key["AccessKeyId"], key["SecretAccessKey"]))
    with pytest.raises(ClientError) as refused:
        call(eks, env.cluster)
    error = refused.value.response
    assert error["Error"]["Code"] == "AccessDeniedException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert name in error["Error"]["Message"]
    assert "is not authorized to perform: eks:" in error["Error"]["Message"]
