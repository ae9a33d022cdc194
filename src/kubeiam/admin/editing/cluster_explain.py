"""What an EKS cluster makes of a principal: its access entries and aws-auth, under its mode.

`kubeiam whoami --cluster` and `kubeiam mapping explain --store access-entries` read the
cluster's authentication mode and ask each source EKS reads (:mod:`kubeiam.eks.modes`): the
access entries through the access-entries store, aws-auth through the aws-auth store when the
mode reads it. Each source is explained with :func:`~kubeiam.admin.editing.explain.explain`;
:func:`~kubeiam.eks.modes.decide` says which one EKS uses.

aws-auth is read only when it can matter: in CONFIG_MAP, or in API_AND_CONFIG_MAP (where it
decides when no entry matches, and is shown as overridden when one does). When it cannot be read
(no kubeconfig, refused) and an access entry decided anyway, that is a note; when aws-auth was
the only source that could decide, the error stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubeiam.admin.editing.access_entries_document import entry_policies
from kubeiam.admin.editing.access_entries_store import AccessEntriesStore
from kubeiam.admin.editing.explain import Explanation, explain_store
from kubeiam.admin.editing.store import MappingStore
from kubeiam.eks.modes import Candidate, Decision, Source, decide, reads_access_entries
from kubeiam.eks.modes import reads_aws_auth as mode_reads_aws_auth
from kubeiam.errors import KubeIAMError


@dataclass(frozen=True, slots=True)
class ClusterAnswer:
    """The decision, and each source's own explanation (what matched there, near misses)."""

    decision: Decision
    explanations: tuple[Explanation, ...]


async def explain_in_cluster(
    arn: str,
    entries: AccessEntriesStore,
    aws_auth: Callable[[], MappingStore] | None,
    *,
    session_name: str = "",
    iam_groups: frozenset[str] | None = None,
) -> ClusterAnswer:
    """Explain ``arn`` (a caller or IAM ARN) as the cluster of ``entries`` decides.

    ``aws_auth`` opens the cluster's aws-auth store (None: not reachable from here)."""
    mode = entries.info().mode
    explanations: list[Explanation] = []
    entry_candidate: Candidate | None = None
    if reads_access_entries(mode):
        snapshot = await entries.read()
        mappings = snapshot.document.load().mappings
        found = explain_store(
            entries, mappings, arn, session_name=session_name, iam_groups=iam_groups
        )
        explanations.append(found)
        policies = next(
            (entry_policies(e) for e in mappings.entries if e.describe() == found.entry), ()
        )
        entry_candidate = Candidate(
            Source.ACCESS_ENTRY, found.matched, found.entry, found.username, found.groups, policies
        )
    auth_candidate: Candidate | None = None
    if mode_reads_aws_auth(mode):
        auth_candidate = await _aws_auth_candidate(
            arn,
            aws_auth,
            explanations,
            needed=entry_candidate is None or not entry_candidate.matched,
            session_name=session_name,
            iam_groups=iam_groups,
        )
    return ClusterAnswer(decide(mode, entry_candidate, auth_candidate), tuple(explanations))


async def _aws_auth_candidate(
    arn: str,
    open_aws_auth: Callable[[], MappingStore] | None,
    explanations: list[Explanation],
    *,
    needed: bool,
    session_name: str,
    iam_groups: frozenset[str] | None,
) -> Candidate:
    if open_aws_auth is None:
        return Candidate(
            Source.AWS_AUTH,
            False,
            unreadable="`mapping explain --store access-entries` does not read it; `kubeiam "
            "whoami --cluster` or `kubeiam mapping explain ARN --store aws-auth --context C` does",
        )
    try:
        store = open_aws_auth()
        try:
            snapshot = await store.read()
        finally:
            await store.close()
    except KubeIAMError as exc:
        if needed:
            raise
        return Candidate(Source.AWS_AUTH, False, unreadable=exc.message)
    found = explain_store(
        store,
        snapshot.document.load().mappings,
        arn,
        session_name=session_name,
        iam_groups=iam_groups,
    )
    explanations.append(found)
    return Candidate(Source.AWS_AUTH, found.matched, found.entry, found.username, found.groups)
