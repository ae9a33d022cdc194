"""The seam through which the IAM workflows write "the mapping".

`kubeiam iam onboard-user` and `create-access-role` end with "map this ARN to these Kubernetes
groups"; where that mapping lives (the aws-auth ConfigMap, ``IAMIdentityMapping`` objects, or a
local file the server reads) is not their business. They call a :class:`MappingWriter`; the one
implementation is :class:`kubeiam.admin.editing.store_writer.StoreMappingWriter`, `kubeiam
mapping`'s guarded, backed-up editor over any of the three stores.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol


class MappingChange(enum.Enum):
    """What a :class:`MappingWriter` call did."""

    ADDED = "added"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    ABSENT = "absent"


class MappingWriter(Protocol):
    """Where the IAM workflows write mappings. Every method is idempotent."""

    @property
    def target(self) -> str:
        """Where the mapping lives, for messages (``file /etc/kubeiam/config.yaml``)."""
        ...

    def add_user(self, arn: str, username: str, groups: Sequence[str]) -> MappingChange:
        """Map IAM user ``arn``; UNCHANGED if already identical; MappingError if different."""
        ...

    def add_role(self, arn: str, username: str, groups: Sequence[str]) -> MappingChange:
        """Map IAM role ``arn``; UNCHANGED if already identical; MappingError if different."""
        ...

    def remove(self, arn: str, *, force: bool = False) -> MappingChange:
        """Remove every entry for ``arn``; ABSENT if there was none. GuardError when that removes
        a node entry or the last ``system:masters`` mapping, unless ``force``."""
        ...
