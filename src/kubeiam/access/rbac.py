"""Kubernetes RBAC rights of a user and its groups, and who can do what (pure).

Input is what the Kubernetes API returns for ClusterRoles, Roles, ClusterRoleBindings and
RoleBindings, as plain dicts. Matching follows the RBAC authorizer as documented in
https://kubernetes.io/docs/reference/access-authn-authz/rbac/:

* a rule matches when its verbs, apiGroups and resources each contain the request's value or
  ``*``; ``resources`` may name a subresource (``pods/exec``) or any resource's subresource
  (``*/scale``); a rule with ``resourceNames`` only matches requests for one of those names
  (never list/watch/create without a name);
* a ClusterRoleBinding grants its role in every namespace and on cluster-scoped resources; a
  RoleBinding grants its Role, or a ClusterRole's rules, in its own namespace only;
* a ClusterRole with an ``aggregationRule`` holds the rules of every ClusterRole whose labels
  match one of its selectors (what the controller-manager's aggregation controller writes into
  it; computed here too, so a cluster without that controller, or a report read mid-update,
  still shows ``view``/``edit``/``admin`` as they will be);
* ``nonResourceURLs`` are granted only by ClusterRoleBindings; a trailing ``*`` is a prefix;
* the group ``system:masters`` is not subject to RBAC at all (the API server's privileged group):
  it is unrestricted, whatever the bindings say;
* every authenticated request carries the group ``system:authenticated``
  (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#users-in-kubernetes).

Rights are summarised the way people speak of them: cluster-admin, namespace admin/edit/view
(the default user-facing ClusterRoles), and custom roles by verbs and resources.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: The API server's privileged group: requests from it skip authorization.
MASTERS_GROUP = "system:masters"
#: Added to every authenticated user's groups by the API server.
AUTHENTICATED_GROUP = "system:authenticated"
#: The user-facing default ClusterRoles, most powerful first.
DEFAULT_ROLES = ("cluster-admin", "admin", "edit", "view")


class Level(enum.Enum):
    """How a grant is summarised."""

    UNRESTRICTED = "unrestricted"
    CLUSTER_ADMIN = "cluster-admin"
    ADMIN = "admin"
    EDIT = "edit"
    VIEW = "view"
    CUSTOM = "custom"
    #: The binding's role does not exist: it grants nothing (yet).
    MISSING_ROLE = "missing-role"


@dataclass(frozen=True, slots=True)
class Rule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ("",)
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @property
    def is_everything(self) -> bool:
        """``*`` verbs on ``*`` resources of ``*`` API groups: what cluster-admin holds."""
        return (
            "*" in self.verbs
            and "*" in self.api_groups
            and "*" in self.resources
            and not self.resource_names
        )


@dataclass(frozen=True, slots=True)
class Grant:
    """One binding giving one role to one subject."""

    binding: str
    role: str
    #: None for a ClusterRoleBinding: every namespace and the cluster-scoped resources.
    namespace: str | None
    subject_kind: str
    subject: str
    rules: tuple[Rule, ...]
    level: Level

    def describe(self) -> str:
        where = "cluster-wide" if self.namespace is None else f"in namespace {self.namespace}"
        if self.level is Level.MISSING_ROLE:
            return f"{self.role} (does not exist) {where}, via {self.binding}"
        if self.level is Level.CUSTOM:
            return f"{self.role}: {summarise_rules(self.rules)} {where}, via {self.binding}"
        return f"{self.level.value} {where}, via {self.binding}"


#: Shown instead of the API server's own grants to every authenticated user when a principal
#: has nothing else (listing them on every line hides what differs between principals).
BASELINE_SUMMARY = "nothing beyond what every authenticated user has (discovery, self reviews)"


def is_baseline(grant: Grant) -> bool:
    """One of the API server's bootstrap bindings (``system:`` names) to every authenticated
    user: system:basic-user, system:discovery, system:public-info-viewer. A binding someone
    made to system:authenticated is not baseline, and is always shown."""
    return (
        grant.subject_kind == "Group"
        and grant.subject == AUTHENTICATED_GROUP
        and grant.binding.startswith("ClusterRoleBinding/system:")
        and not any(r.is_everything for r in grant.rules)
    )


@dataclass(frozen=True, slots=True)
class Request:
    """What ``can`` is asked: ``verb`` on ``resource`` (``pods``, ``deployments.apps``,
    ``pods/exec``) in ``namespace`` (None: cluster-scoped or all namespaces)."""

    verb: str
    resource: str
    namespace: str | None = None
    name: str = ""

    @property
    def parts(self) -> tuple[str, str, str]:
        """(resource, subresource, API group) of ``resource``."""
        combined, _, sub = self.resource.partition("/")
        resource, _, group = combined.partition(".")
        return resource, sub, group


@dataclass(frozen=True, slots=True)
class Rights:
    """What a user with these groups may do."""

    username: str
    groups: tuple[str, ...]
    unrestricted: bool
    grants: tuple[Grant, ...]

    @property
    def cluster_admin(self) -> bool:
        """Unrestricted, or everything on everything cluster-wide (whatever the role is called)."""
        return self.unrestricted or any(
            g.namespace is None and any(r.is_everything for r in g.rules) for g in self.grants
        )

    def can(self, verb: str, resource: str, namespace: str | None = None, name: str = "") -> bool:
        request = Request(verb, resource, namespace, name)
        return self.unrestricted or any(grant_allows(g, request) for g in self.grants)

    def summary(self) -> tuple[str, ...]:
        if self.unrestricted:
            return (f"unrestricted ({MASTERS_GROUP}: not subject to RBAC)",)
        if self.cluster_admin:
            admin = [
                g
                for g in self.grants
                if g.namespace is None and any(r.is_everything for r in g.rules)
            ]
            return (f"cluster-admin, via {admin[0].binding}",)
        own = [g for g in self.grants if not is_baseline(g)]
        if not own and self.grants:
            return (BASELINE_SUMMARY,)
        return tuple(g.describe() for g in own)


@dataclass(frozen=True, slots=True)
class WhoCan:
    """A subject that may do a request, and the grant that lets it (None for system:masters)."""

    subject_kind: str
    subject: str
    grant: Grant | None


class RBAC:
    """The cluster's RBAC objects, indexed for rights and who-can questions."""

    def __init__(
        self,
        cluster_roles: Iterable[Mapping[str, object]] = (),
        roles: Iterable[Mapping[str, object]] = (),
        cluster_role_bindings: Iterable[Mapping[str, object]] = (),
        role_bindings: Iterable[Mapping[str, object]] = (),
    ) -> None:
        self._cluster_roles = aggregate(list(cluster_roles))
        self._roles = {(_namespace(r), _name(r)): _rules(r) for r in roles}
        self.grants: tuple[Grant, ...] = tuple(
            grant
            for binding, namespaced in (
                *((b, False) for b in cluster_role_bindings),
                *((b, True) for b in role_bindings),
            )
            for grant in self._grants(binding, namespaced)
        )

    def _grants(self, binding: Mapping[str, object], namespaced: bool) -> list[Grant]:
        ref = binding.get("roleRef")
        if not isinstance(ref, Mapping):
            return []
        kind, role_name = str(ref.get("kind", "")), str(ref.get("name", ""))
        namespace = _namespace(binding) if namespaced else None
        if kind == "ClusterRole":
            found = self._cluster_roles.get(role_name)
            role = f"ClusterRole/{role_name}"
        elif kind == "Role" and namespace is not None:
            found = self._roles.get((namespace, role_name))
            role = f"Role {namespace}/{role_name}"
        else:
            return []
        label = (
            f"RoleBinding {namespace}/{_name(binding)}"
            if namespaced
            else f"ClusterRoleBinding/{_name(binding)}"
        )
        rules = found if found is not None else ()
        level = _level(kind, role_name, rules, namespace, found is None)
        out = []
        for subject in _subjects(binding):
            out.append(Grant(label, role, namespace, subject[0], subject[1], rules, level))
        return out

    def rights(self, username: str, groups: Sequence[str], *, authenticated: bool = True) -> Rights:
        """The grants that reach ``username`` or one of ``groups`` (plus system:authenticated)."""
        all_groups = tuple(
            dict.fromkeys([*groups, *([AUTHENTICATED_GROUP] if authenticated else [])])
        )
        mine = tuple(
            g
            for g in self.grants
            if (g.subject_kind == "User" and g.subject == username)
            or (g.subject_kind == "Group" and g.subject in all_groups)
        )
        return Rights(username, all_groups, MASTERS_GROUP in all_groups, mine)

    def who_can(
        self, verb: str, resource: str, namespace: str | None = None, name: str = ""
    ) -> tuple[WhoCan, ...]:
        """Every user and group a binding lets do the request; ``system:masters`` always."""
        request = Request(verb, resource, namespace, name)
        found = [WhoCan("Group", MASTERS_GROUP, None)]
        found += [
            WhoCan(g.subject_kind, g.subject, g) for g in self.grants if grant_allows(g, request)
        ]
        return tuple(found)

    def bound_groups(self) -> frozenset[str]:
        """Groups some binding names (dead mapping groups are the ones not in here)."""
        return frozenset(g.subject for g in self.grants if g.subject_kind == "Group")


