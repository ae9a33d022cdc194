"""Who can become an IAM principal, from one account's IAM data (pure).

The data is what ``GetAccountAuthorizationDetails`` returns (read in bulk by
:mod:`kubeiam.access.iam_reader`): users with their groups, groups, roles with their trust
policies, managed policies, and permissions boundaries. :func:`account_from_details` turns its
pages into an :class:`AccountIAM`; :func:`who_can_become` answers, for one principal:

* an IAM user: the user itself (its access keys or console password);
* a role: every user and role of the account whose request to ``sts:AssumeRole`` on it is not
  denied by :func:`kubeiam.access.policy.evaluate` (the same-account rule, boundaries, denies,
  conditions carried), with the groups whose policies granted it; roles are followed back through
  role chains up to :data:`MAX_ROLE_CHAIN` hops; plus the entries a trust policy names that are
  not principals of this account: other accounts and their principals, AWS services, identity
  providers, IAM Identity Center (SSO) permission sets, and ``*`` (everyone).

What this account cannot show is ``unknown``, never guessed: another account's members and
their policies, SSO assignments (kept in the organisation's management account), SCPs.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubeiam.access.policy import (
    ACCOUNT_ID,
    ACCOUNT_ROOT,
    Caller,
    Clause,
    Decision,
    Effect,
    Policy,
    PolicyDocumentError,
    PrincipalType,
    Request,
    Subject,
    Unseen,
    Verdict,
    evaluate,
    narrow,
    parse_policy,
    trusted_principals,
)
from kubeiam.arn import sso_permission_set

#: How many role hops a chain may have (user -> role -> role ... -> target). AWS sets no limit
#: on chaining; the bound keeps a report finite on accounts where every role trusts every role.
MAX_ROLE_CHAIN = 4
#: The action that makes a caller a role.
ASSUME_ROLE = "sts:AssumeRole"
#: The actions an identity provider uses to become a role (SAML, OIDC).
FEDERATED_ACTIONS = ("sts:AssumeRoleWithSAML", "sts:AssumeRoleWithWebIdentity")
#: Session tags passed by an identity provider need this action allowed by the trust policy.
TAG_SESSION = "sts:TagSession"
#: Which way in to keep when several actions let one principal in.
_RANK = {Decision.ALLOWED: 0, Decision.CONDITIONAL: 1, Decision.UNKNOWN: 2, Decision.DENIED: 3}
#: An IAM ARN: partition, account, resource type, path and name.
_IAM_ARN = re.compile(r"^arn:([a-z-]+):iam::([0-9]{12}):(user|role|group)(/.*)?/([^/]+)$")


class EntryKind(enum.Enum):
    """Where a way in starts."""

    USER = "user"
    ROLE = "role"
    ACCOUNT = "account"
    SSO = "sso"
    SERVICE = "service"
    FEDERATED = "federated"
    ANYONE = "anyone"


@dataclass(frozen=True, slots=True)
class IAMGroup:
    arn: str
    name: str
    policies: tuple[Policy, ...] = ()


@dataclass(frozen=True, slots=True)
class IAMUser:
    arn: str
    name: str
    unique_id: str
    #: ARNs of the groups the user is in.
    groups: tuple[str, ...] = ()
    #: The user's own identity policies (inline and attached); its groups' are on the groups.
    policies: tuple[Policy, ...] = ()
    boundary: Policy | None = None
    #: What could not be read for this user (a managed policy not returned, a bad document).
    unseen: tuple[str, ...] = ()
    #: IAM's CreateDate (None if the answer had none): an access entry older than it was made
    #: for an earlier user of that name.
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class IAMRole:
    arn: str
    name: str
    unique_id: str
    #: None when the trust policy could not be read (then ``unseen`` says why).
    trust: Policy | None
    policies: tuple[Policy, ...] = ()
    boundary: Policy | None = None
    unseen: tuple[str, ...] = ()
    #: IAM's CreateDate (None if the answer had none), as for :attr:`IAMUser.created`.
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class AccountIAM:
    """One account's users, groups and roles, with their policies resolved."""

    account_id: str
    partition: str
    users: tuple[IAMUser, ...] = ()
    groups: tuple[IAMGroup, ...] = ()
    roles: tuple[IAMRole, ...] = ()
    _by_key: Mapping[str, IAMUser | IAMRole | IAMGroup] = field(
        default_factory=dict, repr=False, compare=False
    )

    def find(self, arn: str) -> IAMUser | IAMRole | IAMGroup | None:
        """The principal an ARN names, case-insensitively; a role also without its path (the
        form mappings and STS use)."""
        return self._by_key.get(principal_key(arn))


