"""IAM policy evaluation (pure): may this principal do this action on this resource?

The rules are AWS's, as its IAM User Guide documents them; each rule is one named function here,
with the page it comes from:

* explicit deny wins over any allow; no allow means an implicit deny
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_policy-eval-denyallow.html);
* ``Action``/``NotAction`` match with ``*`` and ``?`` wildcards, case-insensitively
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html,
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html);
* ``Resource``/``NotResource`` match with the same wildcards, case-sensitively
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html,
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notresource.html);
* ``Principal``/``NotPrincipal`` in resource-based policies such as role trust policies
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html);
* within one account a resource-based policy that names the caller's ARN is enough on its own,
  one that names the account (``root`` or the bare id) delegates to the account, whose
  identity-based policies must then allow; role trust policies must always allow
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html);
  across accounts both sides must allow
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html);
* a permissions boundary intersects the identity-based policies; a resource-based policy naming
  an IAM user ARN is not limited by it, one naming a role ARN is
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html).

Conditions are *not* evaluated: nothing here knows the request context (MFA, source IP, tags).
A statement with a ``Condition`` contributes its conditions to the result, so a verdict reads
"allowed if aws:MultiFactorAuthPresent Bool true" and is never silently allowed or denied. What
kubeiam cannot see (another account's identity policies, SCPs) enters a verdict as an
:class:`Unseen` requirement and makes it ``unknown``.

A verdict is a pair of clauses in disjunctive normal form: ``allow`` (any alternative, each a set
of requirements that must all hold) and ``deny`` (the same, for explicit denies). That algebra is
what lets a role chain be evaluated as the conjunction of its hops (:meth:`Verdict.then`).
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kubeiam.errors import KubeIAMError

#: The one policy language version with policy variables (``${aws:username}``); in the older
#: 2008-10-17 a ``${...}`` is literal text.
VERSION_WITH_VARIABLES = "2012-10-17"
#: Account ids in principals: exactly twelve digits.
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
#: ``arn:<partition>:iam::<account>:root``: the whole account as a principal.
ACCOUNT_ROOT = re.compile(r"^arn:[a-z-]+:iam::([0-9]{12}):root$")
#: ``arn:<partition>:sts::<account>:assumed-role/<role>/<session>``.
ASSUMED_ROLE = re.compile(r"^arn:([a-z-]+):sts::([0-9]{12}):assumed-role/([^/]+)/(.+)$")


class PolicyDocumentError(KubeIAMError):
    """A policy document is not a policy AWS would store (IAM validates them on write)."""


class Effect(enum.Enum):
    ALLOW = "Allow"
    DENY = "Deny"


class Decision(enum.Enum):
    """What a verdict says, for people and for ``-o json``."""

    ALLOWED = "allowed"
    DENIED = "denied"
    #: Allowed only if (or unless) conditions kubeiam does not evaluate hold.
    CONDITIONAL = "conditional"
    #: Depends on something kubeiam cannot see from this account.
    UNKNOWN = "unknown"


class PrincipalMatch(enum.IntEnum):
    """How a resource-based statement's principal names the caller (higher is more direct)."""

    NONE = 0
    #: Names the caller's account (``root`` or the bare id): delegation to the account.
    ACCOUNT = 1
    #: Names the caller itself (its ARN, unique id, or ``*``: every principal).
    DIRECT = 2


@dataclass(frozen=True, slots=True, order=True)
class Condition:
    """One condition key test of a statement, e.g. ``Bool aws:MultiFactorAuthPresent true``."""

    operator: str
    key: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.key} {self.operator} {', '.join(self.values)}"


@dataclass(frozen=True, slots=True, order=True)
class Unseen:
    """Something the outcome depends on that cannot be read from this account."""

    what: str

    def __str__(self) -> str:
        return f"unknown: {self.what}"


Requirement = Condition | Unseen
Alternative = frozenset[Requirement]