def grant_allows(grant: Grant, request: Request) -> bool:
    """Whether ``grant`` covers ``request``: the namespace first, then any rule."""
    if grant.namespace is not None and grant.namespace != request.namespace:
        return False  # a RoleBinding never reaches other namespaces or cluster-scoped objects
    resource, sub, group = request.parts
    return any(
        rule_allows(r, request.verb, group, resource, sub, request.name) for r in grant.rules
    )


def rule_allows(rule: Rule, verb: str, group: str, resource: str, sub: str, name: str = "") -> bool:
    """The RBAC authorizer's rule match for a resource request."""
    if not (_has(rule.verbs, verb) and _has(rule.api_groups, group) and rule.resources):
        return False
    combined = f"{resource}/{sub}" if sub else resource
    resource_hit = any(r in ("*", combined) or (sub and r == f"*/{sub}") for r in rule.resources)
    if not resource_hit:
        return False
    return not rule.resource_names or name in rule.resource_names


def url_allows(rule: Rule, verb: str, path: str) -> bool:
    """A ``nonResourceURLs`` rule: exact path, or a prefix ending in ``*``."""
    if not _has(rule.verbs, verb):
        return False
    return any(
        u == path or (u.endswith("*") and path.startswith(u[:-1])) for u in rule.non_resource_urls
    )