def principal_key(arn: str) -> str:
    """``arn:aws:iam::1:role/path/Name`` and ``.../role/name`` are one key (IAM names are unique
    case-insensitively; mappings and STS drop role paths). Users and groups keep their path."""
    parsed = _IAM_ARN.fullmatch(arn.strip())
    if parsed is None:
        return arn.strip().lower()
    partition, account, rtype, path, name = parsed.groups()
    kept = "" if rtype == "role" else (path or "")
    return f"arn:{partition}:iam::{account}:{rtype}{kept}/{name}".lower()


# --- building the account from GetAccountAuthorizationDetails pages ------------------------


def account_from_details(
    pages: Iterable[Mapping[str, object]], *, account_id: str = ""
) -> AccountIAM:
    """Join the pages of ``GetAccountAuthorizationDetails`` into an :class:`AccountIAM`.

    A policy document that does not parse, or a managed policy the answer does not include, is
    recorded in the principal's ``unseen`` instead of failing the whole account.
    """
    users: list[Mapping[str, object]] = []
    groups: list[Mapping[str, object]] = []
    roles: list[Mapping[str, object]] = []
    managed: dict[str, object] = {}
    for page in pages:
        users += _records(page, "UserDetailList")
        groups += _records(page, "GroupDetailList")
        roles += _records(page, "RoleDetailList")
        for policy in _records(page, "Policies"):
            managed[str(policy.get("Arn", ""))] = _default_document(policy)
    partition = "aws"
    for record in [*users, *roles, *groups]:
        parsed = _IAM_ARN.fullmatch(str(record.get("Arn", "")))
        if parsed:
            partition, account_id = parsed.group(1), account_id or parsed.group(2)
            break
    resolver = _Resolver(managed)
    built_groups = tuple(resolver.group(g) for g in groups)
    group_arns = {g.name: g.arn for g in built_groups}
    built_users = tuple(resolver.user(u, group_arns) for u in users)
    built_roles = tuple(resolver.role(r) for r in roles)
    everyone: list[IAMUser | IAMRole | IAMGroup] = [*built_users, *built_roles, *built_groups]
    index = {principal_key(item.arn): item for item in everyone}
    return AccountIAM(account_id, partition, built_users, built_groups, built_roles, index)


def _records(page: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    value = page.get(key)
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, Mapping)]


def _default_document(policy: Mapping[str, object]) -> object:
    for version in _records(policy, "PolicyVersionList"):
        if version.get("IsDefaultVersion"):
            return version.get("Document")
    return None


class _Resolver:
    """Parses inline and managed policies, noting what could not be read."""

    def __init__(self, managed: Mapping[str, object]) -> None:
        self._managed = managed
        self._parsed: dict[str, Policy | str] = {}

    def _parse(self, document: object, source: str) -> Policy | str:
        """A policy, or the reason it cannot be read."""
        if not isinstance(document, (Mapping, str)):
            return f"{source}: no policy document"
        try:
            return parse_policy(document, source=source)
        except PolicyDocumentError as exc:
            return str(exc)

    def _managed_policy(self, arn: str) -> Policy | str:
        if arn not in self._parsed:
            if arn not in self._managed:
                self._parsed[arn] = f"managed policy {arn} was not in the account details"
            else:
                self._parsed[arn] = self._parse(self._managed[arn], arn)
        return self._parsed[arn]

    def policies(
        self, record: Mapping[str, object], inline_key: str, owner: str
    ) -> tuple[tuple[Policy, ...], tuple[str, ...]]:
        found: list[Policy | str] = []
        for inline in _records(record, inline_key):
            source = f"{owner} inline policy {inline.get('PolicyName', '?')}"
            found.append(self._parse(inline.get("PolicyDocument"), source))
        for attached in _records(record, "AttachedManagedPolicies"):
            found.append(self._managed_policy(str(attached.get("PolicyArn", ""))))
        return _split(found)

    def boundary(self, record: Mapping[str, object]) -> tuple[Policy | None, tuple[str, ...]]:
        raw = record.get("PermissionsBoundary")
        if not isinstance(raw, Mapping) or not raw.get("PermissionsBoundaryArn"):
            return None, ()
        found = self._managed_policy(str(raw["PermissionsBoundaryArn"]))
        if isinstance(found, str):
            return None, (f"permissions boundary: {found}",)
        return found, ()

    def group(self, record: Mapping[str, object]) -> IAMGroup:
        arn = str(record.get("Arn", ""))
        policies, _unseen = self.policies(record, "GroupPolicyList", arn)
        return IAMGroup(arn, str(record.get("GroupName", "")), policies)

    def user(self, record: Mapping[str, object], group_arns: Mapping[str, str]) -> IAMUser:
        arn = str(record.get("Arn", ""))
        policies, unseen = self.policies(record, "UserPolicyList", arn)
        boundary, boundary_unseen = self.boundary(record)
        names = record.get("GroupList")
        groups = (
            tuple(group_arns.get(str(n), str(n)) for n in names or ())
            if isinstance(names, list)
            else ()
        )
        return IAMUser(
            arn,
            str(record.get("UserName", "")),
            str(record.get("UserId", "")),
            groups,
            policies,
            boundary,
            unseen + boundary_unseen,
            created_date(record.get("CreateDate")),
        )

    def role(self, record: Mapping[str, object]) -> IAMRole:
        arn = str(record.get("Arn", ""))
        policies, unseen = self.policies(record, "RolePolicyList", arn)
        boundary, boundary_unseen = self.boundary(record)
        trust = self._parse(record.get("AssumeRolePolicyDocument"), f"{arn} trust policy")
        trust_unseen: tuple[str, ...] = (trust,) if isinstance(trust, str) else ()
        return IAMRole(
            arn,
            str(record.get("RoleName", "")),
            str(record.get("RoleId", "")),
            None if isinstance(trust, str) else trust,
            policies,
            boundary,
            unseen + boundary_unseen + trust_unseen,
            created_date(record.get("CreateDate")),
        )


