"""`kubeiam iam`: the seeds' IAM workflows as idempotent commands that roll back on failure.

:class:`IAMAdmin` is the one object the CLI (and `make demo`) builds per command: seed 1 from
:mod:`kubeiam.admin.onboarding.users` (`onboard_user`, `offboard_user`) and seed 2 from
:mod:`kubeiam.admin.onboarding.access_roles` (`create_access_role`, `grant`, `revoke`,
`delete_access_role`), over one :class:`~kubeiam.admin.onboarding.iam_api.IAMApi`.

Rules every workflow follows:

* **Idempotent**: each step looks first and changes only what is missing or different, so a
  re-run after a failure (or on a healthy setup) repairs or does nothing.
* **Roll back this run only** (:mod:`kubeiam.admin.onboarding.rollback`): a step that changed
  something records how to undo it; if a later step fails, the undo actions run in reverse order
  and the error is raised. Things that existed before the run are never removed by a rollback.
* **Removal rolls forward**: `offboard-user` and `delete-access-role` cannot be rolled back (a
  deleted access key cannot come back), so they remove the cluster mapping first, skip what is
  already gone, and can simply be rerun after a failure.
* **Secrets** never reach the progress callback, an exception, a log or a ``repr``.
* ``step_hook(name)`` is called before each step: tests inject failures with it.
"""

from __future__ import annotations

from kubeiam.admin.onboarding.access_roles import (
    AccessRoleResult,
    AccessRoleWorkflows,
    DeleteRoleResult,
    MembershipResult,
)
from kubeiam.admin.onboarding.iam_api import IAMApi
from kubeiam.admin.onboarding.rollback import Progress, StepHook
from kubeiam.admin.onboarding.users import (
    OffboardResult,
    OnboardResult,
    UserWorkflows,
    describe_policy_name,
    kubeconfig_command,
)
from kubeiam.aws.clients import AWSClients

__all__ = [
    "AccessRoleResult",
    "DeleteRoleResult",
    "IAMAdmin",
    "MembershipResult",
    "OffboardResult",
    "OnboardResult",
    "describe_policy_name",
    "kubeconfig_command",
]


def _quiet(_message: str) -> None:
    """Default progress callback: say nothing."""


class IAMAdmin(UserWorkflows, AccessRoleWorkflows):
    """The seed workflows over one set of boto3 clients (built once per command)."""

    def __init__(
        self,
        clients: AWSClients,
        *,
        progress: Progress = _quiet,
        step_hook: StepHook | None = None,
    ) -> None:
        self.api = IAMApi(clients)
        self.progress = progress
        self.step_hook = step_hook
