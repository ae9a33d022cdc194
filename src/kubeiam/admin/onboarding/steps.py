"""The steps seed 1 (:mod:`kubeiam.admin.onboarding.users`) and seed 2
(:mod:`kubeiam.admin.onboarding.access_roles`) both take: put an inline policy on a user or a
group, map an ARN, remove that mapping."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kubeiam.admin.editing.writer import MappingChange, MappingWriter
from kubeiam.admin.onboarding.iam_api import IAMApi, policy_equal
from kubeiam.admin.onboarding.rollback import Rollback, Steps
from kubeiam.errors import NotFoundError
from kubeiam.suggestions import closest_names, not_found_message

#: The hint of every "not found" a removal raises.
NOT_FOUND_HINT = "check the name; pass --ignore-not-found if it may already be gone"


def mapping_note(arn_key: str, arn: str, username: str, groups: Sequence[str]) -> str:
    """What to add by hand when no mapping target was given."""
    entry = {arn_key: arn, "username": username, "groups": list(groups)}
    return (
        "no mapping target was given (--file F, or --store aws-auth|crd): add this entry to "
        "the cluster's mapping: " + json.dumps(entry)
    )


@dataclass(frozen=True, slots=True)
class RemovalResult:
    """What a roll-forward removal (`offboard-user`, `delete-access-role`) removed, and its notes.
    Each removal names its subject under its own JSON key (:attr:`NAME_KEY`)."""

    NAME_KEY: ClassVar[str] = "name"

    name: str
    removed: tuple[str, ...]
    notes: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {self.NAME_KEY: self.name, "removed": list(self.removed), "notes": list(self.notes)}


class PolicyHolder(enum.Enum):
    """What an inline policy is put on; the value is the IAM API's word for it."""

    USER = "user"
    GROUP = "group"

    def label(self, name: str) -> str:
        """How the holder is named in progress lines (a user by its name alone)."""
        return name if self is PolicyHolder.USER else f"group {name}"


class IAMSteps(Steps):
    """Base of the seed workflow mixins: the steps they share."""

    api: IAMApi

    def _ensure_inline_policy(
        self,
        tx: Rollback,
        holder: PolicyHolder,
        name: str,
        policy: str,
        document: dict[str, Any],
        *,
        grants: str,
    ) -> None:
        """Put inline ``policy`` on user or group ``name`` unless it is there as ``document``
        (``grants`` is the action named in the progress line); record how to undo it."""
        kind = holder.value
        ids = {f"{kind.capitalize()}Name": name, "PolicyName": policy}
        label = holder.label(name)
        current = self.api.missing(f"get_{kind}_policy", name, **ids)
        if current is not None and policy_equal(current["PolicyDocument"], document):
            self.progress(f"inline policy {policy} of {label} is in place")
            return
        self.api.call(f"put_{kind}_policy", name, **ids, PolicyDocument=json.dumps(document))
        if current is None:
            tx.did(
                f"inline policy {policy} of {label}",
                lambda: self.api.call(f"delete_{kind}_policy", name, **ids),
            )
        else:
            old = json.dumps(current["PolicyDocument"])
            tx.did(
                f"update of inline policy {policy} of {label}",
                lambda: self.api.call(f"put_{kind}_policy", name, **ids, PolicyDocument=old),
            )
        self.progress(f"put inline policy {policy} ({grants}) on {label}")

    def _map(
        self,
        tx: Rollback,
        mapping: MappingWriter | None,
        kind: str,
        arn: str,
        username: str,
        groups: Sequence[str],
        notes: list[str],
    ) -> MappingChange | None:
        """Map IAM ``kind`` (``user`` or ``role``) ``arn`` to ``username`` and ``groups`` and say
        what that did; a new mapping is undone on rollback. Without a mapping target, a note says
        what to add by hand (and None is returned)."""
        if mapping is None:
            notes.append(mapping_note(f"{kind}arn", arn, username, groups))
            return None
        add = mapping.add_user if kind == "user" else mapping.add_role
        change = add(arn, username, groups)
        if change is MappingChange.ADDED:
            # Forced: removing the entry this run added restores the state before the run, even
            # when the entry is the only system:masters (or a node) mapping the guards protect.
            tx.did(f"mapping of {arn} in {mapping.target}", lambda: mapping.remove(arn, force=True))
            self.progress(f"mapped {arn} to {username} {list(groups)} in {mapping.target}")
        else:
            self.progress(f"mapping of {arn} in {mapping.target} is in place")
        return change

    def _not_found(
        self, what: str, name: str, candidates: Sequence[str], *, hint: str = NOT_FOUND_HINT
    ) -> NotFoundError:
        """The error for a removal whose target ``name`` does not exist, naming the closest of
        ``candidates`` (the existing IAM users, roles or group members)."""
        return NotFoundError(
            not_found_message(what, name, closest_names(name, candidates)), hint=hint
        )

    @staticmethod
    def _closest(name: str, candidates: Sequence[str]) -> str:
        """`` (closest: a, b)`` for a message about ``name``, or nothing."""
        found = closest_names(name, candidates)
        return f" (closest: {', '.join(found)})" if found else ""

    def _user_names(self) -> list[str]:
        return self.api.names("list_users", "Users", "UserName")

    def _role_names(self) -> list[str]:
        return self.api.names("list_roles", "Roles", "RoleName")

    def _remove_policies(self, kind: str, name: str, removed: list[str], *, of: str = "") -> None:
        """Delete every inline policy of IAM ``kind`` (``user`` or ``role``) ``name`` and detach
        every managed one; ``of`` ends each line added to ``removed``."""
        ids = {f"{kind.capitalize()}Name": name}
        for policy in self.api.items(f"list_{kind}_policies", "PolicyNames", name, **ids):
            self.api.call(f"delete_{kind}_policy", name, **ids, PolicyName=policy)
            removed.append(f"inline policy {policy}{of}")
        attached = self.api.items(f"list_attached_{kind}_policies", "AttachedPolicies", name, **ids)
        for att in attached:
            arn = str(att["PolicyArn"])
            self.api.call(f"detach_{kind}_policy", name, **ids, PolicyArn=arn)
            removed.append(f"attached policy {arn}{of}")

    def _remove_mapping(
        self, mapping: MappingWriter | None, arn: str, removed: list[str], *, force: bool
    ) -> None:
        """The first step of a removal: the cluster mapping goes, so access ends at once. The
        mapping's guards refuse (before anything else is removed) unless ``force``."""
        self._step("mapping")
        if mapping is not None and mapping.remove(arn, force=force) is MappingChange.REMOVED:
            removed.append(f"mapping of {arn} in {mapping.target}")
            self.progress(f"removed the mapping of {arn} from {mapping.target}")
