"""Kubernetes API access for kubeiam, through lightkube.

``access`` finds the kubeconfig files (or the in-cluster config) and ``kubeconfig`` reads them by
kubectl's rules (merging, relative paths) into a
:class:`~kubeiam.kube.kubeconfig.ClusterAccess`; ``credentials`` turns its user into credentials
(token, token file, exec plugins v1/v1beta1/v1alpha1, client certificates); ``transport`` is the
one HTTP transport to the API server (TLS, proxy, credentials, 401/403 and connection failures as
kubeiam errors, worded by ``refusals``); ``client`` builds the lightkube async client on it;
``objects`` gets and replaces objects with their resourceVersion; ``watch`` keeps a local copy
current (list + watch, reconnect with backoff) through a
:class:`~kubeiam.kube.watch.WatchSource`; ``sources`` is the lightkube implementation of that
seam; ``resources`` names the resources kubeiam uses (aws-auth's ConfigMap, the
IAMIdentityMapping CRD). lightkube and httpx2 are imported only by ``client``, ``transport``,
``sources``, ``objects`` and ``resources``.
"""
