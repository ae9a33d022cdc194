"""Reserved groups: a placeholder may not produce a reserved group prefix nor change which
reserved group a group names; groups written literally stay valid (issue 9, section 4)."""

from __future__ import annotations

import pytest
from mapping_helpers import ACCOUNT, ec2_names, role_identity

from kubeiam.errors import MappingDeniedError
from kubeiam.mapping.backends.mounted_file import MountedFile
from kubeiam.mapping.chain import MappingChain
from kubeiam.mapping.templates import check_rendered_group, render_all

ROLE = f"arn:aws:iam::{ACCOUNT}:role/Dev"
NODE = "i-0123456789abcdef0"

REFUSED = [
    ("system:{{SessionName}}", "masters", "system:masters", "session-picks-system-group"),
    ("{{SessionName}}:masters", "system", "system:masters", "session-produces-the-prefix"),
    ("{{SessionNameRaw}}:admins", "eks", "eks:admins", "raw-session-produces-the-prefix"),
    (
        "system:serviceaccounts:{{SessionName}}",
        "kube-system",
        "system:serviceaccounts:kube-system",
        "session-picks-namespace-group",
    ),
    ("system:masters{{SessionName}}", "-x", "system:masters-x", "suffix-after-literal-group"),
    ("eks:{{AccountID}}", "s", f"eks:{ACCOUNT}", "account-in-eks-prefix"),
    ("aws:team-{{SessionName}}", "a", "aws:team-a", "aws-prefix"),
    ("iam:{{SessionName}}", "x", "iam:x", "iam-prefix"),
    ("amazon:{{SessionName}}", "x", "amazon:x", "amazon-prefix"),
]


@pytest.mark.parametrize(
    ("template", "session", "rendered"),
    [pytest.param(t, s, r, id=i) for t, s, r, i in REFUSED],
)
async def test_a_placeholder_may_not_choose_a_reserved_group(
    template: str, session: str, rendered: str
) -> None:
    with pytest.raises(MappingDeniedError, match="a placeholder may not choose a reserved group"):
        check_rendered_group(template, rendered)
    with pytest.raises(MappingDeniedError, match="write reserved groups literally") as info:
        await render_all("u", ["devs", template], role_identity("Dev", session=session))
    assert repr(rendered) in info.value.message


ALLOWED = [
    ("system:masters", "masters", "system:masters", "literal-system-masters"),
    ("system:nodes", "x", "system:nodes", "literal-system-nodes"),
    ("team-{{SessionName}}", "system:masters", "team-system:masters", "not-a-prefix"),
    ("{{SessionName}}", "masters", "masters", "plain-session-group"),
    ("System:{{SessionName}}", "masters", "System:masters", "case-sensitive-like-kubernetes"),
    ("acct-{{AccountID}}", "x", f"acct-{ACCOUNT}", "account-group"),
    ("{{SessionNameRaw}}system:nodes", "", "system:nodes", "placeholder-adds-nothing"),
]


@pytest.mark.parametrize(
    ("template", "session", "rendered"),
    [pytest.param(t, s, r, id=i) for t, s, r, i in ALLOWED],
)
def test_literal_reserved_groups_and_unreserved_templates_stay_valid(
    template: str, session: str, rendered: str
) -> None:
    check_rendered_group(template, rendered)


async def test_node_entries_keep_their_literal_system_groups() -> None:
    user, groups = await render_all(
        "system:node:{{EC2PrivateDNSName}}",
        ["system:bootstrappers", "system:nodes"],
        role_identity("NodeRole", session=NODE),
        ec2_resolver=ec2_names,
    )
    assert user == "system:node:ip-10-0-0-1.ec2.internal"
    assert groups == ("system:bootstrappers", "system:nodes")


async def test_the_chain_denies_on_backends_that_reserve_no_username_prefix() -> None:
    """MountedFile reserves no username prefix by default: the group rule holds anyway."""
    backend = MountedFile(
        map_roles=[
            {
                "rolearn": ROLE,
                "username": "dev:{{SessionName}}",
                "groups": ["system:{{SessionName}}"],
            }
        ]
    )
    chain = MappingChain([backend])
    with pytest.raises(MappingDeniedError) as info:
        await chain.map(role_identity("Dev", session="masters"))
    assert "MountedFile" in info.value.message
    assert "'system:masters'" in info.value.message
    # Whatever the session: system:<anything> is a reserved group chosen by a placeholder.
    with pytest.raises(MappingDeniedError):
        await chain.map(role_identity("Dev", session="alice"))
    literal = MappingChain(
        [
            MountedFile(
                map_roles=[
                    {
                        "rolearn": ROLE,
                        "username": "dev:{{SessionName}}",
                        "groups": ["system:masters"],
                    }
                ]
            )
        ]
    )
    user = await literal.map(role_identity("Dev", session="masters"))
    assert user is not None
    assert user.groups == ("system:masters",)
