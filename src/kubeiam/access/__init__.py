"""Effective access: who can get into the cluster, as whom, and do what (issue 13).

Design of the join (phase 1 built the three pure sides; phase 2 joins them and renders):

* :mod:`kubeiam.access.policy` (pure) evaluates one request as AWS does and returns a
  :class:`~kubeiam.access.policy.Verdict`: allowed / denied / conditional (conditions carried as
  text, never decided) / unknown (depends on what cannot be read from this account).
"""
