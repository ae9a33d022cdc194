"""Ordered mapping backends -> the Kubernetes user a verified identity becomes.

The chain asks its backends in the configured order (the reference's ``backendMode``); the
**first backend with a matching entry wins**. Within a backend, the precedence of
:mod:`kubeiam.mapping.model` applies (exact user > exact role > SSO permission set > IAM group >
account).

IAM groups (``mapGroups``) need the caller's group memberships, which only an injected
``group_resolver`` (``async (identity) -> frozenset of lower-cased group ARNs``) knows. The chain
asks it only when it could change the answer: the caller is an IAM user, and some backend with
group entries comes before the backend that matched without groups (or the same backend, when it
matched by account only), or nothing matched. A resolver that fails returns no groups, so group
entries do not match (fail closed). Without a resolver, group entries never match, and the chain
logs that once.

Once an entry matched, its templates are rendered and the rendered username is checked against
that backend's reserved prefixes. If either step fails the review is **denied**
(:class:`MappingDeniedError`): the chain does not fall through to later backends, because an entry
that matched but cannot be applied is a configuration problem to surface, not a miss (the
reference behaves the same way).

Mapping runs on every call; nothing here caches results, so a changed ConfigMap or file applies
to the very next review. ``ready`` is true once every backend has loaded its first good version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from kubeiam.arn import PrincipalKind
from kubeiam.errors import MappingDeniedError
from kubeiam.identity import Identity
from kubeiam.mapping.model import EntryKind, MatchResult
from kubeiam.mapping.templates import (
    DEFAULT_RESERVED_PREFIXES,
    EC2Resolver,
    InstanceRoleCheck,
    check_reserved_prefix,
    render_all,
)

#: Reserved prefixes per backend when the configuration says nothing (``reservedPrefixConfig``
#: replaces a backend's entry; an empty list disables the check). The backends an operator fully
#: controls and where node entries live (``system:node:{{EC2PrivateDNSName}}``, Fargate's
#: ``system:node:{{SessionName}}``) reserve nothing, as in the reference; the two that are fed by
#: other systems or delegated through RBAC reserve the usual prefixes. See docs/mapping.md.
DEFAULT_RESERVED_PREFIX_CONFIG: Mapping[str, tuple[str, ...]] = {
    "MountedFile": (),
    "EKSConfigMap": (),
    "DynamicFile": DEFAULT_RESERVED_PREFIXES,
    "CRD": DEFAULT_RESERVED_PREFIXES,
}


log = logging.getLogger("kubeiam.mapping")

#: ``async (identity) -> lower-cased ARNs of the IAM groups the caller is a member of``.
GroupResolver = Callable[[Identity], Awaitable[frozenset[str]]]


@dataclass(frozen=True, slots=True)
class KubeUser:
    """The Kubernetes user a review answers with, and which entry produced it."""

    username: str
    groups: tuple[str, ...]
    #: Name of the backend that matched (MountedFile, EKSConfigMap, CRD, DynamicFile).
    backend: str
    #: The matching entry, described with its location (``mapRoles line 4: rolearn ...``).
    entry: str

    @property
    def matched_by(self) -> str:
        """``<backend> <entry>``, for logs and ``explain``."""
        return f"{self.backend} {self.entry}"


@runtime_checkable
class Backend(Protocol):
    """What the chain needs from a mapping backend."""

    @property
    def name(self) -> str: ...

    @property
    def ready(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    @property
    def has_group_entries(self) -> bool: ...

    def match(
        self, identity: Identity, iam_groups: frozenset[str] = frozenset()
    ) -> MatchResult | None: ...


@dataclass(frozen=True, slots=True)
class BackendVerdict:
    """What one backend says about an identity (for ``explain``)."""

    backend: str
    ready: bool
    match: MatchResult | None


class MappingChain:
    """Backends in order; :meth:`map` gives the first match, rendered and checked."""

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        reserved_prefixes: Mapping[str, Sequence[str]] = DEFAULT_RESERVED_PREFIX_CONFIG,
        ec2_resolver: EC2Resolver | None = None,
        instance_role_check: InstanceRoleCheck | None = None,
        group_resolver: GroupResolver | None = None,
    ) -> None:
        names = [b.name for b in backends]
        if len(set(names)) != len(names):
            raise ValueError(f"backend listed twice: {names}")
        self.backends: tuple[Backend, ...] = tuple(backends)
        #: The defaults, with each backend the configuration names replaced (``()`` disables).
        self._reserved = {**DEFAULT_RESERVED_PREFIX_CONFIG}
        self._reserved.update({name: tuple(p) for name, p in reserved_prefixes.items()})
        self._ec2_resolver = ec2_resolver
        self._instance_role_check = instance_role_check
        self._group_resolver = group_resolver
        self._warned_no_resolver = False

    @property
    def ready(self) -> bool:
        return all(b.ready for b in self.backends)

    def reserved_prefixes(self, backend: str) -> tuple[str, ...]:
        return self._reserved.get(backend, ())

    async def start(self) -> None:
        """Start every backend (each returns once its watcher runs, not once it has loaded)."""
        for backend in self.backends:
            await backend.start()

    async def stop(self) -> None:
        await asyncio.gather(*(b.stop() for b in self.backends), return_exceptions=True)

    def find(
        self, identity: Identity, iam_groups: frozenset[str] = frozenset()
    ) -> tuple[Backend, MatchResult] | None:
        """The first backend with an entry for ``identity``, and that entry (nothing rendered)."""
        for backend in self.backends:
            result = backend.match(identity, iam_groups)
            if result is not None:
                return backend, result
        return None

    def needs_groups(self, identity: Identity, found: tuple[Backend, MatchResult] | None) -> bool:
        """Could the caller's IAM groups change what :meth:`find` answered without them?"""
        if identity.kind is not PrincipalKind.USER:
            return False
        for backend in self.backends:
            if found is not None and backend is found[0]:
                # In the matching backend, only an account entry ranks below group entries.
                return found[1].entry.kind is EntryKind.ACCOUNT and backend.has_group_entries
            if backend.has_group_entries:
                return True
        return False

    async def find_with_groups(self, identity: Identity) -> tuple[Backend, MatchResult] | None:
        """:meth:`find`, asking the group resolver first when the groups could matter."""
        found = self.find(identity)
        if not self.needs_groups(identity, found):
            return found
        if self._group_resolver is None:
            if not self._warned_no_resolver:
                self._warned_no_resolver = True
                log.warning(
                    "mapGroups entries are loaded but IAM group mapping is off "
                    "(server.iamGroupMapping); they match nobody"
                )
            return found
        iam_groups = await self._group_resolver(identity)
        return self.find(identity, iam_groups) if iam_groups else found

    def explain(
        self, identity: Identity, iam_groups: frozenset[str] = frozenset()
    ) -> list[BackendVerdict]:
        """Every backend's own answer, in chain order (the first match is the one used)."""
        return [
            BackendVerdict(b.name, b.ready, b.match(identity, iam_groups)) for b in self.backends
        ]

    async def map(self, identity: Identity) -> KubeUser | None:
        """The Kubernetes user for ``identity``; None when no backend has an entry for it.

        Raises :class:`MappingDeniedError` when the matching entry cannot be applied.
        """
        found = await self.find_with_groups(identity)
        if found is None:
            return None
        backend, result = found
        return await self.apply(backend.name, result, identity)

    async def apply(self, backend: str, result: MatchResult, identity: Identity) -> KubeUser:
        """Render ``result`` for ``identity`` and check the backend's reserved prefixes."""
        if result.templated:
            try:
                username, groups = await render_all(
                    result.username,
                    result.groups,
                    identity,
                    ec2_resolver=self._ec2_resolver,
                    instance_role_check=self._instance_role_check,
                )
            except MappingDeniedError as exc:
                raise MappingDeniedError(
                    f"{backend} {result.describe()}: {exc.message}", hint=exc.hint
                ) from exc
        else:
            username, groups = result.username, result.groups
        if not username:
            raise MappingDeniedError(
                f"{backend} {result.describe()}: the username renders empty for this caller",
                hint="use a template that is set for this kind of caller ({{SessionName}} is "
                "empty for IAM users)",
            )
        check_reserved_prefix(username, self.reserved_prefixes(backend), backend=backend)
        return KubeUser(username, groups, backend, result.describe())