def summarise_rules(rules: Sequence[Rule]) -> str:
    """``get, list, watch pods, services; * deployments.apps`` (verbs grouped by resources)."""
    parts = []
    for rule in rules:
        if rule.non_resource_urls:
            parts.append(f"{', '.join(rule.verbs)} {', '.join(rule.non_resource_urls)}")
            continue
        resources = dict.fromkeys(
            r if g == "" else "*" if r == g == "*" else f"{r}.{g}"
            for g in rule.api_groups or ("",)
            for r in rule.resources
        )
        named = f" named {', '.join(rule.resource_names)}" if rule.resource_names else ""
        parts.append(f"{', '.join(rule.verbs)} {', '.join(resources)}{named}")
    return "; ".join(parts) if parts else "nothing"


def _level(
    kind: str, name: str, rules: Sequence[Rule], namespace: str | None, missing: bool
) -> Level:
    if missing:
        return Level.MISSING_ROLE
    if any(r.is_everything for r in rules):
        return Level.CLUSTER_ADMIN if namespace is None else Level.ADMIN
    if kind == "ClusterRole" and name in DEFAULT_ROLES:
        return Level(name)
    return Level.CUSTOM


def aggregate(cluster_roles: Sequence[Mapping[str, object]]) -> dict[str, tuple[Rule, ...]]:
    """ClusterRole name -> its rules, aggregated ClusterRoles holding their sources' rules too
    (aggregation chains, e.g. admin <- edit <- view's sources, are followed to a fixed point)."""
    rules = {_name(r): _rules(r) for r in cluster_roles}
    labels = {_name(r): _labels(r) for r in cluster_roles}
    selectors = {_name(r): _selectors(r) for r in cluster_roles}
    aggregated = {name: sel for name, sel in selectors.items() if sel}
    # Each pass can only add rules; the number of roles bounds the chain length.
    for _ in range(len(aggregated)):
        changed = False
        for name, sels in aggregated.items():
            merged = list(rules[name])
            for other, other_labels in labels.items():
                if other != name and any(_selects(sel, other_labels) for sel in sels):
                    merged += [rule for rule in rules[other] if rule not in merged]
            if len(merged) != len(rules[name]):
                rules[name] = tuple(merged)
                changed = True
        if not changed:
            break
    return rules


