"""Templates: validation at load, one-pass rendering, EC2 names, reserved prefixes."""

from __future__ import annotations

import pytest
from mapping_helpers import ec2_names, role_identity, user_identity

from kubeiam.errors import MappingDeniedError, MappingError, STSThrottledError
from kubeiam.mapping.templates import (
    INSTANCE_ID,
    check_reserved_prefix,
    needs_ec2,
    render,
    render_all,
    reserved_prefix_of,
    template_names,
)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("plain", set()),
        ("admin:{{SessionName}}", {"SessionName"}),
        (
            "{{AccountID}}-{{SessionNameRaw}}-{{AccessKeyID}}",
            {"AccountID", "SessionNameRaw", "AccessKeyID"},
        ),
        ("system:node:{{EC2PrivateDNSName}}", {"EC2PrivateDNSName"}),
    ],
    ids=["none", "session", "three", "ec2"],
)
def test_known_templates(text: str, names: set[str]) -> None:
    assert template_names(text) == names


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{sessionname}}", "unknown template {{sessionname}}"),
        ("{{Session}}", "unknown template {{Session}}"),
        ("{{ SessionName }}", "malformed template"),
        ("a{{SessionName", "malformed template"),
        ("a}}b", "malformed template"),
        ("{{{SessionName}}}", "malformed template"),
    ],
    ids=["lower-case", "misspelt", "spaces", "unclosed", "stray-close", "triple"],
)
def test_unknown_or_malformed_templates_are_refused(text: str, message: str) -> None:
    with pytest.raises(MappingError, match=message.replace("{", r"\{").replace("}", r"\}")):
        template_names(text)


@pytest.mark.parametrize(
    ("session", "ok"),
    [
        ("i-0123456789abcdef0", True),
        ("i-01234567", True),
        ("i-0123456789ABCDEF0", False),
        ("i-0123456789abcdef", False),
        ("i-0123456", False),
        ("i-0123456789abcdef0\n", False),
        ("xi-01234567", False),
        ("i-0123456g", False),
    ],
    ids=["17-hex", "8-hex", "upper", "16-hex", "7-hex", "newline", "prefix", "non-hex"],
)
def test_instance_id_pattern(session: str, ok: bool) -> None:
    assert bool(INSTANCE_ID.fullmatch(session)) is ok


async def test_render_is_one_pass_and_replaces_at_signs() -> None:
    identity = role_identity(session="a@b.c")
    assert await render("{{SessionName}}/{{SessionNameRaw}}", identity) == "a-b.c/a@b.c"
    assert await render("{{AccountID}}:{{AccessKeyID}}", identity) == (
        "111122223333:ASIAEXAMPLEKEY000002"
    )
    assert await render("no templates", identity) == "no templates"


async def test_session_templates_render_empty_for_users() -> None:
    assert await render("u-{{SessionName}}", user_identity()) == "u-"


async def test_ec2_name_resolved_once_for_username_and_groups() -> None:
    calls: list[str] = []

    async def resolver(instance_id: str) -> str:
        calls.append(instance_id)
        return await ec2_names(instance_id)

    identity = role_identity("NodeRole", "i-0123456789abcdef0")
    user, groups = await render_all(
        "system:node:{{EC2PrivateDNSName}}",
        ["n-{{EC2PrivateDNSName}}", "system:nodes"],
        identity,
        ec2_resolver=resolver,
    )
    assert user == "system:node:ip-10-0-0-1.ec2.internal"
    assert groups == ("n-ip-10-0-0-1.ec2.internal", "system:nodes")
    assert calls == ["i-0123456789abcdef0"]


async def test_ec2_name_needs_an_instance_session_and_a_resolver() -> None:
    node = "system:node:{{EC2PrivateDNSName}}"
    assert needs_ec2(node)
    with pytest.raises(MappingDeniedError, match="not an EC2 instance id"):
        await render(node, role_identity("NodeRole", "alice"), ec2_resolver=ec2_names)
    with pytest.raises(MappingDeniedError, match="no EC2 resolver"):
        await render(node, role_identity("NodeRole", "i-01234567"))
    with pytest.raises(MappingDeniedError, match="LookupError"):
        await render(node, role_identity("NodeRole", "i-89abcdef"), ec2_resolver=ec2_names)


async def test_resolver_errors_from_the_kubeiam_tree_pass_through() -> None:
    async def throttled(instance_id: str) -> str:
        raise STSThrottledError("slow down")

    with pytest.raises(STSThrottledError):
        await render(
            "{{EC2PrivateDNSName}}", role_identity("N", "i-01234567"), ec2_resolver=throttled
        )


@pytest.mark.parametrize(
    ("username", "prefixes", "hit"),
    [
        ("system:masters-ish", ("system:",), "system:"),
        ("System:x", ("system:",), None),
        ("eks:foo", ("system:", "eks:"), "eks:"),
        ("alice", ("system:", "eks:"), None),
        ("anything", ("",), None),
    ],
    ids=["system", "case-sensitive", "second", "none", "empty-prefix-ignored"],
)
def test_reserved_prefixes(username: str, prefixes: tuple[str, ...], hit: str | None) -> None:
    assert reserved_prefix_of(username, prefixes) == hit
    if hit is None:
        check_reserved_prefix(username, prefixes, backend="CRD")
    else:
        with pytest.raises(MappingDeniedError, match="reservedPrefixConfig for CRD"):
            check_reserved_prefix(username, prefixes, backend="CRD")


async def test_instance_role_check_refuses_a_foreign_session_name() -> None:
    seen: list[tuple[str, str]] = []

    async def profile_holds(instance_id: str, role_arn: str) -> bool:
        seen.append((instance_id, role_arn))
        return role_arn.endswith(":role/NodeRole")

    node = "system:node:{{EC2PrivateDNSName}}"
    user, _ = await render_all(
        node,
        [],
        role_identity("NodeRole", "i-0123456789abcdef0"),
        ec2_resolver=ec2_names,
        instance_role_check=profile_holds,
    )
    assert user == "system:node:ip-10-0-0-1.ec2.internal"
    # A user allowed to assume another role mapped to nodes names the session after a node.
    with pytest.raises(MappingDeniedError, match="instance profile does not hold"):
        await render_all(
            node,
            [],
            role_identity("Impersonator", "i-0123456789abcdef0"),
            ec2_resolver=ec2_names,
            instance_role_check=profile_holds,
        )
    assert seen[1] == ("i-0123456789abcdef0", "arn:aws:iam::111122223333:role/Impersonator")
