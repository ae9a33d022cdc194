"""Kubernetes API access for kubeiam, through lightkube.

``client`` builds an async client from ``--kubeconfig`` or the in-cluster service account;
``objects`` gets and replaces objects with their resourceVersion; ``watch`` keeps a local copy
current (list + watch, reconnect with backoff) through a :class:`~kubeiam.kube.watch.WatchSource`;
``sources`` is the lightkube implementation of that seam; ``resources`` names the resources
kubeiam uses (aws-auth's ConfigMap, the IAMIdentityMapping CRD). lightkube is imported only by
``client``, ``sources``, ``objects`` and ``resources``.
"""
