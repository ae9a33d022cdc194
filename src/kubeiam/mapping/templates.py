"""Username and group templates, and reserved username prefixes (pure, plus one injected resolver).

A mapping's ``username`` and ``groups`` may contain these placeholders (protocol.md section 4):

=======================  ==========================================================================
``{{AccountID}}``        the caller's 12-digit account id
``{{SessionName}}``      the role session name with every ``@`` replaced by ``-``
``{{SessionNameRaw}}``   the role session name as STS reported it
``{{AccessKeyID}}``      the access key id that signed the token
``{{EC2PrivateDNSName}}``  the private DNS name of the EC2 instance whose id is the session name;
                         only when the session name is an instance id (``i-`` + 8 or 17 hex),
                         resolved through an injected ``async (instance_id) -> str`` resolver
=======================  ==========================================================================

Anything else written with braces (``{{ SessionName }}``, ``{{sessionname}}``, a lone ``{{`` or
``}``) is refused when the mapping is loaded (:func:`validate_template`): the reference left such
text in the username verbatim, which silently produced a user nobody meant.

Rendering is a single pass over the template, so a value can never be re-read as a template.
Reserved prefixes are checked on the **rendered** username (:func:`check_reserved_prefix`): a check
before rendering would let ``{{SessionName}}`` smuggle in ``system:...``. Groups have a rule of
their own, on every backend (:func:`check_rendered_group`): a placeholder may not produce a
reserved group prefix nor change which reserved group a group names (``system:{{SessionName}}``
would let a session named ``masters`` become cluster-admin); groups written literally
(``system:masters``, ``system:nodes``) are the administrator's choice and stay valid.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache

from kubeiam.errors import KubeIAMError, MappingDeniedError, MappingError
from kubeiam.identity import Identity

#: The five placeholders the reference supports, spelled exactly as it spells them.
TEMPLATE_NAMES = frozenset(
    {"AccountID", "SessionName", "SessionNameRaw", "AccessKeyID", "EC2PrivateDNSName"}
)
EC2_PRIVATE_DNS_NAME = "EC2PrivateDNSName"

#: ``{{Name}}`` exactly: no inner spaces (the reference only ever replaced this spelling).
_PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9]+)\}\}")
#: Any brace left after removing valid placeholders means a misspelt template.
_STRAY_BRACES = re.compile(r"[{}]")
#: The lint code of a template kubeiam refuses (an unknown placeholder, or stray braces).
UNKNOWN_TEMPLATE = "unknown-template"

#: EC2 instance ids: ``i-`` and 8 (old) or 17 (current) lower-case hex digits. The reference
#: accepted any ``\w``; hex only is what EC2 issues.
INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})", re.ASCII)

#: Prefixes kubeiam suggests reserving (the list the reference's EKS deployment reserves for its
#: DynamicFile backend). Which backends reserve them is configuration: see docs/mapping.md.
DEFAULT_RESERVED_PREFIXES: tuple[str, ...] = ("system:", "eks:", "aws:", "iam:", "amazon:")
#: Group prefixes a placeholder may never produce or steer, on every backend whatever
#: ``reservedPrefixConfig`` says (that setting is about usernames, and is empty by default where
#: node entries live): Kubernetes grants ``system:`` groups by name (``system:masters`` is
#: cluster-admin), and EKS and AWS tools bind the others.
RESERVED_GROUP_PREFIXES: tuple[str, ...] = DEFAULT_RESERVED_PREFIXES

#: ``async (instance_id) -> private DNS name``; the server wires ec2:DescribeInstances behind it.
EC2Resolver = Callable[[str], Awaitable[str]]
#: ``async (instance_id, role_arn) -> bool``: does that instance's instance profile hold that role?
#: Optional defence against node impersonation (session names are chosen by the caller).
InstanceRoleCheck = Callable[[str, str], Awaitable[bool]]


@lru_cache(maxsize=4096)
def template_names(text: str) -> frozenset[str]:
    """The placeholders used in ``text``; raises :class:`MappingError` for unknown or stray ones.

    Cached: a ConfigMap of 10,000 entries repeats a handful of username patterns.
    """
    names = frozenset(_PLACEHOLDER.findall(text))
    unknown = sorted(names - TEMPLATE_NAMES)
    if unknown:
        known = ", ".join("{{" + n + "}}" for n in sorted(TEMPLATE_NAMES))
        raise MappingError(
            f"unknown template {{{{{unknown[0]}}}}} in {text!r}",
            hint=f"templates are case-sensitive; the known ones are {known}",
            code=UNKNOWN_TEMPLATE,
        )
    if _STRAY_BRACES.search(_PLACEHOLDER.sub("", text)):
        raise MappingError(
            f"malformed template in {text!r}",
            hint="write placeholders exactly as {{SessionName}}, with no spaces inside the braces",
            code=UNKNOWN_TEMPLATE,
        )
    return names


def validate_template(text: str) -> None:
    """Raise :class:`MappingError` unless every ``{{...}}`` in ``text`` is a known template."""
    template_names(text)


def needs_ec2(text: str) -> bool:
    """True when rendering ``text`` needs the EC2 resolver."""
    return EC2_PRIVATE_DNS_NAME in template_names(text)


def _values(identity: Identity) -> dict[str, str]:
    return {
        "AccountID": identity.account_id,
        "SessionName": identity.session_name.replace("@", "-"),
        "SessionNameRaw": identity.session_name,
        "AccessKeyID": identity.access_key_id,
    }


def render_partially(template: str, identity: Identity) -> str:
    """``template`` with what ``identity`` tells substituted, without asking EC2: a placeholder
    with no value here (no session name, no access key id, ``{{EC2PrivateDNSName}}``) stays as
    written. For showing what an entry would make of a caller (`kubeiam mapping explain`), never
    for serving a review (:func:`render` refuses what it cannot render)."""
    values = _values(identity)
    if not identity.session_name:
        del values["SessionName"], values["SessionNameRaw"]
    if not identity.access_key_id:
        del values["AccessKeyID"]
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


async def resolve_private_dns_name(
    identity: Identity,
    resolver: EC2Resolver | None,
    instance_role_check: InstanceRoleCheck | None = None,
) -> str:
    """The EC2 private DNS name for the identity's session, or :class:`MappingDeniedError`.

    With ``instance_role_check``, the instance named by the session must also carry the caller's
    role in its instance profile: anyone allowed to assume a node role can name their session
    after any instance, and would otherwise become that node.

    Errors the resolver raises from the kubeiam tree pass through unchanged (their HTTP status
    stands, e.g. throttling); anything else becomes a denial naming the instance.
    """
    session = identity.session_name
    if not INSTANCE_ID.fullmatch(session):
        raise MappingDeniedError(
            "the mapping uses {{EC2PrivateDNSName}} but the session name is not an EC2 instance id",
            hint="this entry is for EC2 nodes, whose role sessions are named after the instance",
        )
    if resolver is None:
        raise MappingDeniedError(
            "the mapping uses {{EC2PrivateDNSName}} but no EC2 resolver is configured",
            hint="run the server with EC2 access so it can call ec2:DescribeInstances",
        )
    try:
        name = await resolver(session)
        holds_role = (
            await instance_role_check(session, identity.canonical_arn)
            if instance_role_check is not None
            else True
        )
    except KubeIAMError:
        raise
    except Exception as exc:  # the resolver is an adapter: any failure denies, with its type
        raise MappingDeniedError(
            f"could not resolve the private DNS name of {session}: {type(exc).__name__}"
        ) from exc
    if not holds_role:
        raise MappingDeniedError(
            f"session name {session} names an instance whose instance profile does not hold "
            f"{identity.canonical_arn}",
            hint="only the instance itself may use its id as a session name of a node role",
        )
    if not name:
        raise MappingDeniedError(f"EC2 reported no private DNS name for {session}")
    return name


async def render(
    template: str,
    identity: Identity,
    *,
    ec2_resolver: EC2Resolver | None = None,
    private_dns_name: str | None = None,
) -> str:
    """Substitute every placeholder of ``template`` for ``identity`` in one pass.

    ``private_dns_name`` lets a caller rendering several templates resolve the instance once.
    """
    names = template_names(template)
    if not names:
        return template
    values = _values(identity)
    if EC2_PRIVATE_DNS_NAME in names:
        if private_dns_name is None:
            private_dns_name = await resolve_private_dns_name(identity, ec2_resolver)
        values[EC2_PRIVATE_DNS_NAME] = private_dns_name
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


async def render_all(
    username: str,
    groups: Sequence[str],
    identity: Identity,
    *,
    ec2_resolver: EC2Resolver | None = None,
    instance_role_check: InstanceRoleCheck | None = None,
) -> tuple[str, tuple[str, ...]]:
    """Render a username and its groups, resolving ``{{EC2PrivateDNSName}}`` at most once."""
    dns: str | None = None
    if needs_ec2(username) or any(needs_ec2(g) for g in groups):
        dns = await resolve_private_dns_name(identity, ec2_resolver, instance_role_check)
    user = await render(username, identity, private_dns_name=dns)
    rendered = tuple([await render(g, identity, private_dns_name=dns) for g in groups])
    for template, group in zip(groups, rendered, strict=True):
        check_rendered_group(template, group)
    return user, rendered


def check_rendered_group(
    template: str, group: str, prefixes: Sequence[str] = RESERVED_GROUP_PREFIXES
) -> None:
    """Refuse ``group`` (rendered from ``template``) when a placeholder chose a reserved group.

    A rendered group with a reserved prefix is valid only when the placeholders added nothing to
    it, i.e. it is exactly the template's literal text: then the administrator wrote that group.
    Otherwise a placeholder either produced the prefix (``{{SessionName}}`` -> ``system:masters``)
    or changed which reserved group is named (``system:{{SessionName}}``,
    ``system:serviceaccounts:{{SessionName}}``), and :class:`MappingDeniedError` is raised.
    """
    if not template_names(template):
        return
    prefix = reserved_prefix_of(group, prefixes)
    if prefix is None or group == _PLACEHOLDER.sub("", template):
        return
    raise MappingDeniedError(
        f"group {group!r} rendered from {template!r} is in the reserved prefix {prefix!r}: a "
        "placeholder may not choose a reserved group",
        hint="write reserved groups literally (system:masters, system:nodes ...); keep "
        "placeholders in groups outside system:, eks:, aws:, iam: and amazon:",
    )


def reserved_prefix_of(username: str, prefixes: Sequence[str]) -> str | None:
    """The first reserved prefix ``username`` starts with (case-sensitive, as in Kubernetes)."""
    for prefix in prefixes:
        if prefix and username.startswith(prefix):
            return prefix
    return None


def check_reserved_prefix(username: str, prefixes: Sequence[str], *, backend: str) -> None:
    """Raise :class:`MappingDeniedError` when the rendered ``username`` uses a reserved prefix."""
    prefix = reserved_prefix_of(username, prefixes)
    if prefix is not None:
        raise MappingDeniedError(
            f"username {username!r} from backend {backend} starts with the reserved prefix "
            f"{prefix!r}",
            hint=f"map this identity to another username, or change reservedPrefixConfig for "
            f"{backend} if this backend is meant to issue such names",
        )
