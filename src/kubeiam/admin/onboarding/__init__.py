"""The IAM workflows that give people access to a cluster.

Onboard/offboard users (:mod:`.users`), create/grant/revoke/delete access roles
(:mod:`.access_roles`), the IAM API wrapper (:mod:`.iam_api`), the steps both share (:mod:`.steps`),
rollback (:mod:`.rollback`), the AWS credentials file (:mod:`.credentials_file`), and the
:class:`~kubeiam.admin.onboarding.iam_admin.IAMAdmin` facade the CLI builds (:mod:`.iam_admin`).
"""
