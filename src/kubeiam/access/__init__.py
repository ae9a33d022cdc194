"""Effective access: who can get into the cluster, as whom, and do what (issue 13).

The pieces, all pure except the IAM reader (docs/access-report.md has the rules and the JSON):

* :mod:`~kubeiam.access.policy` evaluates one request as AWS does and returns a ``Verdict``:
  allowed / denied / conditional (conditions carried as text, never decided) / unknown (depends
  on what cannot be read from this account). Verdicts compose: ``a.then(b)`` is a role chain.
* :mod:`~kubeiam.access.iam_reader` (I/O) reads the account in bulk: GetAccountAuthorizationDetails
  paged by Marker with bounded retries on throttling, and access-key ages from one credential
  report (:mod:`~kubeiam.access.credential_report` parses it).
* :mod:`~kubeiam.access.iam_graph` joins the pages into an ``AccountIAM``; ``IAMGraph(account)
  .who_can_become(arn) -> Path[]`` (memoised across targets): each Path has an entry kind (user,
  role, account, sso, service, federated, anyone), a start, the roles assumed (``via``), the IAM
  groups whose policies granted it, a verdict, and what could not be read.
* :mod:`~kubeiam.access.rbac` indexes ClusterRoles/Roles/bindings as the API returns them:
  ``RBAC.rights(username, groups)`` (``cluster_admin``, ``unrestricted`` for system:masters,
  ``summary()``, ``can(verb, resource, namespace)``), ``RBAC.who_can``, ``bound_groups()``.
* :mod:`~kubeiam.access.rows` turns mapping-model entries of any store into ``MappingRow``
  values; access entries build rows directly (principal id, access-policy associations).
* :mod:`~kubeiam.access.report` is the join: ``build_report(cluster, rows, graph, rbac, now=...,
  access_keys=...) -> Report`` (principals, findings worst first, ``fails(severity)`` for
  ``--fail-on``), ``who_can(rows, graph, rbac, verb, resource, namespace)``, ``report_json``
  (schemaVersion 1). :mod:`~kubeiam.access.render_table` and :mod:`~kubeiam.access.render_html`
  (self-contained, nothing fetched) render a ``Report``.

The join, per mapping row::

    the stores the server reads, in its order (access entries per the authentication mode)
        -> rows: principal (ARN, group ARN, account, SSO set), username + groups as written,
           store name
    row principal -> IAMGraph.who_can_become         -> principals[].arn / kind / via / conditions
    row username + groups (+ access policies) -> RBAC -> principals[].rights / clusterAdmin
    findings: cluster-admin reach, trust by '*' or a whole account, dangling principal
    (find() is None), recreated principal (id differs; an access entry: its createdAt is
    before the principal's CreateDate), old access keys reaching admin,
    dead mapping groups, bindings no mapping feeds

Row ARNs are matched with ``iam_graph.principal_key`` (role paths dropped, case-insensitive), the
way mappings match STS callers.

The edge (I/O): :mod:`~kubeiam.access.sources` plans and reads the stores the cluster's
authenticator reads (``--server-config``'s backendMode, else an EKS cluster's authentication
mode, else the stores that exist) through ``kubeiam.admin.editing``'s documents and the EKS
entries client, and lists the RBAC objects; :mod:`~kubeiam.access.collect` runs the IAM read, the
stores and RBAC at the same time. ``kubeiam access report`` / ``who-can``
(:mod:`kubeiam.cli.access`) build and render; tests/e2e/test_access_report.py proves the join
against the real kube-apiserver and loads the HTML in Chromium; bench/bench_access_report.py
times 1,000 principals x 2,000 rows.
"""