@dataclass(frozen=True, slots=True)
class Clause:
    """Any of ``alternatives`` holds; an alternative holds when all its requirements hold."""

    alternatives: frozenset[Alternative] = frozenset()

    @staticmethod
    def never() -> Clause:
        return _NEVER

    @staticmethod
    def always() -> Clause:
        return _ALWAYS

    @staticmethod
    def when(requirements: Iterable[Requirement]) -> Clause:
        return Clause(frozenset({frozenset(requirements)}))

    @property
    def is_always(self) -> bool:
        return frozenset() in self.alternatives

    @property
    def is_never(self) -> bool:
        return not self.alternatives

    def or_(self, other: Clause) -> Clause:
        if other.is_never or self.is_always:
            return self
        if self.is_never or other.is_always:
            return other
        return _absorb(self.alternatives | other.alternatives)

    def and_(self, other: Clause) -> Clause:
        if self.is_never or other.is_always:
            return self
        if other.is_never or self.is_always:
            return other
        return _absorb(frozenset(a | b for a in self.alternatives for b in other.alternatives))

    def describe(self) -> list[str]:
        """Each alternative as one line, requirements joined by ``and``; sorted, stable."""
        return sorted(" and ".join(str(r) for r in sorted(a, key=str)) for a in self.alternatives)


def _absorb(alternatives: frozenset[Alternative]) -> Clause:
    """Drop alternatives implied by a smaller one (``A or (A and B)`` is ``A``)."""
    kept = frozenset(a for a in alternatives if not any(b < a for b in alternatives))
    return Clause(kept)


_NEVER = Clause()
_ALWAYS = Clause(frozenset({frozenset()}))


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a policy, normalised (single strings become tuples)."""

    effect: Effect
    sid: str
    #: ``Action`` patterns, or ``NotAction`` ones when ``not_action``.
    actions: tuple[str, ...]
    not_action: bool
    #: ``Resource`` patterns (``NotResource`` when ``not_resource``); None when neither is
    #: present, as in trust policies, where the resource is the role the policy is attached to.
    resources: tuple[str, ...] | None
    not_resource: bool
    #: ``(type, value)`` pairs of ``Principal`` (``NotPrincipal`` when ``not_principal``); None
    #: when absent (identity-based policies). ``"*"`` alone is ``(("*", "*"),)``.
    principals: tuple[tuple[str, str], ...] | None
    not_principal: bool
    conditions: tuple[Condition, ...]
    #: Whether ``${...}`` in patterns are policy variables (Version 2012-10-17).
    variables: bool


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed policy document and where it came from (shown when it grants or denies)."""

    source: str
    statements: tuple[Statement, ...]


def parse_policy(document: Mapping[str, object] | str, *, source: str) -> Policy:
    """Parse a policy document (a dict, or JSON text as IAM stores it) into a :class:`Policy`.

    Raises :class:`PolicyDocumentError` naming ``source`` for anything IAM would refuse.
    """
    if isinstance(document, str):
        try:
            loaded = json.loads(document)
        except json.JSONDecodeError as exc:
            raise PolicyDocumentError(f"{source}: policy is not JSON ({exc.msg})") from None
        document = loaded
    if not isinstance(document, Mapping):
        raise PolicyDocumentError(f"{source}: policy is not a JSON object")
    variables = document.get("Version") == VERSION_WITH_VARIABLES
    raw = document.get("Statement")
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise PolicyDocumentError(f"{source}: policy has no Statement list")
    statements = tuple(_parse_statement(s, source, i, variables) for i, s in enumerate(raw))
    return Policy(source, statements)