def _labels(obj: Mapping[str, object]) -> Mapping[str, str]:
    meta = obj.get("metadata")
    raw = meta.get("labels") if isinstance(meta, Mapping) else None
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def _selectors(role: Mapping[str, object]) -> list[Mapping[str, object]]:
    rule = role.get("aggregationRule")
    raw = rule.get("clusterRoleSelectors") if isinstance(rule, Mapping) else None
    return [s for s in raw if isinstance(s, Mapping)] if isinstance(raw, list) else []


def _selects(selector: Mapping[str, object], labels: Mapping[str, str]) -> bool:
    """A label selector: matchLabels all equal, matchExpressions (In, NotIn, Exists,
    DoesNotExist) all hold; an empty selector selects nothing here (the controller treats
    an aggregation rule without selectors as none)."""
    match = selector.get("matchLabels")
    expressions = selector.get("matchExpressions")
    match = match if isinstance(match, Mapping) else {}
    expressions = expressions if isinstance(expressions, list) else []
    if not match and not expressions:
        return False
    if any(labels.get(str(k)) != str(v) for k, v in match.items()):
        return False
    for expr in expressions:
        if not isinstance(expr, Mapping):
            return False
        key, op = str(expr.get("key", "")), str(expr.get("operator", ""))
        values = expr.get("values")
        wanted = {str(v) for v in values} if isinstance(values, list) else set()
        if op == "In" and labels.get(key) not in wanted:
            return False
        if op == "NotIn" and key in labels and labels[key] in wanted:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def _has(values: Sequence[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def _name(obj: Mapping[str, object]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, Mapping) else ""


def _namespace(obj: Mapping[str, object]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("namespace", "")) if isinstance(meta, Mapping) else ""


def _strings(raw: Mapping[str, object], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _rules(role: Mapping[str, object]) -> tuple[Rule, ...]:
    raw = role.get("rules")
    if not isinstance(raw, list):
        return ()
    return tuple(
        Rule(
            verbs=_strings(r, "verbs"),
            api_groups=_strings(r, "apiGroups"),
            resources=_strings(r, "resources"),
            resource_names=_strings(r, "resourceNames"),
            non_resource_urls=_strings(r, "nonResourceURLs"),
        )
        for r in raw
        if isinstance(r, Mapping)
    )


def _subjects(binding: Mapping[str, object]) -> list[tuple[str, str]]:
    """(kind, name) of each subject; a ServiceAccount becomes its user name."""
    raw = binding.get("subjects")
    out: list[tuple[str, str]] = []
    for s in raw if isinstance(raw, list) else []:
        if not isinstance(s, Mapping):
            continue
        kind, name = str(s.get("kind", "")), str(s.get("name", ""))
        if kind == "ServiceAccount":
            namespace = str(s.get("namespace", "")) or _namespace(binding)
            out.append(("User", f"system:serviceaccount:{namespace}:{name}"))
        elif kind in ("User", "Group"):
            out.append((kind, name))
    return out
