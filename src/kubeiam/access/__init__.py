"""Effective access: who can get into the cluster, as whom, and do what (issue 13).

Design of the join (phase 1 built the three sides; phase 2 joins them, finds and renders):

* :mod:`kubeiam.access.policy` (pure) evaluates one request as AWS does and returns a
  :class:`~kubeiam.access.policy.Verdict`: allowed / denied / conditional (conditions carried as
  text, never decided) / unknown (depends on what cannot be read from this account). Verdicts
  compose: ``a.then(b)`` is a role chain's hops.
* :mod:`kubeiam.access.iam_reader` (I/O) reads the account in bulk with
  GetAccountAuthorizationDetails (paged by Marker, bounded retries on throttling);
  :mod:`kubeiam.access.iam_graph` (pure) joins the pages into an ``AccountIAM`` and answers
  ``who_can_become(account, arn) -> Path[]``: each Path has an entry kind (user, role, account,
  sso, service, federated, anyone), a start, the roles assumed (``via``), the granting IAM
  groups, a verdict, and what could not be read.
* :mod:`kubeiam.access.rbac` (pure) indexes ClusterRoles/Roles/bindings as the API returns them:
  ``RBAC.rights(username, groups) -> Rights`` (``cluster_admin``, ``unrestricted`` for
  system:masters, ``summary()``, ``can(verb, resource, namespace)``), ``RBAC.who_can(...)`` and
  ``bound_groups()`` (for dead mapping groups).

* :mod:`kubeiam.access.report` (pure) is that join, already written: ``build_report(cluster,
  rows, IAMGraph, RBAC, now=..., access_keys=...) -> Report`` over :class:`MappingRow` values
  (store name, kind role/user/group/account/sso, principal, username, groups, principal id,
  access-policy associations), with the findings below and ``report_json`` (schemaVersion 1).
  What is left for phase 2: turning each store's entries into rows (the stores the server reads,
  in its order), reading RBAC objects and access keys, the CLI, the table/html renderers,
  who-can over IAM (``RBAC.who_can`` x rows), the e2e proof and the bench.

The join, per mapped principal::

    mapping sources (the stores the server reads, in its order; access entries per the
    cluster's authentication mode)  ->  rows: principal ARN (or account / SSO matcher),
        rendered username + groups (templates kept as templates), source store name
    for each row's ARN: who_can_become(account, arn)   -> principals[].via / kind / conditions
    for each row's username + groups: rbac rights    -> principals[].rights / clusterAdmin
    findings over the joined rows (cluster-admin reach, account-wide or "*" trust, dangling ARN
    = find() is None, recreated role = principal id differs, dead group = no binding, ...)

Row ARNs are matched with ``iam_graph.principal_key`` (role paths dropped, case-insensitive),
the same way mappings match STS callers.
"""