def created_date(value: object) -> datetime | None:
    """A CreateDate as boto3 gives it (an aware datetime) or as the Query API writes it (ISO 8601
    text, ``...Z``); naive times are UTC; anything else is unknown (None), never a guess."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _split(found: Sequence[Policy | str]) -> tuple[tuple[Policy, ...], tuple[str, ...]]:
    return (
        tuple(p for p in found if isinstance(p, Policy)),
        tuple(p for p in found if isinstance(p, str)),
    )


# --- who can become a principal ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Path:
    """One way to become the target: start here, assume the roles in ``via`` in order."""

    kind: EntryKind
    #: The ARN (user, role, account root), account id, service or provider the way starts at.
    start: str
    #: The roles assumed in order, the last being the target; empty for a user's own keys.
    via: tuple[str, ...]
    verdict: Verdict
    #: IAM groups whose policies granted a hop (the user is reached as a group member).
    groups: tuple[str, ...] = ()
    #: What kubeiam could not read on the way (unreadable policies, managed policies missing).
    unseen: tuple[str, ...] = ()

    @property
    def decision(self) -> Decision:
        """The verdict's decision; ``unknown`` when a policy on the way could not be read
        (it might allow or deny), unless an explicit deny already settles it."""
        if self.unseen and not self.verdict.deny.is_always:
            return Decision.UNKNOWN
        return self.verdict.decision


def who_can_become(
    account: AccountIAM, arn: str, *, max_chain: int = MAX_ROLE_CHAIN
) -> tuple[Path, ...]:
    """Every way into the principal ``arn`` names; empty when it does not exist in ``account``.

    For many principals of one account, build one :class:`IAMGraph` and ask it: its answers
    are memoised across targets."""
    return IAMGraph(account, max_chain=max_chain).who_can_become(arn)


class IAMGraph:
    """Memoised answers over one account: one-hop ways into each role, and chains of them."""

    def __init__(self, account: AccountIAM, *, max_chain: int = MAX_ROLE_CHAIN) -> None:
        self.account = account
        self.max_chain = max_chain
        self._groups = {g.arn: g for g in account.groups}
        self._hops: dict[str, tuple[Path, ...]] = {}
        #: id(policy) -> (policy kept alive so the id stays its own, narrowed policy)
        self._narrow_cache: dict[int, tuple[Policy, Policy]] = {}
        self._chains: dict[tuple[str, int], tuple[Path, ...]] = {}
        self._subjects = {
            **{u.arn: self._user_subject(u) for u in account.users},
            **{r.arn: self._role_subject(r) for r in account.roles},
        }
        self._principals: dict[str, IAMUser | IAMRole] = {
            **{u.arn: u for u in account.users},
            **{r.arn: r for r in account.roles},
        }
        #: Principals whose policies are the same objects (one evaluation serves them all).
        self._alike: dict[tuple[object, ...], list[str]] = {}
        for arn, subject in self._subjects.items():
            key = (subject.kind, *map(id, subject.identity_policies), id(subject.boundary))
            self._alike.setdefault(key, []).append(arn)
        #: Principals by every name a trust policy may use for them: ARN and unique id.
        self._named = {
            **{u.arn: u.arn for u in account.users},
            **{r.arn: r.arn for r in account.roles},
            **{u.unique_id: u.arn for u in account.users if u.unique_id},
            **{r.unique_id: r.arn for r in account.roles if r.unique_id},
        }

    def who_can_become(self, arn: str) -> tuple[Path, ...]:
        target = self.account.find(arn)
        if isinstance(target, IAMUser):
            always = Verdict(Clause.always())
            return (Path(EntryKind.USER, target.arn, (), always, unseen=target.unseen),)
        if not isinstance(target, IAMRole):
            return ()
        return self._paths_into(target, self.max_chain)

    def _user_subject(self, user: IAMUser) -> Subject:
        policies = list(user.policies)
        for group in user.groups:
            if group in self._groups:
                policies += self._groups[group].policies
        caller = Caller(user.arn, self.account.account_id, user.unique_id)
        return Subject(caller, PrincipalType.USER, *self._narrowed(policies, user.boundary))

    def _role_subject(self, role: IAMRole) -> Subject:
        caller = Caller(role.arn, self.account.account_id, role.unique_id)
        return Subject(caller, PrincipalType.ROLE, *self._narrowed(role.policies, role.boundary))

    def _narrowed(
        self, policies: Iterable[Policy], boundary: Policy | None
    ) -> tuple[tuple[Policy, ...], Policy | None]:
        """Only the statements about sts:AssumeRole: every question here asks that action.
        Each policy is narrowed once, so principals sharing policies share the objects."""
        kept = tuple(p for p in map(self._narrow, policies) if p.statements)
        return kept, None if boundary is None else self._narrow(boundary)

    def _narrow(self, policy: Policy) -> Policy:
        if id(policy) not in self._narrow_cache:
            self._narrow_cache[id(policy)] = (policy, narrow(policy, (ASSUME_ROLE,)))
        return self._narrow_cache[id(policy)][1]

    def _paths_into(self, role: IAMRole, depth: int) -> tuple[Path, ...]:
        """One-hop ways in, then each role among them extended by the ways into it; memoised
        per (role, depth), cycles dropped when a chain would visit a role twice."""
        key = (role.arn, depth)
        if key in self._chains:
            return self._chains[key]
        paths: list[Path] = []
        for hop in self.one_hop(role):
            paths.append(hop)
            if hop.kind is not EntryKind.ROLE or depth <= 1:
                continue
            caller = self.account.find(hop.start)
            if not isinstance(caller, IAMRole) or caller.arn == role.arn:
                continue
            for earlier in self._paths_into(caller, depth - 1):
                visited = (earlier.start, *earlier.via, *hop.via)
                if len(set(visited)) < len(visited):
                    continue  # a cycle: some role would be assumed twice
                chained = Path(
                    earlier.kind,
                    earlier.start,
                    earlier.via + hop.via,
                    earlier.verdict.then(hop.verdict),
                    _unique(earlier.groups + hop.groups),
                    _unique(earlier.unseen + hop.unseen),
                )
                if chained.decision is not Decision.DENIED:
                    paths.append(chained)
        self._chains[key] = tuple(paths)
        return self._chains[key]

    def one_hop(self, role: IAMRole) -> tuple[Path, ...]:
        """The ways in that are one ``AssumeRole`` away from ``role``."""
        if role.arn not in self._hops:
            self._hops[role.arn] = self._compute_hop(role)
        return self._hops[role.arn]

    def _compute_hop(self, role: IAMRole) -> tuple[Path, ...]:
        if role.trust is None:
            return (
                Path(
                    EntryKind.ROLE,
                    role.arn,
                    (role.arn,),
                    Verdict(Clause.when([Unseen(u) for u in role.unseen])),
                    unseen=role.unseen,
                ),
            )
        request = Request(
            ASSUME_ROLE,
            role.arn,
            self.account.account_id,
            role.trust,
            resource_policy_required=True,
        )
        named = self._named_in(role.trust)
        paths: list[Path | None] = [
            self._member_path(role, arn, evaluate(request, self._subjects[arn]))
            for arn in named
            if arn != role.arn
        ]
        if self._delegates(role.trust):
            # Not named by the trust policy: only a principal's policies matter, so principals
            # with the same policies (a group's members) share one evaluation.
            for alike in self._alike.values():
                members = [a for a in alike if a != role.arn and a not in named]
                if not members:
                    continue
                verdict = evaluate(request, self._subjects[members[0]])
                if verdict.decision is Decision.DENIED and not self._any_unseen(members):
                    continue
                paths += (self._member_path(role, arn, verdict) for arn in members)
        paths += self._entries(role)
        return tuple(p for p in paths if p is not None)

    def _delegates(self, trust: Policy) -> bool:
        """Whether the trust policy may let in principals it does not name: it names the
        account, everyone, or uses NotPrincipal."""
        own = self.account.account_id
        for statement in trust.statements:
            if statement.effect is not Effect.ALLOW or statement.principals is None:
                continue
            if statement.not_principal:
                return True
            for kind, value in statement.principals:
                root = ACCOUNT_ROOT.fullmatch(value)
                if kind == "*" or value == "*" or value == own or (root and root.group(1) == own):
                    return True
        return False

    def _any_unseen(self, members: Sequence[str]) -> bool:
        return any(self._principals[a].unseen for a in members)

    def _named_in(self, trust: Policy) -> frozenset[str]:
        """The account's principals some statement names (by ARN or unique id)."""
        return frozenset(
            self._named[value]
            for statement in trust.statements
            for kind, value in statement.principals or ()
            if kind == "AWS" and value in self._named
        )

    def _member_path(self, role: IAMRole, arn: str, verdict: Verdict) -> Path | None:
        principal = self._principals[arn]
        unseen = principal.unseen
        if verdict.decision is Decision.DENIED and not unseen:
            return None
        kind = EntryKind.USER if isinstance(principal, IAMUser) else EntryKind.ROLE
        groups: tuple[str, ...] = ()
        if isinstance(principal, IAMUser):
            granted = set(verdict.granted_by)
            groups = tuple(
                g
                for g in principal.groups
                if g in self._groups and any(p.source in granted for p in self._groups[g].policies)
            )
        return Path(kind, arn, (role.arn,), verdict, groups, unseen)

    def _entries(self, role: IAMRole) -> list[Path]:
        """Trust entries that are not principals of this account."""
        assert role.trust is not None
        tagging = {(e.kind, e.value) for e in trusted_principals(role.trust, (TAG_SESSION,))}
        best: dict[tuple[str, str], Path] = {}
        for entry in trusted_principals(role.trust, (ASSUME_ROLE, *FEDERATED_ACTIONS)):
            verdict = entry.verdict
            if entry.kind == "Federated" and (entry.kind, entry.value) not in tagging:
                unseen = Unseen(
                    f"whether {entry.value} passes session tags"
                    " (the trust policy does not allow sts:TagSession)"
                )
                verdict = _needs(verdict, unseen)
            path = self._entry_path(role, entry.kind, entry.value, verdict)
            if path is None or path.decision is Decision.DENIED:
                continue
            # One way in per principal: the action that lets it in most plainly wins.
            key = (entry.kind, entry.value)
            if key not in best or _RANK[path.decision] < _RANK[best[key].decision]:
                best[key] = path
        return list(best.values())

    def _entry_path(self, role: IAMRole, kind: str, value: str, verdict: Verdict) -> Path | None:
        via = (role.arn,)
        own = self.account.account_id
        if kind == "*" or (kind == "AWS" and value == "*"):
            return Path(EntryKind.ANYONE, "*", via, verdict)
        if kind == "Service":
            return Path(EntryKind.SERVICE, value, via, verdict)
        if kind == "Federated":
            permission_set = sso_permission_set(role.name)
            if permission_set is not None:
                unseen = Unseen(
                    f"who is assigned permission set {permission_set} (IAM Identity Center)"
                )
                return Path(EntryKind.SSO, permission_set, via, _needs(verdict, unseen))
            return Path(
                EntryKind.FEDERATED,
                value,
                via,
                _needs(verdict, Unseen(f"the users of identity provider {value}")),
            )
        if kind != "AWS":
            return None
        root = ACCOUNT_ROOT.fullmatch(value)
        account = root.group(1) if root else value if ACCOUNT_ID.fullmatch(value) else ""
        if account == own:
            # The members are evaluated one by one; this entry records the delegation itself.
            return Path(EntryKind.ACCOUNT, own, via, verdict)
        if account:
            unseen = Unseen(f"principals of account {account} and their identity policies")
            return Path(EntryKind.ACCOUNT, account, via, _needs(verdict, unseen))
        parsed = _IAM_ARN.fullmatch(value)
        if parsed and parsed.group(2) != own:
            kind_of = EntryKind.ROLE if parsed.group(3) == "role" else EntryKind.USER
            unseen = Unseen(f"identity policies in account {parsed.group(2)}")
            return Path(kind_of, value, via, _needs(verdict, unseen))
        return None  # a principal of this account: evaluated as a member


def _needs(verdict: Verdict, unseen: Unseen) -> Verdict:
    return Verdict(
        verdict.allow.and_(Clause.when([unseen])),
        verdict.deny,
        verdict.granted_by,
        verdict.denied_by,
    )


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