def _parse_statement(raw: object, source: str, index: int, variables: bool) -> Statement:
    where = f"{source}: statement {index + 1}"
    if not isinstance(raw, Mapping):
        raise PolicyDocumentError(f"{where} is not a JSON object")
    try:
        effect = Effect(raw.get("Effect"))
    except ValueError:
        raise PolicyDocumentError(f"{where}: Effect must be Allow or Deny") from None
    actions, not_action = _either(raw, "Action", "NotAction", where, required=True)
    resources, not_resource = _either(raw, "Resource", "NotResource", where, required=False)
    principals, not_principal = _parse_principals(raw, where)
    sid = raw.get("Sid", "")
    return Statement(
        effect=effect,
        sid=sid if isinstance(sid, str) else "",
        actions=actions or (),
        not_action=not_action,
        resources=resources,
        not_resource=not_resource,
        principals=principals,
        not_principal=not_principal,
        conditions=_parse_conditions(raw.get("Condition"), where),
        variables=variables,
    )


def _strings(value: object, where: str, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise PolicyDocumentError(f"{where}: {name} must be a string or a non-empty list of strings")


def _either(
    raw: Mapping[str, object], name: str, not_name: str, where: str, *, required: bool
) -> tuple[tuple[str, ...] | None, bool]:
    """The element ``name`` or its negation ``not_name``: exactly one may be present."""
    if name in raw and not_name in raw:
        raise PolicyDocumentError(f"{where} has both {name} and {not_name}")
    if name in raw:
        return _strings(raw[name], where, name), False
    if not_name in raw:
        return _strings(raw[not_name], where, not_name), True
    if required:
        raise PolicyDocumentError(f"{where} has neither {name} nor {not_name}")
    return None, False


def _parse_principals(
    raw: Mapping[str, object], where: str
) -> tuple[tuple[tuple[str, str], ...] | None, bool]:
    if "Principal" in raw and "NotPrincipal" in raw:
        raise PolicyDocumentError(f"{where} has both Principal and NotPrincipal")
    name = "Principal" if "Principal" in raw else "NotPrincipal" if "NotPrincipal" in raw else ""
    if not name:
        return None, False
    value = raw[name]
    if value == "*":
        return (("*", "*"),), name == "NotPrincipal"
    if not isinstance(value, Mapping) or not value:
        raise PolicyDocumentError(
            f'{where}: {name} must be "*" or an object such as {{"AWS": ...}}'
        )
    pairs = tuple(
        (str(kind), v) for kind, values in value.items() for v in _strings(values, where, name)
    )
    return pairs, name == "NotPrincipal"


def _parse_conditions(raw: object, where: str) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise PolicyDocumentError(f"{where}: Condition must be an object")
    out: list[Condition] = []
    for operator, tests in raw.items():
        if not isinstance(tests, Mapping):
            raise PolicyDocumentError(f"{where}: Condition {operator} must be an object")
        for key, values in tests.items():
            listed = values if isinstance(values, list) else [values]
            out.append(Condition(str(operator), str(key), tuple(_text(v) for v in listed)))
    return tuple(sorted(out))


def _text(value: object) -> str:
    """A condition value as written: JSON booleans stay ``true``/``false``."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


# --- matching -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """``*`` matches any run of characters, ``?`` any one character; nothing else is special."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    """Action names are case-insensitive (``sts:assumerole`` is ``sts:AssumeRole``)."""
    return _wildcard(pattern, True).fullmatch(action) is not None


def resource_matches(pattern: str, resource: str) -> bool:
    """Resource ARNs are matched case-sensitively, with the same wildcards."""
    return _wildcard(pattern, False).fullmatch(resource) is not None


def _matches_actions(statement: Statement, action: str) -> bool:
    hit = any(action_matches(p, action) for p in statement.actions)
    return hit != statement.not_action


def _resource_clause(statement: Statement, resource: str) -> Clause:
    """Whether the statement covers ``resource``; a pattern with a policy variable cannot be
    decided without the request context, so it becomes a requirement naming the pattern."""
    if statement.resources is None:
        return Clause.always()
    literal = any(
        resource_matches(p, resource)
        for p in statement.resources
        if not (statement.variables and "${" in p)
    )
    variable = tuple(p for p in statement.resources if statement.variables and "${" in p)
    if not statement.not_resource:
        clause = Clause.always() if literal else Clause.never()
        for p in variable:
            clause = clause.or_(Clause.when([Condition("PolicyVariable", "Resource", (p,))]))
        return clause
    if literal:
        return Clause.never()
    return Clause.when([Condition("PolicyVariableNot", "Resource", (p,)) for p in variable])


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal making a request, as a resource-based policy's ``Principal`` sees it."""

    arn: str
    account: str
    #: IAM unique id (``AIDA...``/``AROA...``): trust policies show it for deleted principals.
    unique_id: str = ""


def principal_match(statement: Statement, caller: Caller) -> PrincipalMatch:
    """How ``statement``'s Principal (or NotPrincipal) names ``caller``."""
    if statement.principals is None:
        return PrincipalMatch.NONE
    best = PrincipalMatch.NONE
    for kind, value in statement.principals:
        best = max(best, _one_principal(kind, value, caller))
    if statement.not_principal:
        # NotPrincipal applies to every principal it does not list.
        return PrincipalMatch.NONE if best else PrincipalMatch.DIRECT
    return best


def _one_principal(kind: str, value: str, caller: Caller) -> PrincipalMatch:
    if kind == "*" or (kind == "AWS" and value == "*"):
        return PrincipalMatch.DIRECT
    if kind != "AWS":
        return PrincipalMatch.NONE  # Service, Federated, CanonicalUser never name an IAM caller
    if value == caller.arn or (caller.unique_id and value == caller.unique_id):
        return PrincipalMatch.DIRECT
    root = ACCOUNT_ROOT.fullmatch(value)
    if (root and root.group(1) == caller.account) or value == caller.account:
        return PrincipalMatch.ACCOUNT
    return PrincipalMatch.NONE


@dataclass(frozen=True, slots=True)
class PolicyMatch:
    """What one set of policies says about one request."""

    #: Allows that name the caller directly (all allows, for identity-based policies).
    allow: Clause = _NEVER
    #: Allows of a resource-based policy that name only the caller's account.
    allow_account: Clause = _NEVER
    deny: Clause = _NEVER
    granted_by: tuple[str, ...] = ()
    denied_by: tuple[str, ...] = ()


def match_policies(
    policies: Sequence[Policy], action: str, resource: str, caller: Caller | None = None
) -> PolicyMatch:
    """Match ``policies`` against a request; ``caller`` only for resource-based policies."""
    allow, allow_account, deny = _NEVER, _NEVER, _NEVER
    granted: list[str] = []
    denied: list[str] = []
    for policy in policies:
        for statement in policy.statements:
            if not _matches_actions(statement, action):
                continue
            clause = _resource_clause(statement, resource)
            if clause.is_never:
                continue
            level = PrincipalMatch.DIRECT
            if caller is not None:
                level = principal_match(statement, caller)
                if level is PrincipalMatch.NONE:
                    continue
            clause = clause.and_(Clause.when(statement.conditions))
            if statement.effect is Effect.DENY:
                deny = deny.or_(clause)
                denied.append(policy.source)
                continue
            if caller is not None and statement.not_principal:
                # AWS documents NotPrincipal with Deny only; an Allow with it is not guessed.
                clause = clause.and_(Clause.when([Unseen("Allow with NotPrincipal")]))
            if level is PrincipalMatch.ACCOUNT:
                allow_account = allow_account.or_(clause)
            else:
                allow = allow.or_(clause)
            granted.append(policy.source)
    return PolicyMatch(allow, allow_account, deny, _unique(granted), _unique(denied))


def narrow(policy: Policy, actions: Sequence[str]) -> Policy:
    """``policy`` with only the statements that can apply to one of ``actions``: the same
    verdicts for those actions, cheaper to evaluate many times."""
    kept = tuple(s for s in policy.statements if any(_matches_actions(s, a) for a in actions))
    return policy if len(kept) == len(policy.statements) else Policy(policy.source, kept)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# --- verdicts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a request, with what it depends on."""

    allow: Clause
    deny: Clause = _NEVER
    granted_by: tuple[str, ...] = ()
    denied_by: tuple[str, ...] = ()

    @property
    def decision(self) -> Decision:
        return decide(self.allow, self.deny)

    def then(self, other: Verdict) -> Verdict:
        """Both requests must succeed (a role chain's hops): allows meet, denies add up."""
        return Verdict(
            self.allow.and_(other.allow),
            self.deny.or_(other.deny),
            _unique(self.granted_by + other.granted_by),
            _unique(self.denied_by + other.denied_by),
        )

    def describe(self) -> str:
        """One line for people: ``allowed if X``, ``allowed unless Y``, ``unknown: Z``."""
        decision = self.decision
        if decision in (Decision.ALLOWED, Decision.DENIED):
            return str(decision.value)
        parts = []
        if not self.allow.is_always:
            parts.append(
                "if " + " or ".join(f"({a})" if " and " in a else a for a in self.allow.describe())
            )
        if not self.deny.is_never:
            parts.append("unless " + " or ".join(self.deny.describe()))
        return f"{decision.value}: allowed " + " ".join(parts)

    @property
    def conditions(self) -> tuple[str, ...]:
        """Every requirement the verdict depends on, as text (for ``-o json``)."""
        allows = [] if self.allow.is_always else [f"if {a}" for a in self.allow.describe()]
        return tuple(allows + [f"unless {d}" for d in self.deny.describe()])


DENIED = Verdict(_NEVER)


def decide(allow: Clause, deny: Clause) -> Decision:
    """Explicit deny wins; no allow is an implicit deny; the rest depends on requirements."""
    if deny.is_always or allow.is_never:
        return Decision.DENIED
    if allow.is_always and deny.is_never:
        return Decision.ALLOWED
    if all(any(isinstance(r, Unseen) for r in a) for a in allow.alternatives):
        return Decision.UNKNOWN
    return Decision.CONDITIONAL


class PrincipalType(enum.Enum):
    USER = "user"
    ROLE = "role"


@dataclass(frozen=True, slots=True)
class Subject:
    """Who makes the request, with the policies that govern it in its own account."""

    caller: Caller
    kind: PrincipalType
    #: Identity-based policies: the principal's own, and for a user, its groups'.
    identity_policies: tuple[Policy, ...] = ()
    boundary: Policy | None = None
    #: False for principals of another account: their policies cannot be read from here.
    visible: bool = True


@dataclass(frozen=True, slots=True)
class Request:
    action: str
    resource: str
    resource_account: str
    #: The resource's own policy (a role trust policy), if it has one.
    resource_policy: Policy | None = None
    #: Role trust policies and KMS key policies must allow the caller themselves.
    resource_policy_required: bool = False
    #: Extra requirements of the request itself (e.g. ``sts:TagSession`` when tags are passed).
    requirements: tuple[Requirement, ...] = field(default=())


def evaluate(request: Request, subject: Subject) -> Verdict:
    """The verdict on ``subject`` making ``request``, by the rules in the module docstring."""
    caller = subject.caller
    identity = _identity_match(request, subject)
    boundary = _boundary_match(request, subject)
    resource = (
        match_policies((request.resource_policy,), request.action, request.resource, caller)
        if request.resource_policy is not None
        else PolicyMatch()
    )
    deny = identity.deny.or_(boundary.deny).or_(resource.deny)
    allow = (
        _same_account_allow(request, subject, identity, boundary, resource)
        if caller.account == request.resource_account
        else _cross_account_allow(identity, boundary, resource)
    )
    if request.requirements:
        allow = allow.and_(Clause.when(request.requirements))
    granted = resource.granted_by + identity.granted_by if not allow.is_never else ()
    denied = identity.denied_by + boundary.denied_by + resource.denied_by
    return Verdict(allow, deny, _unique(granted), _unique(denied))


def _identity_match(request: Request, subject: Subject) -> PolicyMatch:
    """Identity-based policies; for another account's principal, an unseen requirement."""
    if not subject.visible:
        unseen = Unseen(f"identity policies in account {subject.caller.account}")
        return PolicyMatch(allow=Clause.when([unseen]))
    return match_policies(subject.identity_policies, request.action, request.resource)


def _boundary_match(request: Request, subject: Subject) -> PolicyMatch:
    """The permissions boundary; without one, nothing is limited."""
    if subject.boundary is None or not subject.visible:
        return PolicyMatch(allow=Clause.always())
    return match_policies((subject.boundary,), request.action, request.resource)


def _same_account_allow(
    request: Request,
    subject: Subject,
    identity: PolicyMatch,
    boundary: PolicyMatch,
    resource: PolicyMatch,
) -> Clause:
    """Same account: a resource policy naming the caller suffices (a role ARN still within its
    boundary); otherwise the identity policies (within the boundary) must allow, and for role
    trust policies the trust policy must allow the caller or its account as well."""
    direct = resource.allow
    if subject.kind is PrincipalType.ROLE:
        direct = direct.and_(boundary.allow)
    via_identity = identity.allow.and_(boundary.allow)
    if request.resource_policy_required:
        via_identity = via_identity.and_(resource.allow.or_(resource.allow_account))
    return direct.or_(via_identity)


def _cross_account_allow(
    identity: PolicyMatch, boundary: PolicyMatch, resource: PolicyMatch
) -> Clause:
    """Across accounts the resource policy (naming the caller or its account) and the caller's
    identity policies (within its boundary) must both allow."""
    trusted = resource.allow.or_(resource.allow_account)
    return trusted.and_(identity.allow).and_(boundary.allow)


@dataclass(frozen=True, slots=True)
class TrustEntry:
    """One principal a resource-based policy lets in for an action, as written (``Service``,
    ``Federated``, ``AWS`` account or ARN, ``*``), with the statement's conditions and any deny
    that names it too."""

    kind: str
    value: str
    action: str
    verdict: Verdict


def trusted_principals(policy: Policy, actions: Sequence[str]) -> tuple[TrustEntry, ...]:
    """Every principal that an Allow statement of ``policy`` names for one of ``actions``.

    Used for the entries that are not IAM principals of this account (services, identity
    providers, other accounts, everyone), which cannot be evaluated as a :class:`Subject`.
    """
    entries: dict[tuple[str, str, str], Verdict] = {}
    for action in actions:
        for statement in policy.statements:
            if statement.effect is not Effect.ALLOW or statement.not_principal:
                continue
            if statement.principals is None or not _matches_actions(statement, action):
                continue
            clause = Clause.when(statement.conditions)
            for kind, value in statement.principals:
                key = (kind, value, action)
                deny = _denies_named(policy, kind, value, action)
                old = entries.get(key)
                entries[key] = Verdict(
                    clause if old is None else old.allow.or_(clause),
                    deny,
                    (policy.source,),
                    (policy.source,) if not deny.is_never else (),
                )
    return tuple(TrustEntry(k, v, a, verdict) for (k, v, a), verdict in entries.items())


def _denies_named(policy: Policy, kind: str, value: str, action: str) -> Clause:
    """Deny statements of ``policy`` that name exactly this principal, or everyone."""
    deny = Clause.never()
    for statement in policy.statements:
        if statement.effect is not Effect.DENY or statement.principals is None:
            continue
        if statement.not_principal or not _matches_actions(statement, action):
            continue
        named = any(
            (k, v) == (kind, value) or k == "*" or (k == "AWS" and v == "*")
            for k, v in statement.principals
        )
        if named:
            deny = deny.or_(Clause.when(statement.conditions))
    return deny
